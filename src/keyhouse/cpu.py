"""One Keyhouse process on one core.

A Keyhouse process runs Python on several threads (the event loop, the request thread pool, the
reconciler's and the mail sender's workers), and only one of them runs Python at a time (the
GIL). Free to run on every core, they hand the GIL from core to core on every request, and each
hand-over waits for the other core to wake: on the 2-core benchmark machine a lock's key
listing did 90 requests/s unpinned and 666 pinned to one core, a user's keys 156 and 493
(docs/benchmarks.md). ``KEYHOUSE_CPU_PINNING=off`` leaves the process free.
"""

from __future__ import annotations

import os


def pin_to_one_cpu(setting: str) -> int | None:
    """Pin this process (and the threads it starts from now on) to one of the CPUs it may use,
    chosen by its pid, unless ``setting`` is "off"; the CPU, or None when left free."""
    if setting == "off" or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    cpu = allowed[os.getpid() % len(allowed)]
    os.sched_setaffinity(0, {cpu})
    return cpu
