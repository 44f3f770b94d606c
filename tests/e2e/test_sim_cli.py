"""`keyhouse sim …` against a real server, and `keyhouse admin lock set` on its data folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import LiveServer, start_server, wait_until


def sim(
    server: LiveServer, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEYHOUSE_URL": server.url, "KEYHOUSE_TOKEN": token or server.token}
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
    process, live = start_server(tmp_path / "data")
    try:
        yield live
    finally:
        process.terminate()
        process.wait(10)


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
    assert done.returncode == 1
    assert done.stderr.startswith("error: smartlock 123 does not exist")
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
