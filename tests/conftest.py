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
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
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
    data = settings.pop("data", tmp_path / "data")
    if "database_url" not in settings and SUITE_ON_POSTGRES:
        settings["database_url"] = database_url_for(data)
    runtime = Runtime(Settings(**{"data": data, "worker_interval_seconds": 0.1, **settings}))
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
        yield make_tenant(client, runtime, "owner@example.com")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    data = tmp_path / "data"
    return Settings(
        data=data,
        confirm_wait_seconds=5,
        worker_interval_seconds=0.2,
        **({"database_url": database_url_for(data)} if SUITE_ON_POSTGRES else {}),
    )


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
    env = {**os.environ, **database_environment(data), **(env_extra or {})}
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


@contextmanager
def running_server(
    data: Path, env_extra: dict[str, str] | None = None, serve_args: Sequence[str] = ()
) -> Iterator[LiveServer]:
    """:func:`start_server` for the length of a ``with``; stopped (killed after 10 s) after."""
    process, server = start_server(data, env_extra, serve_args)
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def live_server(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[LiveServer]:
    """`keyhouse serve` on a fresh data folder, sending mail to the test SMTP server."""
    with running_server(tmp_path / "live", {"KEYHOUSE_SMTP_URL": smtp_server.url}) as server:
        server.env["SMTP_SERVER_URL"] = smtp_server.url
        yield server


# --- either store: SQLite (a file) or a fresh database on the machine's PostgreSQL ----------
#
# KEYHOUSE_TEST_POSTGRES chooses the pass (README, "Running the tests on PostgreSQL"):
#   unset, or a server URL   the SQLite pass: every test; a test that takes ``store_url`` (or
#                            otherwise picks both stores) also runs on PostgreSQL at that server
#                            (default postgresql+psycopg://postgres@127.0.0.1:5432)
#   suite  or  suite:URL     the PostgreSQL pass: every test that makes a store runs with each of
#                            its stores on a fresh PostgreSQL database (newest schema) at URL
#                            (the same default); tests that run once in the SQLite pass anyway
#                            (marked store_free, own_stores or sqlite_only) are deselected.
# Where no PostgreSQL answers its tests skip, except under CI=true, where they fail.

DEFAULT_POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def _choose_pass(value: str) -> tuple[bool, str]:
    """(whole suite on PostgreSQL?, the PostgreSQL server URL) from KEYHOUSE_TEST_POSTGRES."""
    if value == "suite":
        return True, DEFAULT_POSTGRES_SERVER
    if value.startswith("suite:"):
        return True, value.removeprefix("suite:").rstrip("/")
    return False, value.rstrip("/") or DEFAULT_POSTGRES_SERVER


SUITE_ON_POSTGRES, POSTGRES_SERVER = _choose_pass(os.environ.get("KEYHOUSE_TEST_POSTGRES", ""))

# Directories whose tests all run once, in the SQLite pass (see ``pytest_collection_modifyitems``).
ONCE = {
    "unit": "store_free",  # pure rules and argument checks: no store at all
    "race": "own_stores",  # every harness opens SQLite and PostgreSQL itself (racekit.open_store)
    "fuzz": "own_stores",  # one server per store (fuzz_server)
    "store": "own_stores",  # migrations and indexes, each on the store(s) it names itself
}
# Fixtures that put a test on both stores (or on PostgreSQL only) in the SQLite pass already.
BOTH_STORES_FIXTURES = {"store_url", "store_tenant", "postgres"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "store_free: touches no store; runs once, in the SQLite pass"
    )
    config.addinivalue_line(
        "markers",
        "own_stores: opens the store(s) it tests itself (SQLite, PostgreSQL or both); "
        "runs once, in the SQLite pass",
    )
    config.addinivalue_line(
        "markers",
        "sqlite_only(reason): about SQLite by nature (the reason says why); "
        "runs in the SQLite pass only",
    )


def _runs_once(item: pytest.Item) -> str | None:
    """Why ``item`` stays out of the PostgreSQL pass, or None."""
    for name in ("store_free", "own_stores", "sqlite_only"):
        if item.get_closest_marker(name) is not None:
            return name
    if BOTH_STORES_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "own_stores"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        relative = item.path.relative_to(tests) if item.path.is_relative_to(tests) else None
        if relative is not None and len(relative.parts) > 1 and relative.parts[0] in ONCE:
            item.add_marker(ONCE[relative.parts[0]])
    if not SUITE_ON_POSTGRES:
        return
    keep, left = [], []
    for item in items:
        (left if _runs_once(item) else keep).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = keep


def _no_postgres(exc: OperationalError) -> None:
    message = f"no PostgreSQL at {POSTGRES_SERVER}: {exc.orig}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so the PostgreSQL tests must run)", pytrace=False)
    pytest.skip(message)


def _admin_engine() -> Any:
    return create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")


@contextmanager
def fresh_postgres_database(
    prefix: str = "keyhouse_test", *, upgraded: bool = False
) -> Iterator[str]:
    """The URL of a new database on the machine's PostgreSQL, dropped afterwards; ``upgraded``:
    with the newest schema, as 'keyhouse admin db upgrade' leaves it (a server refuses an
    empty database). Where none answers the test is skipped, except under CI=true, where it
    fails."""
    engine = _admin_engine()
    name = f"{prefix}_{secrets.token_hex(4)}"
    template = f' TEMPLATE "{_upgraded_template()}"' if upgraded else ""
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{template}'))
    except OperationalError as exc:
        engine.dispose()
        _no_postgres(exc)
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


_TEMPLATE: list[str] = []
_TEMPLATE_LOCK = threading.Lock()


def _upgraded_template() -> str:
    """A database with the newest schema, made once per test process and copied for each test
    that wants an upgraded one (a copy takes a fraction of running the migrations)."""
    with _TEMPLATE_LOCK:  # the test and the pool's thread may ask at once
        if not _TEMPLATE:
            _TEMPLATE.append(_make_template())
        return _TEMPLATE[0]


def _make_template() -> str:
    engine = _admin_engine()
    name = f"keyhouse_template_{secrets.token_hex(4)}"
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        engine.dispose()
        _no_postgres(exc)
    engine.dispose()
    db = Database(f"{POSTGRES_SERVER}/{name}")
    try:
        db.migrate()
    finally:
        db.dispose()  # CREATE DATABASE ... TEMPLATE needs it without connections
    return name


class _SuitePool:
    """The PostgreSQL pass's databases: copies of the template, made one ahead and dropped
    behind on a thread of their own, so that a test waits for neither (a copy takes about
    0.4 s, a drop 0.1 s)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="keyhouse-test-databases")
        self._next: Future[str] | None = None

    def _create(self) -> str:
        name = f"kh_suite_{secrets.token_hex(4)}"
        engine = _admin_engine()
        try:
            with engine.connect() as connection:
                connection.execute(
                    text(f'CREATE DATABASE "{name}" TEMPLATE "{_upgraded_template()}"')
                )
        finally:
            engine.dispose()
        return name

    def _drop(self, name: str) -> None:
        engine = _admin_engine()
        try:
            with engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()

    def take(self) -> str:
        """The URL of a new database with the newest schema (give it back when done)."""
        taken = self._next or self._executor.submit(self._create)
        self._next = self._executor.submit(self._create)
        try:
            return f"{POSTGRES_SERVER}/{taken.result()}"
        except OperationalError as exc:
            _no_postgres(exc)
            raise

    def give_back(self, url: str) -> None:
        self._executor.submit(self._drop, url.rsplit("/", 1)[1])

    def close(self) -> None:
        if self._next is not None:
            with suppress(Exception):  # none was made: nothing to drop
                self._executor.submit(self._drop, self._next.result())
            self._next = None
        self._executor.shutdown(wait=True)


_POOL: list[_SuitePool] = []


@contextmanager
def _suite_database() -> Iterator[str]:
    if not _POOL:
        _POOL.append(_SuitePool())
    url = _POOL[0].take()
    try:
        yield url
    finally:
        _POOL[0].give_back(url)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: its fuzz tally goes to the controller
        workeroutput["fuzz_lines"] = _fuzz_lines()
    if _POOL:
        _POOL.pop().close()
    if not _TEMPLATE:
        return
    engine = _admin_engine()
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{_TEMPLATE.pop()}" WITH (FORCE)'))
    finally:
        engine.dispose()


class SuiteStores:
    """The PostgreSQL pass: a fresh upgraded database per data folder a test uses. The first is
    also KEYHOUSE_DATABASE_URL for the whole test, so every Settings() and every subprocess
    (`keyhouse serve`, `keyhouse admin ...`) uses it unless told otherwise."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack
        self._by_data: dict[Path, str] = {}
        self.first = stack.enter_context(_suite_database())

    def url_for(self, data: Path) -> str:
        data = Path(data).absolute()
        if data not in self._by_data:
            self._by_data[data] = (
                self.first if not self._by_data else self._stack.enter_context(_suite_database())
            )
        return self._by_data[data]


_SUITE_STORES: list[SuiteStores] = []


@pytest.fixture(autouse=True)
def suite_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[SuiteStores | None]:
    """In the PostgreSQL pass: the test's databases (see ``SuiteStores``); else None."""
    if not SUITE_ON_POSTGRES:
        yield None
        return
    with ExitStack() as stack:
        stores = SuiteStores(stack)
        monkeypatch.setenv("KEYHOUSE_DATABASE_URL", stores.first)
        _SUITE_STORES.append(stores)
        try:
            yield stores
        finally:
            _SUITE_STORES.remove(stores)


def database_url_for(data: Path) -> str | None:
    """The store a test's data folder uses: None in the SQLite pass (the folder's keyhouse.db),
    its own fresh PostgreSQL database in the PostgreSQL pass."""
    return _SUITE_STORES[-1].url_for(data) if _SUITE_STORES else None


def database_environment(data: Path) -> dict[str, str]:
    """KEYHOUSE_DATABASE_URL for a `keyhouse` subprocess on ``data`` in the PostgreSQL pass
    (nothing in the SQLite pass)."""
    url = database_url_for(data)
    return {"KEYHOUSE_DATABASE_URL": url} if url else {}


def clear_keyhouse_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every KEYHOUSE_* variable from the outside, except the PostgreSQL pass's
    KEYHOUSE_DATABASE_URL (the test's own fresh database)."""
    for name in list(os.environ):
        if name.startswith("KEYHOUSE_") and not (
            SUITE_ON_POSTGRES and name == "KEYHOUSE_DATABASE_URL"
        ):
            monkeypatch.delenv(name)


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


# Under pytest-xdist (`-n 2`, as scripts/test runs) the fuzz runs happen in the workers: each
# hands its tally's lines to the controller, which prints them after the run.
_WORKER_FUZZ_LINES: list[list[str]] = []


def _fuzz_lines() -> list[str]:
    fuzz = sys.modules.get("fuzz_support")
    if fuzz is None or not fuzz.TALLY:
        return []
    return fuzz.report()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    lines = getattr(node, "workeroutput", {}).get("fuzz_lines")
    if lines:
        _WORKER_FUZZ_LINES.append(lines)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """After a fuzz run (tests/fuzz): the share of 2xx answers per operation."""
    reports = [lines for lines in [_fuzz_lines()] if lines] + _WORKER_FUZZ_LINES
    if not reports:
        return
    terminalreporter.section("fuzz: share of 2xx answers per operation")
    for lines in reports:
        for line in lines:
            terminalreporter.write_line(line)
