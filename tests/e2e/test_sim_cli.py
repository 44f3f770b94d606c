"""`keyhouse sim …` against a real server, and `keyhouse admin lock set` on its data folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import LiveServer, running_server, wait_until


def sim(
    server: LiveServer, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    home = server.data.parent / "sim-home"
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "KEYHOUSE_URL": server.url,
        "KEYHOUSE_TOKEN": token or server.token,
        "HOME": str(home),
        "KEYHOUSE_CONFIG": str(home / "config.toml"),
    }
    return subprocess.run(
        [sys.executable, "-m", "keyhouse", "sim", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.fixture
def server(tmp_path: Path):
    with running_server(tmp_path / "data") as live:
        yield live


def keypad_lock(server: LiveServer) -> int:
    locks = httpx.get(f"{server.url}/smartlock", headers=server.headers).json()
    return next(lock["smartlockId"] for lock in locks if lock["config"]["keypadPaired"])


def test_keypad_code_opens_inside_its_window_and_not_outside(server: LiveServer) -> None:
    lock = keypad_lock(server)
    answer = httpx.put(
        f"{server.url}/smartlock/{lock}/auth",
        headers=server.headers,
        json={
            "name": "Cleaner",
            "type": 13,
            "code": 345678,
            "remoteAllowed": False,
            "allowedWeekDays": 64,
            "allowedFromTime": 480,
            "allowedUntilTime": 1080,
        },
    )
    assert answer.status_code == 204, answer.text
    inside = sim(server, "keypad", str(lock), "345678", "--at", "2026-12-07T09:00:00Z")
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.startswith("opened")
    outside = sim(server, "keypad", str(lock), "345678", "--at", "2026-12-07T18:30:00Z")
    assert outside.returncode == 3
    assert outside.stdout.startswith("refused") and "18:00" in outside.stdout
    log = httpx.get(f"{server.url}/smartlock/{lock}/log", headers=server.headers).json()
    assert [entry["state"] for entry in log[:2]] == [9, 0]  # newest first: refused, then opened


def test_offline_and_online_through_the_cli(server: LiveServer) -> None:
    lock = keypad_lock(server)
    done = sim(server, "offline", str(lock))
    assert done.returncode == 0, done.stderr
    assert "offline" in done.stdout
    state = httpx.get(f"{server.url}/smartlock/{lock}", headers=server.headers).json()
    assert state["serverState"] == 4
    done = sim(server, "online", str(lock))
    assert done.returncode == 0 and "online" in done.stdout
    state = httpx.get(f"{server.url}/smartlock/{lock}", headers=server.headers).json()
    assert state["serverState"] == 0


def test_sim_errors_are_one_sentence(server: LiveServer) -> None:
    done = sim(server, "offline", "123")
    assert done.returncode == 2  # like every command that names a lock
    assert done.stderr.startswith("error: no lock '123'")
    assert "Traceback" not in done.stderr
    done = sim(server, "offline", "123", token="kh_unknown")
    assert done.returncode == 4
    assert "not authorized" in done.stderr


def test_admin_lock_set_reaches_a_running_server(server: LiveServer) -> None:
    lock = keypad_lock(server)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keyhouse",
            "--data",
            str(server.data),
            "admin",
            "lock",
            "set",
            str(lock),
            "--offline",
            "--fault",
            "busy",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "offline" in done.stdout and "busy" in done.stdout

    def offline() -> bool:
        state = httpx.get(f"{server.url}/smartlock/{lock}", headers=server.headers).json()
        return state["serverState"] == 4

    wait_until(offline, what="the server to see the lock offline")


def put_key(server: LiveServer, lock: int, **body: object) -> dict:
    before = {
        k["id"]
        for k in httpx.get(f"{server.url}/smartlock/{lock}/auth", headers=server.headers).json()
    }
    answer = httpx.put(f"{server.url}/smartlock/{lock}/auth", headers=server.headers, json=body)
    assert answer.status_code == 204, answer.text
    keys = httpx.get(f"{server.url}/smartlock/{lock}/auth", headers=server.headers).json()
    (key,) = [k for k in keys if k["id"] not in before]
    return key


def test_sim_names_locks_and_keys_and_speaks_the_locks_time(server: LiveServer) -> None:
    """Issue 15.7, 15.9, 15.11: names like everywhere else, --at in the lock's time, a usage
    error (not a traceback) for a date without a time, the verdict said once."""
    lock = keypad_lock(server)
    put_key(server, lock, name="Cleaner", type=13, code=345678, remoteAllowed=False,
            allowedWeekDays=64, allowedFromTime=480, allowedUntilTime=1080)  # fmt: skip
    # 08:30 in Vienna is 07:30Z: inside the window only if read as the lock's time
    inside = sim(server, "keypad", "Front Door", "345678", "--at", "2026-12-07T08:30")
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout == "opened: inside the key's window\n"
    log = subprocess.run(
        [sys.executable, "-m", "keyhouse", "log", "--lock", "Front Door"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "KEYHOUSE_URL": server.url,
            "KEYHOUSE_TOKEN": server.token,
            "HOME": str(server.data.parent),
            "KEYHOUSE_CONFIG": str(server.data.parent / "log-config.toml"),
            "COLUMNS": "200",
        },
        check=False,
    )
    assert log.returncode == 0, log.stderr
    assert "date (lock's time)" in log.stdout and "2026-12-07 08:30" in log.stdout, log.stdout
    date_only = sim(server, "keypad", "front door", "345678", "--at", "2026-12-07")
    assert date_only.returncode == 2
    assert date_only.stderr.startswith("error: --at '2026-12-07' is a date without a time")
    assert "Traceback" not in date_only.stderr and len(date_only.stderr.splitlines()) == 1
    letters = sim(server, "keypad", "Front Door", "34567x")
    assert letters.returncode == 2 and "Traceback" not in letters.stderr

    user = httpx.put(f"{server.url}/account/user", headers=server.headers,
                     json={"email": "guest@example.com", "name": "Guest"}).json()  # fmt: skip
    key = put_key(server, lock, name="Guest", accountUserId=user["accountUserId"],
                  remoteAllowed=False, allowedWeekDays=64)  # fmt: skip
    wait_until(
        lambda: (
            httpx.get(f"{server.url}/smartlock/{lock}/auth/{key['id']}", headers=server.headers)
            .json()
            .get("authId")
        ),
        what="the key's slot",
    )
    for name in ("Guest", key["id"]):
        done = sim(server, "app", "Front Door", name, "--at", "2026-12-07T10:00")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("opened: ") and "opened: opened" not in done.stdout
    refused = sim(server, "app", str(lock), "Guest", "--at", "2026-12-08T10:00")
    assert refused.returncode == 3 and refused.stdout.startswith("refused: ")
    assert "refused: refused" not in refused.stdout
    unknown = sim(server, "app", "Front Door", "Nobody")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: no key 'Nobody'")


def test_online_says_how_many_queued_changes_it_applied(server: LiveServer) -> None:
    done = sim(server, "offline", "Front Door")
    assert done.returncode == 0, done.stderr
    lock = keypad_lock(server)
    put_key(server, lock, name="One", type=13, code=345671, remoteAllowed=False)
    put_key(server, lock, name="Two", type=13, code=345672, remoteAllowed=False)
    done = sim(server, "online", "Front Door")
    assert done.returncode == 0, done.stderr
    assert "is online; 2 queued change(s) applied" in done.stdout, done.stdout
    assert "0 change(s)" not in done.stdout


def test_admin_lock_set_takes_the_locks_name(server: LiveServer) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keyhouse",
            "--data",
            str(server.data),
            "admin",
            "lock",
            "set",
            "Front Door",
            "--latency-ms",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"smartlock {keypad_lock(server)}: online, latency 5 ms")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keyhouse",
            "--data",
            str(server.data),
            "admin",
            "lock",
            "set",
            "Back Door",
            "--offline",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: no virtual lock 'Back Door'")
