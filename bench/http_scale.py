"""The hot paths over HTTP at scale, side by side with the ceiling of our own stack.

    .venv/bin/python bench/generate.py --data DIR [--database-url URL] --out plan.json
    .venv/bin/python bench/http_scale.py --data DIR [--database-url URL] --plan plan.json
        [--workers 1] [--seconds 5] [--connections 16] [--rotate 1000] [--runs 3]
        [--listing-cache-mb N]

Starts `keyhouse serve` as a user does (its defaults; rate limits off, so the server is
measured, not the limit), then `wrk` (Debian's package) in its own process, rotating over
``--rotate`` locks / users and their accounts' tokens, for:

* lock_keys   GET /smartlock/{id}/auth          (one lock's keys)
* user_keys   GET /smartlock/auth?accountUserId= (one user's keys across locks)
* locks       GET /smartlock                     (an account's locks)
* create      PUT /smartlock/{id}/auth           (a new app key each, 16 clients)

and, for each, the ceiling: bench/ceiling.py under the same uvicorn (same workers, same log
level) answering prepared bytes of the same size. Then create → applied (sequential, polled)
and the server's resident memory. Medians of ``--runs``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent

LUA = r"""
local lines = {}
for line in io.lines("%(requests)s") do lines[#lines + 1] = line end
local n = 0
local method = "%(method)s"
math.randomseed(os.time() + os.clock() * 1000000)
local offset = math.random(0, 531440)
request = function()
  n = n + 1
  local path, token = lines[(n %% #lines) + 1]:match("([^ ]+) ([^ ]+)")
  local headers = {["Authorization"] = "Bearer " .. token}
  local body = nil
  if method == "PUT" then
    headers["Content-Type"] = "application/json"
    -- a keypad code: six digits 1-9 from n and a random offset (another run's codes are
    -- elsewhere; a clash is a 409 and counted as non-2xx)
    local code, m = "", (n + offset) %% 531441
    for _ = 1, 6 do code = code .. tostring(m %% 9 + 1); m = math.floor(m / 9) end
    if code:sub(1, 2) == "12" then code = "3" .. code:sub(2) end  -- Nuki: never "12…"
    body = '{"name":"w' .. n .. '","type":13,"remoteAllowed":false,"code":' .. code .. '}'
  end
  return wrk.format(method, path, headers, body)
end
done = function(summary, latency, requests)
  local form = 'JSON {"rps": %%f, "p50": %%f, "p99": %%f, "errors": %%d, "non2xx": %%d}\n'
  io.write(string.format(form,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_up(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its children (uvicorn's workers), in MB."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def wrk(url: str, lines: list[str], method: str, seconds: int, connections: int) -> dict:
    folder = Path(tempfile.mkdtemp())
    requests = folder / "requests.txt"
    requests.write_text("\n".join(lines) + "\n")
    script = folder / "rotate.lua"
    script.write_text(LUA % {"requests": requests, "method": method})
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in done.stdout.splitlines():
        if line.startswith("JSON "):
            return json.loads(line[5:])
    raise SystemExit(done.stdout + done.stderr)


def median_of(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def start(command: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    out = log.open("wb") if log is not None else subprocess.DEVNULL
    return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def cache_line(log: Path) -> str | None:
    """The server's own count of listing-cache hits, logged when it stops."""
    lines = [line for line in log.read_text().splitlines() if "key listing cache:" in line]
    return lines[-1].split("key listing cache:", 1)[1].strip() if lines else None


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rotate", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-create", action="store_true")
    parser.add_argument("--only-create", action="store_true", help="skip the list scenarios")
    parser.add_argument(
        "--listing-cache-mb",
        type=int,
        default=None,
        help="KEYHOUSE_LISTING_CACHE_MB for the server (0: every listing from the store)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")
    plan = json.loads(args.plan.read_text())
    accounts = plan["accounts"]
    lock_lines, user_lines, account_lines = [], [], []
    for i in range(args.rotate):
        account = accounts[i % len(accounts)]
        lock = account["locks"][(i // len(accounts)) % len(account["locks"])]
        user = account["users"][(i // len(accounts)) % len(account["users"])]
        lock_lines.append(f"/smartlock/{lock}/auth {account['token']}")
        user_lines.append(f"/smartlock/auth?accountUserId={user} {account['token']}")
    for account in accounts:
        account_lines.append(f"/smartlock {account['token']}")

    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYHOUSE_")}
    env.update({"KEYHOUSE_RATE_LIMIT": "off", "KEYHOUSE_AUTH_FAILURE_LIMIT": "off"})
    # Drift checks off: with 10,000 generated locks all checked at the same moment, every one
    # falls due together after 300 s and the checks, not the requests, would be measured.
    env["KEYHOUSE_DRIFT_CHECK_SECONDS"] = "0"
    if args.database_url:
        env["KEYHOUSE_DATABASE_URL"] = args.database_url
    if args.listing_cache_mb is not None:
        env["KEYHOUSE_LISTING_CACHE_MB"] = str(args.listing_cache_mb)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "keyhouse", "--data", str(args.data), "serve"]
    command += ["--port", str(port)]
    if args.workers > 1:
        command += ["--workers", str(args.workers)]
    server_log = Path(tempfile.mkstemp(suffix=".log")[1])
    server = start(command, env, server_log)
    results: dict[str, Any] = {}
    try:
        wait_up(url + "/docs", server)
        sizes = {}
        scenarios = (
            ("lock_keys", lock_lines),
            ("user_keys", user_lines),
            ("locks", account_lines),
        )
        for name, lines in scenarios if not args.only_create else ():
            path, token = lines[0].split(" ")
            body = httpx.get(url + path, headers={"Authorization": f"Bearer {token}"}).content
            sizes[name] = body
            runs = [
                wrk(url, lines, "GET", args.seconds, args.connections) for _ in range(args.runs)
            ]
            results[name] = median_of(runs)
        if not args.skip_create:
            creates = [
                f"/smartlock/{line.split(' ')[0].split('/')[2]}/auth {line.split(' ')[1]}"
                for line in lock_lines
            ]
            runs = [
                wrk(url, creates, "PUT", args.seconds, args.connections) for _ in range(args.runs)
            ]
            results["create"] = median_of(runs)
            results["create_applied"] = create_to_applied(url, accounts[0])
        results["rss_mb"] = rss_mb(server.pid)
    finally:
        stop(server)
    # Counted over the whole run (lock_keys, and create → applied's polls of one lock).
    results["listing_cache"] = cache_line(server_log)

    if args.only_create:
        print(json.dumps(results, indent=2))
        return
    # The ceiling: the same uvicorn, the same workers and log level, prepared bytes.
    for name in ("lock_keys", "user_keys", "locks"):
        body_file = Path(tempfile.mkstemp()[1])
        body_file.write_bytes(sizes[name])
        ceiling_env = {**env, "CEILING_BODY": str(body_file), "PYTHONPATH": str(ROOT)}
        port = free_port()
        ceiling = start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.ceiling:app",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--log-level",
                "info",
            ],
            ceiling_env,
        )
        try:
            wait_up(f"http://127.0.0.1:{port}/x", ceiling)
            lines = lock_lines if name != "locks" else account_lines
            runs = [
                wrk(f"http://127.0.0.1:{port}", lines, "GET", args.seconds, args.connections)
                for _ in range(args.runs)
            ]
            results[f"{name}_ceiling"] = median_of(runs)
            results[f"{name}_bytes"] = len(sizes[name])
        finally:
            stop(ceiling)
    print(json.dumps(results, indent=2))
    print()
    print("| scenario | body | req/s | p50 ms | p99 ms | ceiling req/s | ceiling p99 | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in ("lock_keys", "user_keys", "locks"):
        r, c = results[name], results[f"{name}_ceiling"]
        print(
            f"| {name} | {results[f'{name}_bytes']:,} B | {r['rps']:.0f} | {r['p50']:.1f} | "
            f"{r['p99']:.1f} | {c['rps']:.0f} | {c['p99']:.1f} | {r['rps'] / c['rps']:.2f} |"
        )
    if "create" in results:
        r = results["create"]
        print(
            f"| create | | {r['rps']:.0f} keys/s | {r['p50']:.1f} | {r['p99']:.1f} | | | "
            f"{r['non2xx']:.0f} non-2xx, {r['errors']:.0f} errors |"
        )
        a = results["create_applied"]
        print(f"\ncreate → applied: p50 {a['p50']:.1f} ms, p99 {a['p99']:.1f} ms")
    print(f"resident memory after the run: {results['rss_mb']:.0f} MB")
    print(f"key listing cache (whole run): {results['listing_cache']}")


def create_to_applied(url: str, account: dict, count: int = 200) -> dict:
    """Sequential creates on one lock, each polled until the listing shows it applied."""
    headers = {"Authorization": f"Bearer {account['token']}"}
    timings = []
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for n in range(count):
            name = f"ca{n}-{time.monotonic_ns() % 100000}"
            lock = account["locks"][n % len(account["locks"])]
            started = time.perf_counter()
            while True:  # a random code; another on the rare clash (409)
                m = random.randrange(531441)
                code = int("".join(str(m // 9**i % 9 + 1) for i in range(6)))
                if str(code).startswith("12"):  # Nuki: a code never starts with 12
                    continue
                answer = client.put(
                    f"/smartlock/{lock}/auth",
                    json={"name": name[:32], "type": 13, "code": code, "remoteAllowed": False},
                )
                if answer.status_code != 409:
                    break
            if answer.status_code != 204:
                raise SystemExit(f"create → applied: {answer.status_code} {answer.text}")
            while True:
                keys = client.get(f"/smartlock/{lock}/auth").json()
                mine = [k for k in keys if k["name"] == name[:32]]
                state = mine[0].get("syncState", "applied") if mine else "pending"
                if state == "failed":
                    raise SystemExit(f"create → applied: the lock refused: {mine[0]}")
                if state == "applied":
                    break
                time.sleep(0.002)
            timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {"p50": statistics.median(timings), "p99": timings[int(len(timings) * 0.99) - 1]}


if __name__ == "__main__":
    main()
