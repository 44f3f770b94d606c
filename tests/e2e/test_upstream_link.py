"""`keyhouse admin upstream link|unlink|status`, against a real upstream: a second Keyhouse
server process in Nuki mode (KEYHOUSE_NUKI_MODE=1), the stand-in for api.nuki.io.

The Keyhouse under test is a data folder driven by the real CLI (subprocesses); what it stored
is read back from its SQLite file and through its HTTP API (in-process, on the same folder).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from standin import standin_server

from conftest import LiveServer, wait_until
from keyhouse.app import create_app
from keyhouse.runtime import Runtime
from keyhouse.services import admin, upstream
from keyhouse.settings import Settings
from official_schemas import request_problems

# The CLI runs on the data folder's SQLite file and the checks read that file (rows(), the
# secret not in its bytes): SQLite by nature. The link's store side on PostgreSQL: the racing
# links below (both stores, in the SQLite pass) and the Nuki-mode tests.
pytestmark = pytest.mark.sqlite_only("the CLI and the checks use the data folder's SQLite file")


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The upstream: `keyhouse serve` in Nuki mode, with its demo account's two locks."""
    with standin_server(tmp_path_factory.mktemp("standin") / "data") as server:
        yield server


def keyhouse(
    data: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KEYHOUSE_", "NUKI_"))}
    return subprocess.run(
        [sys.executable, "-m", "keyhouse", "--data", str(data), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "KEYHOUSE_CONFIG": str(data.parent / "config.toml"), **(env or {})},
        check=False,
    )


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip().splitlines()[-1]


def refused(done: subprocess.CompletedProcess) -> str:
    assert done.returncode != 0, done.stdout
    return done.stderr.strip()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The Keyhouse under test: a data folder with one account (id 1)."""
    data = tmp_path / "keyhouse"
    assert ok(keyhouse(data, "admin", "account", "create", "--email", "owner@example.com")) == "1"
    return data


def upstream_locks(server: LiveServer) -> list[dict]:
    answer = httpx.get(f"{server.url}/smartlock", headers=server.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def rows(data: Path, query: str, *args: object) -> list[tuple]:
    with sqlite3.connect(data / "keyhouse.db") as connection:
        return connection.execute(query, args).fetchall()


def link(data: Path, server: LiveServer, account: int = 1, token: str | None = None):
    return keyhouse(
        data,
        "admin",
        "upstream",
        "link",
        "--account",
        str(account),
        "--token",
        token or server.token,
        "--url",
        server.url,
    )


# --- link, relink, status, unlink ------------------------------------------------------------


def test_link_imports_the_upstream_locks_with_their_smartlock_ids(
    standin: LiveServer, home: Path
) -> None:
    theirs = {lock["smartlockId"]: lock for lock in upstream_locks(standin)}
    done = link(home, standin)
    assert ok(done) == str(len(theirs))
    assert f"to {standin.url}" in done.stdout
    ours = rows(home, "SELECT id, account_id, name, type, link, virtual FROM smartlocks")
    assert {row[0] for row in ours} == set(theirs)
    for lock_id, account, name, lock_type, kind, virtual in ours:
        assert (account, kind, virtual) == (1, "nuki", 0)
        assert (name, lock_type) == (theirs[lock_id]["name"], theirs[lock_id]["type"])

    # Through Keyhouse's API: the upstream's config and state, and a key reaches the upstream.
    runtime = Runtime(Settings(data=home, worker_interval_seconds=0.1, confirm_wait_seconds=0))
    with TestClient(create_app(runtime=runtime)) as client:
        with runtime.db.session() as session:
            token = admin.create_token(session, account_id=1)
        headers = {"Authorization": f"Bearer {token}"}
        listed = {
            lock["smartlockId"]: lock for lock in client.get("/smartlock", headers=headers).json()
        }
        for lock_id, lock in theirs.items():
            mine = listed[lock_id]
            assert mine["virtualDevice"] is False
            assert mine["state"] == lock["state"]
            assert mine["serverState"] == lock["serverState"]
            assert {k: v for k, v in mine["config"].items() if k != "timezone"} == lock["config"]
        (lock_id,) = [i for i, lock in theirs.items() if lock["config"]["keypadPaired"]]
        created = client.put(
            f"/smartlock/{lock_id}/auth",
            headers=headers,
            json={"name": "Cleaner", "type": 13, "code": 345678, "remoteAllowed": False},
        )
        assert created.status_code == 204, created.text
        (key,) = wait_until(
            lambda: [
                k
                for k in client.get(f"/smartlock/{lock_id}/auth", headers=headers).json()
                if k["syncState"] == "applied"
            ],
            timeout=30,
            what="the key to reach the upstream's lock",
        )
        theirs_now = httpx.get(f"{standin.url}/smartlock/{lock_id}/auth", headers=standin.headers)
        assert [k["code"] for k in theirs_now.json() if k["name"] == "Cleaner"] == [345678]
        gone = client.delete(f"/smartlock/{lock_id}/auth/{key['id']}", headers=headers)
        assert gone.status_code == 204, gone.text
        wait_until(
            lambda: not client.get(f"/smartlock/{lock_id}/auth", headers=headers).json(),
            timeout=30,
            what="the key to be removed there",
        )


def test_relink_adds_new_locks_and_marks_removed_ones(standin: LiveServer, home: Path) -> None:
    standin_data = standin.data

    def add(name: str) -> int:
        return int(
            ok(keyhouse(standin_data, "admin", "lock", "add", "--account", "1", "--name", name))
        )

    def remove(lock_id: int) -> None:
        ok(keyhouse(standin_data, "admin", "lock", "remove", str(lock_id), "--with-keys"))

    original = {lock["smartlockId"] for lock in upstream_locks(standin)}
    leaving = add("Shed")
    try:
        assert ok(link(home, standin)) == str(len(original) + 1)
        remove(leaving)
        added = add("Garage")
        try:
            now = {lock["smartlockId"] for lock in upstream_locks(standin)}
            assert now == original | {added}
            done = link(home, standin)
            assert ok(done) == str(len(now))
            assert "1 new" in done.stdout and "1 no longer listed there" in done.stdout
            ours = dict(rows(home, "SELECT id, name FROM smartlocks"))
            assert set(ours) == original | {added, leaving}  # the removed one is kept
            assert ours[added] == "Garage"
            marked = dict(rows(home, "SELECT smartlock_id, removed_at FROM upstream_locks"))
            assert marked[leaving] is not None
            assert all(marked[lock_id] is None for lock_id in now)
            text = keyhouse(home, "admin", "upstream", "status").stdout
            assert "locks: 4 (1 no longer listed upstream)" in text
        finally:
            remove(added)
    finally:
        if leaving in {lock["smartlockId"] for lock in upstream_locks(standin)}:
            remove(leaving)
    assert {lock["smartlockId"] for lock in upstream_locks(standin)} == original


def test_status_shows_each_link_and_never_the_token(standin: LiveServer, home: Path) -> None:
    assert (
        ok(keyhouse(home, "admin", "upstream", "status")) == "no account is linked to Nuki's cloud"
    )
    ok(link(home, standin))
    ok(link(home, standin))
    done = keyhouse(home, "admin", "upstream", "status")
    ok(done)
    assert f"account 1: {standin.url}" in done.stdout
    assert "locks: 2" in done.stdout
    assert "last error: none" in done.stdout
    assert "calls used: 2" in done.stdout
    assert "last contact: 20" in done.stdout
    assert standin.token not in done.stdout + done.stderr
    import json

    (entry,) = json.loads(keyhouse(home, "admin", "upstream", "status", "--json").stdout)
    assert entry["account"] == 1 and entry["calls"] == 2 and entry["lastError"] is None


def test_unlink_deletes_the_token_and_keeps_the_locks(standin: LiveServer, home: Path) -> None:
    ok(link(home, standin))
    done = keyhouse(home, "admin", "upstream", "unlink", "--account", "1")
    ok(done)
    assert "token is deleted" in done.stdout
    assert rows(home, "SELECT * FROM upstream_links") == []
    assert len(rows(home, "SELECT id FROM smartlocks")) == 2
    assert "no account is linked" in keyhouse(home, "admin", "upstream", "status").stdout
    again = refused(keyhouse(home, "admin", "upstream", "unlink", "--account", "1"))
    assert "not linked" in again
    # Linked again: the same locks, refreshed, not doubled.
    assert ok(link(home, standin)) == "2"
    assert len(rows(home, "SELECT id FROM smartlocks")) == 2


# --- refusals ----------------------------------------------------------------------------------


def test_a_wrong_token_is_a_sentence_and_nothing_is_imported(
    standin: LiveServer, home: Path
) -> None:
    wrong = "kh_" + "x" * 43
    done = link(home, standin, token=wrong)
    message = refused(done)
    assert message.startswith("error: nothing imported: ")
    assert "refused the token (401 Unauthorized)" in message
    assert wrong not in done.stdout + done.stderr
    assert rows(home, "SELECT id FROM smartlocks") == []
    assert rows(home, "SELECT * FROM upstream_links") == []


def test_an_unreachable_or_wrong_url_is_a_sentence(home: Path, standin: LiveServer) -> None:
    from conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    done = keyhouse(
        home, "admin", "upstream", "link", "--account", "1", "--token", "t", "--url", dead
    )
    assert "could not reach Nuki's API at" in refused(done)
    done = keyhouse(
        home, "admin", "upstream", "link", "--account", "1", "--token", "t", "--url", "ftp://x"
    )
    assert "is not an http(s) URL" in refused(done)
    done = keyhouse(
        home, "admin", "upstream", "link", "--account", "7", "--token", "t", "--url", standin.url
    )
    assert "account 7 does not exist" in refused(done)
    assert rows(home, "SELECT id FROM smartlocks") == []


def test_an_html_429_from_the_upstream_is_a_sentence(standin: LiveServer, home: Path) -> None:
    switched = httpx.post(
        f"{standin.url}/emulator/nuki", headers=standin.headers, json={"tooManyRequests": 1}
    )
    assert switched.status_code == 200, switched.text
    message = refused(link(home, standin))
    assert "429 Too Many Requests: try again in a minute" in message
    assert rows(home, "SELECT id FROM smartlocks") == []
    assert ok(link(home, standin)) == "2"


def test_a_lock_already_in_another_account_is_refused(standin: LiveServer, home: Path) -> None:
    assert ok(keyhouse(home, "admin", "account", "create", "--email", "b@example.com")) == "2"
    ok(link(home, standin, account=1))
    message = refused(link(home, standin, account=2))
    assert "is already in Keyhouse, in account 1" in message
    assert "nothing was imported" in message
    assert rows(home, "SELECT id FROM smartlocks WHERE account_id = 2") == []
    assert rows(home, "SELECT * FROM upstream_links WHERE account_id = 2") == []


def test_a_virtual_lock_with_the_same_id_is_refused(standin: LiveServer, tmp_path: Path) -> None:
    """The stand-in's own data folder holds its locks as virtual ones: linking its account
    into itself would make one lock twice."""
    message = refused(link(standin.data, standin))
    assert "as a virtual lock" in message


# --- the secret ---------------------------------------------------------------------------------


def test_the_token_is_encrypted_at_rest_and_the_key_file_is_0600(
    standin: LiveServer, home: Path
) -> None:
    outputs = []
    done = link(home, standin)
    outputs.append(done.stdout + done.stderr)
    ok(done)
    (sealed,) = rows(home, "SELECT token_secret FROM upstream_links")[0:1][0]
    assert standin.token not in sealed
    assert sealed.startswith("gAAAAA")  # a Fernet token
    for name in os.listdir(home):
        if name.startswith("keyhouse.db"):
            assert standin.token.encode() not in (home / name).read_bytes(), name
    key_file = home / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [p for p in os.listdir(home) if p.startswith(".secret.key")] == []
    from keyhouse.store.secret_box import SecretBox

    assert SecretBox(home).open(sealed) == standin.token
    for args in (("status",), ("status", "--json")):
        done = keyhouse(home, "admin", "upstream", *args)
        outputs.append(done.stdout + done.stderr)
    assert all(standin.token not in text for text in outputs)
    # The audit log names the link, not the token.
    audit = rows(home, "SELECT action, after FROM audit_events WHERE action LIKE 'upstream.%'")
    assert audit and all(standin.token not in str(row) for row in audit)


def test_keyhouse_secret_key_is_used_instead_of_a_key_file(standin: LiveServer, home: Path) -> None:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    ok(
        keyhouse(
            home,
            "admin",
            "upstream",
            "link",
            "--account",
            "1",
            "--url",
            standin.url,
            env={"KEYHOUSE_SECRET_KEY": key, "NUKI_API_TOKEN": standin.token},
        )
    )
    assert not (home / "secret.key").exists()
    (sealed,) = rows(home, "SELECT token_secret FROM upstream_links")[0]
    assert Fernet(key.encode()).decrypt(sealed.encode()).decode() == standin.token
    bad = keyhouse(
        home,
        "admin",
        "upstream",
        "link",
        "--account",
        "1",
        "--url",
        standin.url,
        env={"KEYHOUSE_SECRET_KEY": "not-a-key", "NUKI_API_TOKEN": standin.token},
    )
    assert "KEYHOUSE_SECRET_KEY is not a Fernet key" in refused(bad)
    assert "not-a-key" not in bad.stderr


# --- every request the upstream client sends is one api.nuki.io accepts -----------------------


class Recording(httpx.BaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.inner.handle_request(request)


def test_every_upstream_request_is_in_the_official_spec(
    standin: LiveServer, tmp_path: Path
) -> None:
    runtime = Runtime(Settings(data=tmp_path / "kh"), background=False)
    runtime.db.ensure_schema()
    with runtime.db.session() as session:
        account = admin.create_account(session, email="o@example.com").id
    recording = Recording()
    result = upstream.link(
        runtime.db,
        runtime.secrets,
        account_id=account,
        token=standin.token,
        url=standin.url,
        transport=recording,
    )
    assert result.imported == 2
    assert recording.requests
    for request in recording.requests:
        problems = request_problems(
            request.method, request.url.path, request.url.params, request.content
        )
        assert problems == [], (request.method, request.url.path, problems)
        assert request.headers["authorization"] == f"Bearer {standin.token}"
    runtime.db.dispose()


# --- both stores, and two links racing for one lock --------------------------------------------


def test_link_on_either_store_and_racing_links_import_a_lock_once(
    standin: LiveServer, tmp_path: Path, store_url: str | None
) -> None:
    """Two operators link the same Nuki account into two Keyhouse accounts at once, many
    rounds: every round exactly one wins, the other is refused with the sentence, and each
    lock is in Keyhouse once."""
    import threading

    from sqlalchemy import delete, func, select

    from keyhouse.errors import Conflict
    from keyhouse.store.models import Smartlock, UpstreamLink

    runtime = Runtime(Settings(data=tmp_path / "kh", database_url=store_url), background=False)
    runtime.db.ensure_schema()
    theirs = {lock["smartlockId"] for lock in upstream_locks(standin)}
    try:
        for round_ in range(8):
            with runtime.db.session() as session:
                accounts = [
                    admin.create_account(session, email=f"r{round_}{i}@example.com").id
                    for i in range(2)
                ]
            outcomes: list[object] = []
            barrier = threading.Barrier(2)

            def one(account: int, barrier: threading.Barrier, outcomes: list[object]) -> None:
                barrier.wait()
                try:
                    outcomes.append(
                        upstream.link(
                            runtime.db,
                            runtime.secrets,
                            account_id=account,
                            token=standin.token,
                            url=standin.url,
                        )
                    )
                except Conflict as exc:
                    outcomes.append(exc)

            threads = [threading.Thread(target=one, args=(a, barrier, outcomes)) for a in accounts]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            won = [o for o in outcomes if isinstance(o, upstream.LinkResult)]
            lost = [o for o in outcomes if isinstance(o, Conflict)]
            assert (len(won), len(lost)) == (1, 1), outcomes
            assert "is already in Keyhouse, in account" in lost[0].message
            with runtime.db.session() as session:
                holders = dict(
                    session.execute(
                        select(Smartlock.account_id, func.count()).group_by(Smartlock.account_id)
                    ).all()
                )
                assert list(holders.values()) == [len(theirs)]
                assert session.scalar(select(func.count()).select_from(UpstreamLink)) == 1
                # The next round starts from none.
                session.execute(delete(UpstreamLink))
                session.execute(delete(Smartlock))
    finally:
        runtime.db.dispose()


def test_an_imported_lock_acts_through_the_upstream_and_has_no_emulator_here(
    standin: LiveServer, home: Path
) -> None:
    ok(link(home, standin))
    lock_id = upstream_locks(standin)[0]["smartlockId"]
    runtime = Runtime(Settings(data=home, worker_interval_seconds=0.1, confirm_wait_seconds=0))
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
        with runtime.db.session() as session:
            token = admin.create_token(session, account_id=1)
        headers = {"Authorization": f"Bearer {token}"}
        # The unlock goes through the upstream's POST /smartlock/{id}/action: its lock moves.
        done = client.post(f"/smartlock/{lock_id}/action/unlock", headers=headers)
        assert done.status_code == 204, done.text
        wait_until(
            lambda: [
                lock
                for lock in upstream_locks(standin)
                if lock["smartlockId"] == lock_id and lock["state"]["state"] == 3
            ],
            what="the upstream's lock to be unlocked",
        )
        lock_back = httpx.post(
            f"{standin.url}/smartlock/{lock_id}/action/lock", headers=standin.headers
        )
        assert lock_back.status_code == 204, lock_back.text
        # A sync reads the upstream's keys (the account-wide listing).
        synced = client.post(f"/smartlock/{lock_id}/sync", headers=headers)
        assert synced.status_code == 204, synced.text
        for method, path in (
            ("GET", f"/emulator/smartlock/{lock_id}"),
            ("POST", f"/emulator/smartlock/{lock_id}/button"),
        ):
            answer = client.request(method, path, headers=headers)
            assert 400 <= answer.status_code < 500, (method, path, answer.text)
            message = answer.json()["detailMessage"]
            assert "linked Nuki Web account" in message, (method, path, message)
    done = keyhouse(home, "admin", "lock", "set", str(lock_id), "--offline")
    assert "no virtual lock" in refused(done)


def test_the_token_is_in_no_log_line_even_at_debug(
    standin: LiveServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Linking (a good token, a wrong one, an upstream that throttles) with every logger at
    DEBUG, httpx's and httpcore's included: the token is in no record."""
    import logging

    from keyhouse.errors import KeyhouseError

    runtime = Runtime(Settings(data=tmp_path / "kh"), background=False)
    runtime.db.ensure_schema()
    with runtime.db.session() as session:
        account = admin.create_account(session, email="o@example.com").id
    wrong = "kh_" + "y" * 43
    with caplog.at_level(logging.DEBUG):
        httpx.post(
            f"{standin.url}/emulator/nuki", headers=standin.headers, json={"tooManyRequests": 1}
        )
        for token in (standin.token, wrong, standin.token):
            with contextlib.suppress(KeyhouseError):
                upstream.link(
                    runtime.db,
                    runtime.secrets,
                    account_id=account,
                    token=token,
                    url=standin.url,
                )
        upstream.link(
            runtime.db, runtime.secrets, account_id=account, token=standin.token, url=standin.url
        )
    assert any(r.name.startswith(("httpx", "httpcore")) for r in caplog.records)
    text = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert standin.token not in text
    assert wrong not in text
    runtime.db.dispose()


def test_a_failed_relink_keeps_the_link_and_status_says_what_went_wrong(
    standin: LiveServer, home: Path
) -> None:
    ok(link(home, standin))
    (sealed_before,) = rows(home, "SELECT token_secret FROM upstream_links")[0]
    message = refused(link(home, standin, token="kh_" + "z" * 43))
    assert "refused the token (401 Unauthorized)" in message
    text = keyhouse(home, "admin", "upstream", "status").stdout
    assert "last error: Nuki's API at" in text and "refused the token" in text
    assert "calls used: 2" in text
    assert rows(home, "SELECT token_secret FROM upstream_links")[0][0] == sealed_before
    ok(link(home, standin))
    assert "last error: none" in keyhouse(home, "admin", "upstream", "status").stdout


def test_racing_requests_spend_each_429_once(standin: LiveServer) -> None:
    """tooManyRequests: N with many requests at once, many rounds: exactly N answer 429."""
    from concurrent.futures import ThreadPoolExecutor

    with httpx.Client(base_url=standin.url, headers=standin.headers, timeout=30) as client:
        for round_ in range(5):
            wanted = 3 + round_
            switched = client.post("/emulator/nuki", json={"tooManyRequests": wanted})
            assert switched.status_code == 200, switched.text
            with ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(lambda _i: client.get("/smartlock").status_code, range(24)))
            assert codes.count(429) == wanted, codes
            assert codes.count(200) == 24 - wanted, codes
            assert client.get("/emulator/nuki").json()["tooManyRequests"] == 0
