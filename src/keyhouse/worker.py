"""A background thread that handles submitted keys now and scans for leftovers on a timer."""

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
    ) -> None:
        self.name = name
        self._handle = handle
        self._scan = scan
        self._interval = interval
        self._queued: list[Hashable] = []
        self._busy: set[Hashable] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def submit(self, keys: Iterable[Hashable]) -> None:
        with self._cond:
            for key in keys:
                if key not in self._queued:
                    self._queued.append(key)
            self._cond.notify_all()

    def wait(self, keys: Iterable[Hashable], timeout: float) -> bool:
        """Wait until none of ``keys`` is queued or being handled; False on timeout."""
        wanted = set(keys)
        with self._cond:
            return self._cond.wait_for(
                lambda: not (wanted & (set(self._queued) | self._busy)) or self._stopping,
                timeout,
            )

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queued and not self._stopping:
                    self._cond.wait(self._interval)
                if self._stopping:
                    return
                idle = not self._queued
            if idle:
                try:
                    found = list(self._scan())
                except Exception:
                    log.exception("%s: scan failed", self.name)
                    found = []
                self.submit(found)
            with self._cond:
                if not self._queued:
                    continue
                key = self._queued.pop(0)
                self._busy.add(key)
            try:
                self._handle(key)
            except Exception:
                log.exception("%s: handling %r failed", self.name, key)
            finally:
                with self._cond:
                    self._busy.discard(key)
                    self._cond.notify_all()
