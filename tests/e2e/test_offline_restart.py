"""A change queued for an offline lock survives a restart of `keyhouse serve`, and is applied
once the lock is back online."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx

from conftest import LiveServer, start_server, wait_until

# A short confirm wait keeps the PUT to an offline lock quick; a short worker interval makes
# the restarted server retry soon (the emulator's {"online": true} also hands it the lock).
FAST = {"KEYHOUSE_CONFIRM_WAIT_SECONDS": "0.2", "KEYHOUSE_WORKER_INTERVAL_SECONDS": "0.3"}
CODE = {"name": "Cleaner", "type": 13, "code": 345678, "remoteAllowed": False}


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def keys(server: LiveServer, token: str, lock: int) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{server.url}/smartlock/{lock}/auth",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def the_key(server: LiveServer, token: str, lock: int) -> dict[str, Any]:
    (key,) = keys(server, token, lock)
    return key


def test_pending_key_survives_a_restart_and_applies_when_the_lock_is_back(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    processes: list[subprocess.Popen] = []
    try:
        process, first = start_server(data, FAST)
        processes.append(process)
        assert first.token, "\n".join(first.output)
        token = first.token
        headers = {"Authorization": f"Bearer {token}"}
        lock = first.lock_ids[0]  # Front Door, with a keypad

        answer = httpx.post(
            f"{first.url}/emulator/smartlock/{lock}", json={"online": False}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["online"] is False

        answer = httpx.put(f"{first.url}/smartlock/{lock}/auth", json=CODE, headers=headers)
        assert answer.status_code == 204, answer.text
        key = the_key(first, token, lock)
        assert key["syncState"] == "pending"
        assert "authId" not in key
        operation = key["operationId"]
        assert operation

        stop(process)
        assert process.returncode is not None

        process, second = start_server(data, FAST)
        processes.append(process)
        assert not second.token  # no new demo on a store that has data
        state = httpx.get(f"{second.url}/emulator/smartlock/{lock}", headers=headers)
        assert state.status_code == 200, state.text
        assert state.json()["online"] is False
        assert state.json()["pendingOperations"] == 1

        after = the_key(second, token, lock)
        assert after["id"] == key["id"]
        assert after["syncState"] == "pending"
        assert after["operationId"] == operation
        assert "authId" not in after

        answer = httpx.post(
            f"{second.url}/emulator/smartlock/{lock}", json={"online": True}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["online"] is True

        def applied() -> dict[str, Any] | None:
            current = the_key(second, token, lock)
            return current if current["syncState"] == "applied" else None

        final = wait_until(applied, timeout=15, what="the key to be applied after the restart")
        assert isinstance(final["authId"], int)
        assert final["authId"] >= 2
        assert "operationId" not in final
        state = httpx.get(f"{second.url}/emulator/smartlock/{lock}", headers=headers).json()
        assert state["auths"] == 1
        assert state["pendingOperations"] == 0

        # the lock holds the code now: it opens at the door
        answer = httpx.post(
            f"{second.url}/emulator/smartlock/{lock}/keypad",
            json={"code": 345678, "at": "2026-12-07T09:00:00Z"},
            headers=headers,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["opened"] is True
    finally:
        for process in processes:
            stop(process)
