"""Keys applied per second with many locks busy at once, and create → applied with the work
done by a second process.

    .venv/bin/python bench/many_locks.py [--locks 100] [--keys 5] [--latency-ms 50]
                                         [--threads 8] [--database-url URL]

Part 1 (in this process): ``--locks`` virtual locks answering after ``--latency-ms`` each; ``--keys``
keypad codes are stored for every lock in one go, then the device pool (``--threads``) brings
them to their locks; prints keys applied per second until the last is applied.

Part 2 (with ``--database-url`` on PostgreSQL): a second Runtime on the same database is the
only one that reconciles (the writer's own pool is stopped), woken by NOTIFY; 100 creates one
after another, each polled until applied: p50 / p99 of create → applied.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from keyhouse.runtime import Runtime
from keyhouse.schemas.auth import SmartlockAuthCreate
from keyhouse.services import admin, auths
from keyhouse.services.caller import ALL_SCOPES, Caller
from keyhouse.settings import Settings
from keyhouse.store.models import SimulatedLock, SmartlockAuth


def code(n: int) -> int:
    digits = ""
    for _ in range(5):
        n, digit = divmod(n, 9)
        digits = str(digit + 1) + digits
    return int("9" + digits)


def unapplied(runtime: Runtime) -> int:
    with runtime.db.read() as session:
        rows = session.query(SmartlockAuth).all()
        return sum(1 for row in rows if row.sync_state != "applied")


def many_locks(args: argparse.Namespace, folder: Path) -> None:
    settings = Settings(
        data=folder / "one",
        database_url=args.database_url,
        device_threads=args.threads,
        worker_interval_seconds=0.2,
        drift_check_seconds=0,
    )
    runtime = Runtime(settings)
    runtime.db.migrate()
    with runtime.db.session() as session:
        account = admin.create_account(session, email="bench@example.com")
        locks = [
            admin.add_lock(
                session, runtime.link, account_id=account.id, name=f"L{n}", keypad=True
            ).id
            for n in range(args.locks)
        ]
        for lock in locks:
            session.get(SimulatedLock, lock).latency_ms = args.latency_ms  # type: ignore[union-attr]
    caller = Caller(account_id=account.id, token_id=0, scopes=frozenset(ALL_SCOPES))
    n = 0
    for lock in locks:
        for _ in range(args.keys):
            body = SmartlockAuthCreate.model_validate(
                {"name": f"K{n}", "type": 13, "code": code(n), "remoteAllowed": False}
            )
            runtime.db.transaction(lambda s, b=body, l=lock: auths.create_keys(s, caller, [l], b))
            n += 1
    started = time.perf_counter()
    runtime.start()
    while unapplied(runtime):
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    runtime.stop()
    print(
        f"{args.locks} locks at {args.latency_ms} ms, {n} keys, {args.threads} device threads: "
        f"{n / elapsed:.0f} keys applied/s ({elapsed:.1f} s)"
    )


def second_process(args: argparse.Namespace, folder: Path) -> None:
    writer = Runtime(
        Settings(data=folder / "w", database_url=args.database_url, confirm_wait_seconds=0)
    )
    worker = Runtime(
        Settings(data=folder / "r", database_url=args.database_url, worker_interval_seconds=3600)
    )
    writer.db.migrate()
    with writer.db.session() as session:
        account = admin.create_account(session, email="second@example.com")
        lock = admin.add_lock(session, writer.link, account_id=account.id, name="W", keypad=True).id
    caller = Caller(account_id=account.id, token_id=0, scopes=frozenset(ALL_SCOPES))
    worker.start()
    timings = []
    try:
        for n in range(100):
            body = SmartlockAuthCreate.model_validate(
                {"name": f"S{n}", "type": 13, "code": code(5000 + n), "remoteAllowed": False}
            )
            begin = time.perf_counter()
            outcome = writer.db.transaction(
                lambda s, b=body: auths.create_keys(s, caller, [lock], b)
            )
            (key_id,) = outcome.auth_keys
            while True:
                with writer.db.read() as session:
                    if session.get(SmartlockAuth, key_id).sync_state == "applied":  # type: ignore[union-attr]
                        break
                time.sleep(0.001)
            timings.append(time.perf_counter() - begin)
            if n % 80 == 79:
                with writer.db.session() as session:
                    for row in session.query(SmartlockAuth).filter_by(smartlock_id=lock):
                        row.deleting = True
                        row.revision += 1
                worker.device_worker.submit([lock])
                time.sleep(0.5)
    finally:
        worker.stop()
    timings.sort()
    print(
        f"create → applied by a second process (NOTIFY): p50 {statistics.median(timings) * 1000:.1f} ms, "
        f"p99 {timings[98] * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locks", type=int, default=100)
    parser.add_argument("--keys", type=int, default=5)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        many_locks(args, Path(folder))
        if args.database_url and args.database_url.startswith("postgresql"):
            second_process(args, Path(folder))


if __name__ == "__main__":
    main()
