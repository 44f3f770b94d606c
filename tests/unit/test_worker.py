"""The worker pool: a slow key never delays another; one key is never handled twice at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable

from keyhouse.worker import Worker


def test_a_slow_key_does_not_delay_another() -> None:
    release = threading.Event()
    done: dict[Hashable, float] = {}

    def handle(key: Hashable) -> None:
        if key == "slow":
            release.wait(10)
        done[key] = time.monotonic()

    worker = Worker("test", handle, scan=lambda: [], interval=60, threads=2)
    worker.start()
    try:
        worker.submit(["slow"])
        time.sleep(0.05)
        started = time.monotonic()
        worker.submit(["fast"])
        assert worker.wait(["fast"], 2)
        assert done["fast"] - started < 1.0
        assert "slow" not in done
    finally:
        release.set()
        worker.stop()


def test_one_key_is_handled_by_one_thread_at_a_time_and_again_after_a_resubmit() -> None:
    inside = 0
    most = 0
    calls = 0
    guard = threading.Lock()

    def handle(_key: Hashable) -> None:
        nonlocal inside, most, calls
        with guard:
            inside += 1
            calls += 1
            most = max(most, inside)
        time.sleep(0.02)
        with guard:
            inside -= 1

    worker = Worker("test", handle, scan=lambda: [], interval=60, threads=4)
    worker.start()
    try:
        for _ in range(20):
            worker.submit(["lock"])
            time.sleep(0.005)
        assert worker.wait(["lock"], 5)
        assert most == 1
        assert calls >= 2  # a submit while busy is handled once more afterwards
    finally:
        worker.stop()


def test_on_idle_calls_back_once_every_key_is_done_and_not_before() -> None:
    """The event loop's wait for a write's locks: woken by the thread that finishes the last
    of them (a resubmit while handled keeps it waiting), at once when none is busy, never
    after it was cancelled, and on stop."""
    gates = {"a": threading.Event(), "b": threading.Event()}
    handled: list[Hashable] = []
    started = {"a": threading.Event(), "b": threading.Event()}

    def handle(key: Hashable) -> None:
        started[str(key)].set()
        gates[str(key)].wait(10)
        handled.append(key)

    worker = Worker("test", handle, scan=lambda: [], interval=60, threads=2)
    worker.start()
    try:
        woken = threading.Event()
        assert worker.on_idle(["a"], woken.set) and woken.is_set()  # idle now: at once
        woken.clear()
        worker.submit(["a", "b"])
        worker.on_idle(["a", "b"], woken.set)
        cancelled = threading.Event()
        cancel = worker.on_idle(["a"], cancelled.set)
        cancel()
        assert started["a"].wait(5) and started["b"].wait(5)
        worker.submit(["a"])  # again while it is handled: one more run afterwards
        gates["a"].set()
        deadline = time.monotonic() + 5
        while handled.count("a") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert handled.count("a") == 2
        assert not woken.is_set()  # "b" is still being handled
        gates["b"].set()
        assert woken.wait(5)
        assert not cancelled.is_set()
        gates["a"].clear()
        worker.submit(["a"])
        on_stop = threading.Event()
        worker.on_idle(["a"], on_stop.set)
    finally:
        for gate in gates.values():
            gate.set()
        worker.stop()
    assert on_stop.is_set()
