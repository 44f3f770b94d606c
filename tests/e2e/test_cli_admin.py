"""The `keyhouse` command line, run as real subprocesses: `admin …` and `serve`.

Every run names its data folder (``--data`` or ``KEYHOUSE_DATA``), and HOME / XDG_DATA_HOME
point into the test's tmp folder, so the user's own data directory is never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from conftest import (
    SUITE_ON_POSTGRES,
    clear_keyhouse_environment,
    database_url_for,
    start_server,
)
from keyhouse.app import create_app
from keyhouse.settings import Settings


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No KEYHOUSE_* from the outside (but the PostgreSQL pass's store), and a HOME of our own
    (the default data dir lives there)."""
    clear_keyhouse_environment(monkeypatch)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    return home


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def keyhouse(
    *args: str, data: Path | None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert data is not None or (env and "KEYHOUSE_DATA" in env), "never use the default data dir"
    command = [sys.executable, "-m", "keyhouse"]
    if data is not None:
        command += ["--data", str(data)]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    lines = done.stdout.strip().splitlines()
    assert lines, done.stdout
    return lines[-1]


def create_account(data: Path, email: str = "owner@example.com", *extra: str) -> int:
    line = last_line(keyhouse("admin", "account", "create", "--email", email, *extra, data=data))
    assert line.isdigit(), line
    return int(line)


def create_token(data: Path, account: int, *extra: str) -> str:
    line = last_line(
        keyhouse("admin", "token", "create", "--account", str(account), *extra, data=data)
    )
    assert line.startswith("kh_") and " " not in line, line
    return line


def add_lock(data: Path, account: int, name: str, *extra: str) -> int:
    line = last_line(
        keyhouse(
            "admin", "lock", "add", "--account", str(account), "--name", name, *extra, data=data
        )
    )
    assert line.isdigit(), line
    return int(line)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    (line,) = lines
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle in line, line
    return line


@contextmanager
def store_of(data: Path) -> Iterator[Any]:
    """A connection to the data folder's store: its SQLite file, or in the PostgreSQL pass the
    test's database for that folder."""
    engine = create_engine(database_url_for(data) or f"sqlite:///{data / 'keyhouse.db'}")
    try:
        with engine.begin() as connection:  # committed at the end, like sqlite3's
            yield _Plain(connection)
    finally:
        engine.dispose()


class _Plain:
    """sqlite3's connection.execute(sql), as far as these tests use it."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def execute(self, sql: str, parameters: tuple = ()) -> _Rows:
        for number in range(len(parameters)):  # sqlite3's "?" placeholders, in order
            sql = sql.replace("?", f":p{number}", 1)
        bound = {f"p{number}": value for number, value in enumerate(parameters)}
        result = self._connection.execute(text(sql), bound)
        return _Rows([tuple(row) for row in result] if result.returns_rows else [])


class _Rows(list):
    def fetchone(self) -> tuple:
        return self[0]

    def fetchall(self) -> list[tuple]:
        return list(self)


def accounts_in(data: Path) -> int:
    with store_of(data) as connection:
        return connection.execute("select count(*) from accounts").fetchone()[0]


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# --- admin account / token / lock -------------------------------------------------------------


def test_account_create_prints_the_id_alone_on_the_last_line(data: Path) -> None:
    first = create_account(data, "first@example.com")
    second = create_account(data, "second@example.com", "--name", "Second Owner")
    assert second == first + 1
    done = keyhouse("admin", "account", "create", "--email", "third@example.com", data=data)
    assert "third@example.com" in done.stdout
    assert accounts_in(data) == 3
    with store_of(data) as connection:
        names = dict(connection.execute("select email, name from accounts"))
    assert names["second@example.com"] == "Second Owner"
    assert names["first@example.com"] == "first"


def test_token_create_prints_a_working_token_with_its_scopes(data: Path) -> None:
    account = create_account(data)
    lock = add_lock(data, account, "Front Door")
    full = create_token(data, account)
    read_only = create_token(
        data,
        account,
        "--scope",
        "smartlock.readOnly",
        "--scope",
        "smartlock.auth",
        "--name",
        "dashboard",
    )
    assert full != read_only
    done = keyhouse(
        "admin", "token", "create", "--account", str(account), "--name", "ci", data=data
    )
    assert "'ci'" in done.stdout
    # tokens are stored only as hashes
    with store_of(data) as connection:
        stored = connection.execute("select name, token_hash, scopes from api_tokens").fetchall()
    assert all(read_only not in str(row) and full not in str(row) for row in stored)
    assert ("dashboard", "smartlock.readOnly smartlock.auth") in [(n, s) for n, _h, s in stored]

    with TestClient(create_app(Settings(data=data)), raise_server_exceptions=False) as client:
        for token in (full, read_only):
            answer = client.get("/smartlock", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.text
            assert [lk["smartlockId"] for lk in answer.json()] == [lock]
        # the read-only token lacks "account" and "smartlock"; smartlock.auth is enough here
        answer = client.get("/smartlock/auth", headers={"Authorization": f"Bearer {read_only}"})
        assert answer.status_code == 200, answer.text
        answer = client.get("/smartlock", headers={"Authorization": "Bearer kh_unknown"})
        assert answer.status_code == 401


def test_token_scopes_are_enforced(data: Path) -> None:
    account = create_account(data)
    read_only = create_token(data, account, "--scope", "smartlock.readOnly")
    with TestClient(create_app(Settings(data=data)), raise_server_exceptions=False) as client:
        headers = {"Authorization": f"Bearer {read_only}"}
        assert client.get("/smartlock", headers=headers).status_code == 200
        answer = client.get("/smartlock/auth", headers=headers)
        assert answer.status_code == 403, answer.text
        assert "smartlock.auth" in answer.json()["detailMessage"]


def test_lock_add_prints_the_smartlock_id_derived_from_type_and_nuki_id(data: Path) -> None:
    account = create_account(data)
    sl4 = add_lock(
        data, account, "Front Door", "--keypad", "--type", "4", "--timezone", "Europe/Vienna"
    )
    opener = add_lock(data, account, "Gate", "--type", "2", "--timezone", "Europe/Berlin")
    keyturner = add_lock(data, account, "Old lock", "--type", "0")
    default = add_lock(data, account, "Default")

    assert f"{sl4:X}".startswith("4") and len(f"{sl4:X}") == 9
    assert f"{opener:X}".startswith("2") and len(f"{opener:X}") == 9
    assert keyturner < 2**32  # no type digit for type 0
    assert f"{default:X}".startswith("4")  # 4 (Smart Lock 3.0/4) is the default type

    token = create_token(data, account)
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(Settings(data=data)), raise_server_exceptions=False) as client:
        locks = {lk["smartlockId"]: lk for lk in client.get("/smartlock", headers=headers).json()}
    assert set(locks) == {sl4, opener, keyturner, default}
    for smartlock_id, lock in locks.items():
        # smartlockId = int(hex(type) + nukiId, 16)
        nuki_id = f"{smartlock_id & 0xFFFFFFFF:08X}"
        prefix = f"{lock['type']:X}" if lock["type"] else ""
        assert int(prefix + nuki_id, 16) == smartlock_id
    assert locks[sl4]["type"] == 4 and locks[sl4]["name"] == "Front Door"
    assert locks[sl4]["config"]["keypadPaired"] is True
    assert locks[sl4]["config"]["timezone"] == "Europe/Vienna"
    assert locks[opener]["type"] == 2 and locks[opener]["opener"] is True
    assert locks[opener]["config"]["keypadPaired"] is False
    assert locks[opener]["config"]["timezone"] == "Europe/Berlin"
    assert locks[keyturner]["type"] == 0 and locks[keyturner]["keyturner"] is True


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("admin", "token", "create", "--account", "999"), ("account 999 does not exist",)),
        (
            ("admin", "lock", "add", "--account", "999", "--name", "Nowhere"),
            ("account 999 does not exist",),
        ),
        (
            ("admin", "lock", "add", "--account", "1", "--name", "X", "--timezone", "Mars/Olympus"),
            ("Mars/Olympus", "time zone"),
        ),
        (
            ("admin", "lock", "add", "--account", "1", "--name", "X", "--type", "7"),
            ("lock type 7",),
        ),
        (
            ("admin", "token", "create", "--account", "1", "--scope", "smartlock.everything"),
            ("smartlock.everything", "scope"),
        ),
        (
            ("admin", "token", "create", "--account", "1", "--scope", "smartlock", "--scope", "x"),
            ("unknown scope(s) x",),
        ),
    ],
    ids=[
        "token-unknown-account",
        "lock-unknown-account",
        "bad-timezone",
        "bad-type",
        "scope",
        "mix",
    ],
)
def test_bad_input_fails_with_one_line_and_no_traceback(
    data: Path, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    account = create_account(data)
    assert account == 1
    assert_one_line_error(keyhouse(*args, data=data), *needles)
    # nothing was made
    with store_of(data) as connection:
        assert connection.execute("select count(*) from smartlocks").fetchone()[0] == 0
        assert connection.execute("select count(*) from api_tokens").fetchone()[0] == 0


@pytest.mark.sqlite_only("the data folder chooses the store only on SQLite")
def test_keyhouse_data_env_var_works_in_place_of_data_option(
    tmp_path: Path, isolated_home: Path
) -> None:
    folder = tmp_path / "from-env"
    env = {"KEYHOUSE_DATA": str(folder)}
    done = keyhouse("admin", "account", "create", "--email", "env@example.com", data=None, env=env)
    account = int(last_line(done))
    token = last_line(
        keyhouse("admin", "token", "create", "--account", str(account), data=None, env=env)
    )
    lock = int(
        last_line(
            keyhouse(
                "admin",
                "lock",
                "add",
                "--account",
                str(account),
                "--name",
                "Env",
                data=None,
                env=env,
            )
        )
    )
    assert SUITE_ON_POSTGRES or (folder / "keyhouse.db").is_file()
    assert accounts_in(folder) == 1
    # nothing went to the default data directory
    assert not any(isolated_home.rglob("keyhouse.db"))
    with TestClient(create_app(Settings(data=folder)), raise_server_exceptions=False) as client:
        answer = client.get("/smartlock", headers={"Authorization": f"Bearer {token}"})
    assert [lk["smartlockId"] for lk in answer.json()] == [lock]

    # --data wins over KEYHOUSE_DATA
    other = tmp_path / "from-option"
    keyhouse("admin", "account", "create", "--email", "o@example.com", data=other, env=env)
    assert accounts_in(other) == 1
    assert accounts_in(folder) == 1


def test_account_list_and_lock_rename(data: Path) -> None:
    """Issue 15.12: the admin verbs people reach for."""
    empty = keyhouse("admin", "account", "create", "--email", "a@example.com", data=data)
    assert empty.returncode == 0
    second = create_account(data, "b@example.com", "--name", "Bea")
    create_token(data, second)
    front = add_lock(data, second, "Front Door")
    add_lock(data, second, "Flat 2")
    done = keyhouse("admin", "account", "list", data=data, env={"COLUMNS": "120"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["id", "┃", "email", "┃", "name", "┃", "locks", "┃", "tokens",
                                "┃", "created"]  # fmt: skip
    assert lines[2].split()[:7] == ["1", "│", "a@example.com", "│", "a", "│", "0"]
    assert lines[3].split()[:10] == ["2", "│", "b@example.com", "│", "Bea", "│", "2", "│",
                                     "1", "│"]  # fmt: skip

    done = keyhouse("admin", "lock", "rename", "front door", "--name", "Back Door", data=data)
    assert last_line(done) == str(front)
    assert "from 'Front Door' to 'Back Door'" in done.stdout
    clash = keyhouse("admin", "lock", "rename", str(front), "--name", "FLAT 2", data=data)
    assert clash.returncode == 1  # refused by the store, like an API error
    assert clash.stderr.startswith("error: account 2 already has a lock called 'FLAT 2'")
    with store_of(data) as connection:
        names = connection.execute("select name from smartlocks order by name").fetchall()
    assert [name for (name,) in names] == ["Back Door", "Flat 2"]

    # remove: refused while the lock has keys, unless they go with it
    with store_of(data) as connection:
        connection.execute(
            "insert into smartlock_auths (id, account_id, smartlock_id, type, name, enabled,"
            " remote_allowed, smart_actions_enabled, code, lock_count, created_at, updated_at,"
            " deleting) values ('6b0000000000000000000009', 2, ?, 13, 'Cleaner', true, false,"
            " false, 345678, 0, '2026-12-01 10:00:00', '2026-12-01 10:00:00', false)",
            (front,),
        )
    refused = keyhouse("admin", "lock", "remove", "Back Door", data=data)
    assert refused.returncode == 1
    assert "still has 1 key(s)" in refused.stderr and "--with-keys" in refused.stderr
    done = keyhouse("admin", "lock", "remove", "Back Door", "--with-keys", data=data)
    assert last_line(done) == str(front)
    assert "and 1 key(s)" in done.stdout
    with store_of(data) as connection:
        left = connection.execute("select count(*) from smartlock_auths").fetchone()[0]
        names = connection.execute("select name from smartlocks").fetchall()
    assert (left, names) == (0, [("Flat 2",)])


@pytest.mark.sqlite_only("a data folder without keyhouse.db is one without a store")
def test_admin_commands_refuse_a_data_folder_without_a_store(
    tmp_path: Path, isolated_home: Path
) -> None:
    """Issue 15.5: no empty table, exit 0 and a new ~/.local/share/keyhouse/keyhouse.db."""
    default = isolated_home / ".local" / "share" / "keyhouse"
    for args in (
        ("admin", "mail", "list"),
        ("admin", "lock", "set", "1", "--offline"),
        ("admin", "token", "create", "--account", "1"),
        ("admin", "lock", "add", "--account", "1", "--name", "X"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "keyhouse", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.startswith(f"error: no Keyhouse store in {default} "), done.stderr
        assert "--data" in done.stderr and "Traceback" not in done.stderr
        assert done.stdout == ""
    assert not (default / "keyhouse.db").exists()
    empty = tmp_path / "empty"
    done = keyhouse("admin", "mail", "list", data=empty)
    assert done.returncode == 2 and f"no Keyhouse store in {empty} " in done.stderr
    assert not (empty / "keyhouse.db").exists()
    # the command that creates things still starts a store
    assert create_account(empty) == 1
    assert keyhouse("admin", "mail", "list", data=empty).returncode == 0


# --- serve ------------------------------------------------------------------------------------


def test_admin_commands_work_while_the_server_runs(data: Path, isolated_home: Path) -> None:
    process, server = start_server(data, {"HOME": str(isolated_home)})
    try:
        assert server.token and len(server.lock_ids) == 2
        account = create_account(data, "second.owner@example.com")
        lock = add_lock(data, account, "Garage", "--type", "2", "--timezone", "Europe/Zurich")
        token = create_token(data, account, "--scope", "smartlock.readOnly")

        answer = httpx.get(f"{server.url}/smartlock", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        (listed,) = answer.json()
        assert listed["smartlockId"] == lock
        assert listed["name"] == "Garage"
        assert listed["accountId"] == account
        answer = httpx.get(
            f"{server.url}/smartlock/{lock}", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200
        assert answer.json()["config"]["timezone"] == "Europe/Zurich"

        # the demo account sees only its own locks
        answer = httpx.get(f"{server.url}/smartlock", headers=server.headers)
        assert sorted(lk["smartlockId"] for lk in answer.json()) == sorted(server.lock_ids)
        # and a key can be made on the lock the CLI added, through the running server
        full = create_token(data, account)
        headers = {"Authorization": f"Bearer {full}"}
        user = httpx.put(
            f"{server.url}/account/user",
            json={"email": "g@example.com", "name": "G"},
            headers=headers,
        ).json()["accountUserId"]
        answer = httpx.put(
            f"{server.url}/smartlock/{lock}/auth",
            json={"name": "Gate key", "accountUserId": user, "remoteAllowed": True},
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 204, answer.text
        (key,) = httpx.get(f"{server.url}/smartlock/{lock}/auth", headers=headers).json()
        assert key["name"] == "Gate key"
        assert process.poll() is None
    finally:
        stop(process)


def test_first_serve_prints_a_token_and_the_docs_and_a_restart_seeds_nothing(
    data: Path, isolated_home: Path
) -> None:
    assert not data.exists()
    process, server = start_server(data, {"HOME": str(isolated_home)})
    try:
        text = "\n".join(server.output)
        assert "First start" in text
        assert server.token.startswith("kh_")
        assert len(server.lock_ids) == 2
        assert f"Swagger UI: {server.url}/docs" in text
        assert str(data) in text
        answer = httpx.get(f"{server.url}/smartlock", headers=server.headers)
        assert answer.status_code == 200, answer.text
        assert sorted(lk["smartlockId"] for lk in answer.json()) == sorted(server.lock_ids)
        docs = httpx.get(f"{server.url}/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text
    finally:
        stop(process)
    assert accounts_in(data) == 1

    process, again = start_server(data, {"HOME": str(isolated_home)})
    try:
        text = "\n".join(again.output)
        assert "First start" not in text
        assert again.token == ""  # no new token printed
        assert again.lock_ids == []
        # …but it says how to make one (issue 15.12)
        assert (
            "API tokens are shown only when made (the demo token at the first start); "
            # (on PostgreSQL the data folder does not choose the store: no --data)
            f"'keyhouse {'' if SUITE_ON_POSTGRES else f'--data {data} '}admin token create "
            "--account 1' makes another." in text
        )
        assert f"Swagger UI: {again.url}/docs" in text
        # the first token still works, on the same two locks
        answer = httpx.get(f"{again.url}/smartlock", headers=server.headers)
        assert answer.status_code == 200, answer.text
        assert sorted(lk["smartlockId"] for lk in answer.json()) == sorted(server.lock_ids)
    finally:
        stop(process)
    assert accounts_in(data) == 1
    assert not any(isolated_home.rglob("keyhouse.db"))
