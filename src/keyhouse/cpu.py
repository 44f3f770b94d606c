"""One Keyhouse process on one core.

A Keyhouse process runs Python on several threads (the event loop, the request thread pool, the
reconciler's and the mail sender's workers), and only one of them runs Python at a time (the
GIL). Free to run on every core, they hand the GIL from core to core on every request, and each
hand-over waits for the other core to wake: on the 2-core benchmark machine a lock's key
listing did 90 requests/s unpinned and 666 pinned to one core, a user's keys 156 and 493
(docs/benchmarks.md). ``KEYHOUSE_CPU_PINNING=off`` leaves the process free.

Which core: the processes of one data folder (``serve``, each of ``serve --workers N``'s API
processes, each ``keyhouse worker``) share it out. Each takes the first CPU whose claim file
(``<data>/cpu/<n>.lock``) no running process holds, with an advisory lock the kernel lets go
when the process ends, however it ends; a restarted process takes the freed core. With more
processes than CPUs the rest are spread by their pid.
"""

from __future__ import annotations

import os
from pathlib import Path

# The claim this process holds: kept open for its whole life (closing it would let go).
_CLAIM: list[int] = []


def _claim(allowed: list[int], folder: Path) -> int | None:
    """The first of ``allowed`` no other process of ``folder`` holds, now held by this one."""
    import fcntl

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    for cpu in allowed:
        try:
            fd = os.open(folder / f"{cpu}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _CLAIM.append(fd)
        return cpu
    return None


def pin_to_one_cpu(setting: str, data: Path | None = None) -> int | None:
    """Pin this process (and the threads it starts from now on) to one of the CPUs it may use,
    unless ``setting`` is "off"; the CPU, or None when left free. With ``data``, the first CPU
    no other process of that data folder has claimed; otherwise (or all taken) chosen by pid."""
    if setting == "off" or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    cpu = None
    if _CLAIM:  # claimed already (a second call in one process keeps its core)
        return next(iter(os.sched_getaffinity(0)))
    if data is not None:
        cpu = _claim(allowed, data / "cpu")
    if cpu is None:
        cpu = allowed[os.getpid() % len(allowed)]
    os.sched_setaffinity(0, {cpu})
    return cpu
