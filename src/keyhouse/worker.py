"""Background threads that handle submitted keys now and scan for leftovers on a timer.

A key (a lock id, the mail queue) is handled by one thread at a time; different keys run on up
to ``threads`` threads at once, so a slow key (a slow or offline lock) never delays another.
A key submitted while it is being handled is handled once more afterwards.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterable

log = logging.getLogger(__name__)


class Worker:
    """Handles each submitted key once per submission; ``wait`` blocks until they are handled."""

    def __init__(
        self,
        name: str,
        handle: Callable[[Hashable], object],
        scan: Callable[[], Iterable[Hashable]],
        interval: float,
        threads: int = 1,
    ) -> None:
        self.name = name
        self._handle = handle
        self._scan = scan
        self._interval = interval
        self._size = max(1, threads)
        self._queued: list[Hashable] = []
        self._busy: set[Hashable] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._scanner: threading.Thread | None = None
        # Callbacks waiting for keys to be neither queued nor handled (see ``on_idle``).
        self._waiters: list[tuple[frozenset[Hashable], Callable[[], object]]] = []

    def start(self) -> None:
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._run, name=f"{self.name}-{n}", daemon=True)
            for n in range(self._size)
        ]
        self._scanner = threading.Thread(
            target=self._scan_loop, name=f"{self.name}-scan", daemon=True
        )
        for thread in [*self._threads, self._scanner]:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            waiters, self._waiters = self._waiters, []
        for _keys, callback in waiters:
            callback()
        for thread in [*self._threads, *([self._scanner] if self._scanner else [])]:
            thread.join(timeout)
        self._threads = []
        self._scanner = None

    def submit(self, keys: Iterable[Hashable]) -> None:
        with self._cond:
            for key in keys:
                if key not in self._queued:
                    self._queued.append(key)
            self._cond.notify_all()

    def busy_with(self, keys: Iterable[Hashable]) -> bool:
        """Whether any of ``keys`` is queued or being handled (never waits)."""
        wanted = set(keys)
        with self._cond:
            return bool(wanted & (set(self._queued) | self._busy)) and not self._stopping

    def on_idle(
        self, keys: Iterable[Hashable], callback: Callable[[], object]
    ) -> Callable[[], None]:
        """Call ``callback()`` once none of ``keys`` is queued or being handled (at once, in
        this thread, if none is now; else from the worker thread that finishes the last, so it
        must be quick, e.g. ``loop.call_soon_threadsafe``). Returns a function that cancels it."""
        entry = (frozenset(keys), callback)
        with self._cond:
            idle = self._stopping or not (entry[0] & (set(self._queued) | self._busy))
            if not idle:
                self._waiters.append(entry)
        if idle:
            callback()

        def cancel() -> None:
            with self._cond:
                if entry in self._waiters:
                    self._waiters.remove(entry)

        return cancel

    def _idle_waiters(self) -> list[Callable[[], object]]:
        """The waiters whose keys are all done now, taken off the list (condition held)."""
        if not self._waiters:
            return []
        pending = set(self._queued) | self._busy
        done = [entry for entry in self._waiters if not (entry[0] & pending)]
        for entry in done:
            self._waiters.remove(entry)
        return [callback for _keys, callback in done]

    def wait(self, keys: Iterable[Hashable], timeout: float) -> bool:
        """Wait until none of ``keys`` is queued or being handled; False on timeout."""
        wanted = set(keys)
        with self._cond:
            return self._cond.wait_for(
                lambda: not (wanted & (set(self._queued) | self._busy)) or self._stopping,
                timeout,
            )

    def _scan_loop(self) -> None:
        """Every ``interval``: hand what the scan finds to the threads."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping, self._interval)
                if self._stopping:
                    return
            try:
                found = list(self._scan())
            except Exception:
                log.exception("%s: scan failed", self.name)
                found = []
            self.submit(found)

    def _next(self) -> Hashable | None:
        """The first queued key no other thread is handling (call with the condition held)."""
        for index, key in enumerate(self._queued):
            if key not in self._busy:
                del self._queued[index]
                self._busy.add(key)
                return key
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                key = self._next()
                while key is None and not self._stopping:
                    self._cond.wait()
                    key = self._next()
                if self._stopping:
                    if key is not None:
                        self._busy.discard(key)
                    return
            try:
                self._handle(key)
            except Exception:
                log.exception("%s: handling %r failed", self.name, key)
            finally:
                with self._cond:
                    self._busy.discard(key)
                    self._cond.notify_all()
                    ready = self._idle_waiters()
                for callback in ready:
                    try:
                        callback()
                    except Exception:
                        log.exception("%s: a waiter for %r failed", self.name, key)


class InFlight:
    """At most ``cap`` calls in flight per key (per lock); ``take`` never waits: it says no."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._counts: dict[Hashable, int] = {}
        self._guard = threading.Lock()

    def take(self, key: Hashable) -> bool:
        with self._guard:
            if self._counts.get(key, 0) >= self.cap:
                return False
            self._counts[key] = self._counts.get(key, 0) + 1
            return True

    def give_back(self, key: Hashable) -> None:
        with self._guard:
            left = self._counts.get(key, 0) - 1
            if left > 0:
                self._counts[key] = left
            else:
                self._counts.pop(key, None)
