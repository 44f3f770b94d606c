"""Shared fixtures: a real app over HTTP (in-process), real SQLite files, a real SMTP server,
and a real `keyhouse serve` process for end-to-end tests."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from keyhouse.app import create_app
from keyhouse.runtime import Runtime
from keyhouse.services import admin
from keyhouse.settings import Settings
from keyhouse.store.database import Database


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- SMTP -------------------------------------------------------------------------------------


class MailBox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


@dataclass
class SmtpServer:
    url: str
    mailbox: MailBox


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    mailbox = MailBox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(f"smtp://127.0.0.1:{port}", mailbox)
    finally:
        controller.stop()


# --- the app in-process -----------------------------------------------------------------------


@dataclass
class Tenant:
    """An account with a token holding all scopes, a lock with a keypad and one without."""

    account_id: int
    token: str
    keypad_lock: int
    plain_lock: int
    client: TestClient
    runtime: Runtime
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def token_with(self, *scopes: str) -> str:
        with self.runtime.db.session() as session:
            return admin.create_token(session, account_id=self.account_id, scopes=scopes)

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def put(self, path: str, **kwargs) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def create_user(self, email: str = "guest@example.com", name: str = "Guest") -> int:
        answer = self.put("/account/user", json={"email": email, "name": name})
        assert answer.status_code == 200, answer.text
        return answer.json()["accountUserId"]

    def keys(self, smartlock_id: int | None = None) -> list[dict]:
        path = f"/smartlock/{smartlock_id}/auth" if smartlock_id else "/smartlock/auth"
        answer = self.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def create_key(self, smartlock_id: int, **body) -> dict:
        """Create a key and return it as listed afterwards (the newest key on the lock)."""
        before = {k["id"] for k in self.keys(smartlock_id)}
        answer = self.put(f"/smartlock/{smartlock_id}/auth", json=body)
        assert answer.status_code == 204, answer.text
        (created,) = [k for k in self.keys(smartlock_id) if k["id"] not in before]
        return created


def make_tenant(client: TestClient, runtime: Runtime, email: str) -> Tenant:
    with runtime.db.session() as session:
        account = admin.create_account(session, email=email, name=email.split("@")[0])
        token = admin.create_token(session, account_id=account.id)
        keypad_lock = admin.add_lock(
            session, runtime.link, account_id=account.id, name="Front Door", keypad=True
        )
        plain_lock = admin.add_lock(session, runtime.link, account_id=account.id, name="Flat 2")
        return Tenant(account.id, token, keypad_lock.id, plain_lock.id, client, runtime)


@contextmanager
def tenant_with(tmp_path: Path, **settings: Any) -> Iterator[Tenant]:
    """A tenant on its own app and store, with these settings (a fast worker by default)."""
    runtime = Runtime(
        Settings(**{"data": tmp_path / "data", "worker_interval_seconds": 0.1, **settings})
    )
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
        yield make_tenant(client, runtime, "owner@example.com")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data=tmp_path / "data", confirm_wait_seconds=5, worker_interval_seconds=0.2)


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    return Runtime(settings)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def tenant(client: TestClient, runtime: Runtime) -> Tenant:
    return make_tenant(client, runtime, "owner@example.com")


@pytest.fixture
def other_tenant(client: TestClient, runtime: Runtime) -> Tenant:
    return make_tenant(client, runtime, "stranger@example.org")


# --- a real server process --------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    token: str
    lock_ids: list[int]
    data: Path
    output: list[str]
    env: dict[str, str]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def keyhouse_command() -> list[str]:
    return [sys.executable, "-m", "keyhouse"]


def _drain(process: subprocess.Popen, lines: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))


def start_server(
    data: Path, env_extra: dict[str, str] | None = None, serve_args: Sequence[str] = ()
) -> tuple[subprocess.Popen, LiveServer]:
    """`keyhouse --data DATA serve --port P [serve_args]`, once it listens."""
    port = free_port()
    env = {**os.environ, **(env_extra or {})}
    env.pop("KEYHOUSE_DATA", None)
    # `serve` writes a `local` profile where none exists: never into the real config dir, nor
    # into a config file the test process uses, unless the caller asks for it.
    if "KEYHOUSE_CONFIG" not in (env_extra or {}):
        env["KEYHOUSE_CONFIG"] = str(data.parent / f"{data.name}-config.toml")
    process = subprocess.Popen(
        [*keyhouse_command(), "--data", str(data), "serve", "--port", str(port), *serve_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if "Uvicorn running" in line:  # logged once the socket listens
            break
    # Keep reading the server's output, or its pipe fills and the server blocks on logging.
    threading.Thread(target=_drain, args=(process, lines), daemon=True).start()
    text = "\n".join(lines)
    if "Uvicorn running" not in text:
        process.kill()
        raise RuntimeError(f"keyhouse serve did not start:\n{text}")
    # With several API processes the manager says "running" once it has bound the socket;
    # the socket listens when the first of them has started.
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("keyhouse serve did not listen:\n" + "\n".join(lines)) from None
            time.sleep(0.05)
    token_match = re.search(r"^\s+(kh_\S+)$", text, re.MULTILINE)
    token = token_match.group(1) if token_match else ""
    lock_ids = [int(x) for x in re.findall(r"smartlockId (\d+)", text)]
    return process, LiveServer(url, token, lock_ids, data, lines, env)


@pytest.fixture
def live_server(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[LiveServer]:
    """`keyhouse serve` on a fresh data folder, sending mail to the test SMTP server."""
    process, server = start_server(tmp_path / "live", {"KEYHOUSE_SMTP_URL": smtp_server.url})
    server.env["SMTP_SERVER_URL"] = smtp_server.url
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


# --- either store: SQLite (a file) or a fresh database on the machine's PostgreSQL ----------

POSTGRES_SERVER = os.environ.get(
    "KEYHOUSE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432"
)


@contextmanager
def fresh_postgres_database(
    prefix: str = "keyhouse_test", *, upgraded: bool = False
) -> Iterator[str]:
    """The URL of a new database on the machine's PostgreSQL, dropped afterwards; ``upgraded``:
    with the newest schema, as 'keyhouse admin db upgrade' leaves it (a server refuses an
    empty database). Where none answers the test is skipped, except under CI=true, where it
    fails."""
    engine = create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        engine.dispose()
        message = f"no PostgreSQL at {POSTGRES_SERVER}: {exc.orig}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set, so the PostgreSQL tests must run)", pytrace=False)
        pytest.skip(message)
    try:
        url = f"{POSTGRES_SERVER}/{name}"
        if upgraded:
            db = Database(url)
            db.migrate()
            db.dispose()
        yield url
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture
def postgres() -> Iterator[Database]:
    """A Database on a fresh PostgreSQL database (see ``fresh_postgres_database``)."""
    with fresh_postgres_database() as url:
        db = Database(url)
        try:
            yield db
        finally:
            db.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Each test that takes it runs twice: on SQLite (None: the data folder's file) and on a
    fresh PostgreSQL database with the newest schema."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_postgres_database(upgraded=True) as url:
        yield url


@pytest.fixture
def store_tenant(tmp_path: Path, store_url: str | None) -> Iterator[Tenant]:
    """``tenant`` on either store (see ``store_url``)."""
    with tenant_with(tmp_path, database_url=store_url) as tenant:
        yield tenant


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """After a fuzz run (tests/fuzz): the share of 2xx answers per operation."""
    fuzz = sys.modules.get("fuzz_support")
    if fuzz is None or not fuzz.TALLY:
        return
    terminalreporter.section("fuzz: share of 2xx answers per operation")
    for line in fuzz.report():
        terminalreporter.write_line(line)
