"""The fuzz runs' server: `create_app` under uvicorn in a thread (real HTTP), seeded with real
data, and the tally of answers per operation."""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import select

from keyhouse.app import create_app
from keyhouse.runtime import Runtime
from keyhouse.services import admin
from keyhouse.settings import Settings
from keyhouse.store.models import AccountUser, Smartlock, SmartlockAuth

# (document, store, operation) -> status -> count
TALLY: dict[tuple[str, str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))


FAILURES: dict[tuple[str, str, str], int] = defaultdict(int)
_RECORDED = [0]


def record(document: str, store: str, operation: str, status: int) -> None:
    TALLY[(document, store, operation)][status] += 1
    _RECORDED[0] += 1
    if _RECORDED[0] % 250 == 0 and os.environ.get("KEYHOUSE_FUZZ_REPORT"):
        report()  # a long run stopped by a timeout still leaves its figures


def record_failure(document: str, store: str, operation: str) -> None:
    """A check failed (a 5xx, an answer outside its schema, an undeclared status…)."""
    FAILURES[(document, store, operation)] += 1


def report() -> list[str]:
    """One line per operation: requests, share of 2xx, the statuses seen."""
    lines = []
    total = server_errors = 0
    for (document, store, operation), statuses in sorted(TALLY.items()):
        count = sum(statuses.values())
        ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
        total += count
        server_errors += sum(n for status, n in statuses.items() if status >= 500)
        seen = " ".join(f"{status}×{n}" for status, n in sorted(statuses.items()))
        lines.append(
            f"{document:8} {store:8} {operation:55} {count:5} requests, "
            f"{100 * ok / count:5.1f}% 2xx  ({seen})"
        )
    failed = sum(FAILURES.values())
    lines.append(f"total: {total} requests, {server_errors} server errors, {failed} failed checks")
    lines.extend(f"failed: {' '.join(key)} ×{n}" for key, n in sorted(FAILURES.items()))
    path = os.environ.get("KEYHOUSE_FUZZ_REPORT")
    if path:
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


@functools.cache
def our_document() -> dict[str, Any]:
    """Our /openapi.json, as the server serves it."""
    with tempfile.TemporaryDirectory() as folder:
        runtime = Runtime(Settings(data=Path(folder)))
        document = create_app(runtime=runtime).openapi()
    return json.loads(json.dumps(document))


@dataclass
class FuzzServer:
    url: str
    token: str
    store: str
    runtime: Runtime
    account_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def real_ids(self) -> dict[str, list[Any]]:
        """Ids by path parameter name, and ``pairs``: (smartlockId, id) of existing keys."""
        """The ids that exist now (the fuzzer deletes some; seed() brings them back)."""
        with self.runtime.db.read() as session:
            locks = session.scalars(
                select(Smartlock.id).where(Smartlock.account_id == self.account_id)
            ).all()
            users = session.scalars(
                select(AccountUser.id).where(AccountUser.account_id == self.account_id)
            ).all()
            keys = session.execute(
                select(SmartlockAuth.smartlock_id, SmartlockAuth.id).where(
                    SmartlockAuth.account_id == self.account_id
                )
            ).all()
            slots = session.execute(
                select(SmartlockAuth.smartlock_id, SmartlockAuth.auth_id, SmartlockAuth.code).where(
                    SmartlockAuth.account_id == self.account_id,
                    SmartlockAuth.auth_id.is_not(None),
                )
            ).all()
        if len(locks) < 2 or len(users) < 2 or len(keys) < 2:
            self.seed()
            return self.real_ids()
        return {
            "smartlockId": list(locks),
            "accountUserId": list(users),
            "id": [key for _lock, key in keys],
            "pairs": [tuple(row) for row in keys],
            "slots": [(lock, slot) for lock, slot, _code in slots],
            "codes": [(lock, code) for lock, _slot, code in slots if code is not None],
        }

    def bring_online(self, smartlock_id: int) -> None:
        """The virtual lock online, fast and without a fault (the fuzzer's own emulator calls
        take locks offline), so a door event on it can succeed."""
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as client:
            client.post(
                f"/emulator/smartlock/{smartlock_id}",
                json={"online": True, "fault": None, "latencyMs": 0},
            )

    def seed(self) -> None:
        """A lock with a keypad and one without, users, an app key, a keypad code, log entries."""
        with self.runtime.db.session() as session:
            keypad = admin.add_lock(
                session, self.runtime.link, account_id=self.account_id, name="Front", keypad=True
            ).id
            admin.add_lock(session, self.runtime.link, account_id=self.account_id, name="Flat")
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as client:
            users = []
            for n in range(2):
                email = f"guest{time.monotonic_ns()}{n}@example.com"
                answer = client.put("/account/user", json={"email": email, "name": f"Guest {n}"})
                answer.raise_for_status()
                users.append(answer.json()["accountUserId"])
            code = 300000 + time.monotonic_ns() % 600000
            code = int(str(code).replace("0", "5").replace("12", "34", 1))
            keys = [
                {"name": "Guest", "accountUserId": users[0], "remoteAllowed": True},
                {"name": "Code", "type": 13, "code": code, "remoteAllowed": False},
            ]
            for body in keys:
                client.put(f"/smartlock/{keypad}/auth", json=body).raise_for_status()
            client.post(f"/smartlock/{keypad}/action", json={"action": 1})
            client.post(f"/emulator/smartlock/{keypad}/keypad", json={"code": code})


@contextmanager
def serve(data: Path, database_url: str | None, store: str) -> Iterator[FuzzServer]:
    runtime = Runtime(
        Settings(
            data=data,
            database_url=database_url,
            confirm_wait_seconds=0.2,
            worker_interval_seconds=0.2,
            # Thousands of requests a minute on one token: the limits have their own tests
            # (tests/api/test_rate_limits.py); here a 429 would only stop the harness's setup.
            rate_limit="off",
            auth_failure_limit="off",
        )
    )
    with socket_port() as port:
        config = uvicorn.Config(
            create_app(runtime=runtime), host="127.0.0.1", port=port, log_level="warning"
        )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fuzz server did not start")
        time.sleep(0.05)
    with runtime.db.session() as session:
        account = admin.create_account(session, email="fuzz@example.com", name="fuzz")
        token = admin.create_token(session, account_id=account.id)
    fuzz = FuzzServer(f"http://127.0.0.1:{port}", token, store, runtime, account.id)
    fuzz.seed()
    try:
        yield fuzz
    finally:
        server.should_exit = True
        thread.join(30)


@contextmanager
def socket_port() -> Iterator[int]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port
