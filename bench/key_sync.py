"""Create → applied: how long a new key takes to be on its (virtual) lock, and what SQLite's
``synchronous=FULL`` costs.

    .venv/bin/python bench/key_sync.py [--keys 300] [--synchronous full|normal]
                                        [--database-url postgresql+psycopg://…/db]

Runs the app in this process (HTTP through the ASGI app, the real worker thread, the simulator
at 0 latency) on a fresh SQLite file, or on the database given. Each round creates a keypad code
with ``PUT /smartlock/{id}/auth`` and polls ``GET /smartlock/{id}/auth/{key}`` until its
syncState is ``applied``; it prints p50 / p99 / max of that time and the creates per second.
Keys are deleted every 81 creates so the lock never fills. ``--synchronous normal`` swaps the
pragma Keyhouse ships (FULL) for NORMAL, only to measure what FULL costs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import event

from keyhouse.app import create_app
from keyhouse.runtime import Runtime
from keyhouse.services import admin
from keyhouse.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=300)
    parser.add_argument("--synchronous", choices=("full", "normal"), default="full")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data=Path(folder), database_url=args.database_url)
        runtime = Runtime(settings)
        if args.synchronous == "normal" and runtime.db.is_sqlite:

            def normal(dbapi_connection, _record) -> None:
                dbapi_connection.execute("PRAGMA synchronous=NORMAL")

            event.listen(runtime.db.engine, "connect", normal)
        runtime.db.migrate()
        demo = admin.seed_demo(runtime.db, runtime.link)
        assert demo is not None
        lock = demo.lock_ids[0]
        headers = {"Authorization": f"Bearer {demo.token}"}
        timings: list[float] = []
        with TestClient(create_app(runtime=runtime), headers=headers) as client:
            started = time.perf_counter()
            for n in range(args.keys):
                if n and n % 81 == 0:
                    ids = [k["id"] for k in client.get(f"/smartlock/{lock}/auth").json()]
                    client.request("DELETE", "/smartlock/auth", json=ids)
                begin = time.perf_counter()
                answer = client.put(
                    f"/smartlock/{lock}/auth",
                    json={
                        "name": f"Code {n}",
                        "type": 13,
                        "code": int(f"1111{n % 81 // 9 + 1}{n % 9 + 1}"),
                        "remoteAllowed": False,
                    },
                )
                assert answer.status_code == 204, answer.text
                key = next(
                    k
                    for k in client.get(f"/smartlock/{lock}/auth").json()
                    if k["name"] == f"Code {n}"
                )
                while key["syncState"] != "applied":
                    assert key["syncState"] == "pending", key
                    time.sleep(0.001)
                    key = client.get(f"/smartlock/{lock}/auth/{key['id']}").json()
                timings.append(time.perf_counter() - begin)
            elapsed = time.perf_counter() - started
        runtime.db.dispose()
    timings.sort()
    p99 = timings[min(len(timings) - 1, round(len(timings) * 0.99))]
    store = "sqlite" if args.database_url is None else args.database_url.split(":", 1)[0]
    print(
        f"{store} synchronous={args.synchronous} keys={len(timings)}: "
        f"create→applied p50 {statistics.median(timings) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {timings[-1] * 1000:.1f} ms; "
        f"{len(timings) / elapsed:.0f} creates/s"
    )


if __name__ == "__main__":
    main()
