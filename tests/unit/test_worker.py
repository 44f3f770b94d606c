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
