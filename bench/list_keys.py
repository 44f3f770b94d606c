"""Benchmark the hot path: GET /smartlock/{id}/auth for a lock with 100 keys.

Starts `keyhouse serve` (one process) on a fresh data folder, creates 100 keys, then runs
`wrk` (Debian package `wrk`) against the listing. Usage:

    .venv/bin/python bench/list_keys.py [--seconds 10] [--connections 16] [--keys 100]

Prints wrk's summary and the body size; record the figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--keys", type=int, default=100)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    data = Path(tempfile.mkdtemp(prefix="keyhouse-bench-"))
    port = free_port()
    env = {**os.environ, "KEYHOUSE_CONFIG": str(data / "config.toml")}  # keep the user's alone
    server = subprocess.Popen(
        [sys.executable, "-m", "keyhouse", "--data", str(data), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        assert server.stdout is not None
        for line in server.stdout:
            lines.append(line)
            if "Uvicorn running" in line:
                break
        # Drain the server's log, or its pipe fills and the server blocks on logging.
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
        text = "".join(lines)
        token = re.search(r"^\s+(kh_\S+)$", text, re.MULTILINE).group(1)  # type: ignore[union-attr]
        lock = int(re.findall(r"smartlockId (\d+)", text)[0])
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            user = client.put("/account/user", json={"email": "b@example.com", "name": "B"})
            user_id = user.json()["accountUserId"]
            started = time.perf_counter()
            for n in range(args.keys):
                answer = client.put(
                    f"/smartlock/{lock}/auth",
                    json={
                        "name": f"Guest {n}",
                        "accountUserId": user_id,
                        "remoteAllowed": n % 2 == 0,
                        "allowedFromDate": "2026-12-01T00:00:00Z",
                        "allowedUntilDate": "2027-01-31T00:00:00Z",
                        "allowedWeekDays": 124,
                        "allowedFromTime": 480,
                        "allowedUntilTime": 1080,
                    },
                )
                answer.raise_for_status()
            create_seconds = time.perf_counter() - started
            body = client.get(f"/smartlock/{lock}/auth").content
        print(
            f"created {args.keys} keys in {create_seconds:.2f} s "
            f"({args.keys / create_seconds:.0f} keys/s, each confirmed by the virtual lock)"
        )
        print(f"GET /smartlock/{lock}/auth: {len(body)} bytes")
        result = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{args.connections}",
                f"-d{args.seconds}s",
                "-H",
                f"Authorization: Bearer {token}",
                f"{base}/smartlock/{lock}/auth",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        print(result.stdout)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
