"""CPU per request of a polled listing through the whole ASGI app, in process (no network, no
wrk): what one request costs us, apart from uvicorn and the machine's load.

    .venv/bin/python bench/cpu_per_request.py --data D --plan plan.json --scenario lock
    .venv/bin/python bench/cpu_per_request.py ... --rotate        # every listing a cache miss
    .venv/bin/python bench/cpu_per_request.py ... --profile       # cProfile of the event loop

``--plan`` is the one ``bench/generate.py`` writes. The CPU is ``time.process_time`` of the
process (its request threads included) over ``--requests`` requests after 50 to warm up.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KEYHOUSE_RATE_LIMIT", "off")
os.environ.setdefault("KEYHOUSE_DRIFT_CHECK_SECONDS", "0")

from keyhouse.app import create_app
from keyhouse.runtime import Runtime
from keyhouse.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--scenario", choices=("lock", "user", "locks"), default="lock")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rotate", action="store_true", help="a lock's keys over its locks")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    account = json.loads(args.plan.read_text())["accounts"][0]
    runtime = Runtime(Settings(data=args.data), background=False)
    app = create_app(runtime=runtime)
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {account['token']}".encode())]
    locks = account["locks"]

    def target(n: int) -> tuple[str, bytes]:
        if args.scenario == "user":
            return "/smartlock/auth", f"accountUserId={account['users'][0]}".encode()
        if args.scenario == "locks":
            return "/smartlock", b""
        lock = locks[n % len(locks)] if args.rotate else locks[0]
        return f"/smartlock/{lock}/auth", b""

    async def one(n: int) -> None:
        path, query = target(n)
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise SystemExit(f"{path}: {sent[0]['status']} {sent[-1].get('body', b'')[:200]!r}")

    async def run() -> None:
        async with app.router.lifespan_context(app):
            for n in range(50):
                await one(n)
            profile = cProfile.Profile() if args.profile else None
            cpu, wall = time.process_time(), time.perf_counter()
            if profile is not None:
                profile.enable()
            for n in range(args.requests):
                await one(n)
            if profile is not None:
                profile.disable()
                pstats.Stats(profile).sort_stats("tottime").print_stats(25)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(
                f"{args.scenario}: {1000 * cpu / args.requests:.3f} ms of CPU per request, "
                f"{1000 * wall / args.requests:.3f} ms wall ({args.requests} requests)"
            )

    asyncio.run(run())


if __name__ == "__main__":
    main()
