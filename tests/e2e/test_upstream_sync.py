"""The state and activity log of a linked Nuki Web account's locks, pulled into Keyhouse
(``devices.upstream_sync``), against a real upstream: a second Keyhouse server process in Nuki
mode (KEYHOUSE_NUKI_MODE=1), the stand-in for api.nuki.io, whose emulator types keypad codes at
its virtual locks and whose API moves them.

Keyhouse's side runs in this process on either store (``store_url``): its Runtime, its HTTP app
(what a client of Keyhouse sees) and its database. Every request Keyhouse sends upstream is
recorded and checked against the official API's structure.
"""

from __future__ import annotations

import random
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from standin import standin_server

from conftest import LiveServer, wait_until
from keyhouse.app import create_app
from keyhouse.devices.nuki_cloud import BROKEN_MARK
from keyhouse.devices.upstream_sync import LOG_PAGE, UpstreamSync
from keyhouse.runtime import Runtime
from keyhouse.services import admin, upstream
from keyhouse.settings import Settings
from keyhouse.store.models import SmartlockAuth, SmartlockLog, UpstreamLink
from official_schemas import official_errors, official_operation, request_problems

# How long a wait for the stand-in or a worker may last on a busy machine (a bound, not a
# measure: the waits end as soon as what they wait for is there).
WAIT = 60.0


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The upstream: `keyhouse serve` in Nuki mode, with its demo account's two locks."""
    data = tmp_path_factory.mktemp("standin") / "data"
    with standin_server(data, KEYHOUSE_NUKI_KEYS_APPEAR_SECONDS="0") as server:
        yield server


class Recording(httpx.BaseTransport):
    """Sends for real, and keeps every request for the check against the official spec."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []
        self._guard = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._guard:
            self.requests.append(request)
        return self.inner.handle_request(request)


def assert_official(requests: list[httpx.Request], token: str) -> None:
    assert requests
    for request in requests:
        path = request.url.path
        assert request_problems(request.method, path, request.url.params, request.content) == []
        operation = official_operation(request.method, path)
        assert operation is not None
        for parameter in operation.get("parameters", []):
            name = parameter["name"]
            if parameter["in"] == "query" and parameter["schema"].get("type") == "integer":
                assert request.url.params.get(name, "0").isdigit(), (name, request.url)
        assert request.headers["authorization"] == f"Bearer {token}"


@dataclass
class Home:
    """The Keyhouse under test: an account linked to the stand-in's account."""

    runtime: Runtime
    client: TestClient
    headers: dict[str, str]
    account: int
    recording: Recording
    sync: UpstreamSync

    def log(self, path: str = "/smartlock/log", **params: object) -> list[dict]:
        answer = self.client.get(path, headers=self.headers, params={"limit": 50, **params})
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture
def home(standin: LiveServer, tmp_path: Path, store_url: str | None) -> Iterator[Home]:
    settings = Settings(
        data=tmp_path / "kh",
        database_url=store_url,
        confirm_wait_seconds=0,
        upstream_sync_seconds=3600,
    )
    runtime = Runtime(settings, background=False)
    with TestClient(create_app(runtime=runtime)) as client:
        with runtime.db.session() as session:
            account = admin.create_account(session, email="owner@example.com").id
            token = admin.create_token(session, account_id=account)
        recording = Recording()
        upstream.link(
            runtime.db,
            runtime.secrets,
            account_id=account,
            token=standin.token,
            url=standin.url,
            transport=recording,
        )
        sync = UpstreamSync(runtime.db, runtime.secrets, interval_seconds=3600, transport=recording)
        home = Home(runtime, client, {"Authorization": f"Bearer {token}"}, account, recording, sync)
        yield home
        assert_official(recording.requests, standin.token)


# --- the stand-in: keys, the keypad, the lock ---------------------------------------------------


def keypad_lock(standin: LiveServer) -> int:
    locks = httpx.get(f"{standin.url}/smartlock", headers=standin.headers).json()
    (lock_id,) = [lock["smartlockId"] for lock in locks if lock["config"]["keypadPaired"]]
    return lock_id


def new_code() -> int:
    while True:
        code = int("".join(random.choice("123456789") for _ in range(6)))
        if not str(code).startswith("12"):
            return code


def upstream_keypad_key(standin: LiveServer, lock_id: int, name: str) -> tuple[str, int]:
    """A keypad code made at the upstream (as the owner would in the Nuki app), once it is on
    the lock: (its id there, the code)."""
    code = new_code()
    made = httpx.put(
        f"{standin.url}/smartlock/{lock_id}/auth",
        headers=standin.headers,
        json={"name": name, "type": 13, "code": code, "remoteAllowed": False},
    )
    assert made.status_code == 204, made.text

    def listed() -> str | None:
        keys = httpx.get(f"{standin.url}/smartlock/{lock_id}/auth", headers=standin.headers)
        found = [key["id"] for key in keys.json() if key["name"] == name]
        return found[0] if found else None

    key_id = wait_until(listed, timeout=WAIT, what=f"{name} listed at the upstream")
    # On the lock itself: the emulator's count of what the device holds stops moving.
    wait_until(
        lambda: (
            httpx.get(
                f"{standin.url}/emulator/smartlock/{lock_id}", headers=standin.headers
            ).json()["pendingOperations"]
            == 0
        ),
        timeout=WAIT,
        what="the upstream's lock to hold the code",
    )
    return key_id, code


def type_code(standin: LiveServer, lock_id: int, code: int) -> dict:
    """Enter ``code`` at the upstream's lock; the emulator's decision (with the log id)."""
    answer = httpx.post(
        f"{standin.url}/emulator/smartlock/{lock_id}/keypad",
        headers=standin.headers,
        json={"code": code},
    )
    assert answer.status_code == 200, answer.text
    decision = answer.json()
    assert decision["opened"] is True, decision
    return decision


def upstream_log(standin: LiveServer) -> list[dict]:
    answer = httpx.get(
        f"{standin.url}/smartlock/log", headers=standin.headers, params={"limit": 50}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def upstream_entry(standin: LiveServer, log_id: str) -> dict:
    (entry,) = [e for e in upstream_log(standin) if e["id"] == log_id]
    return entry


# --- the log ----------------------------------------------------------------------------------


def test_a_keypad_code_typed_at_the_door_shows_in_keyhouses_log_with_its_key(
    standin: LiveServer, home: Home
) -> None:
    lock_id = keypad_lock(standin)
    known_code = new_code()
    unknown_ref, unknown_code = upstream_keypad_key(standin, lock_id, f"Plumber {new_code()}")
    # Keyhouse's own key, made in Keyhouse: the cloud link creates it at the upstream and
    # records the upstream's id as the key's device_ref.
    made = home.client.put(
        f"/smartlock/{lock_id}/auth",
        headers=home.headers,
        json={"name": "Cleaner", "type": 13, "code": known_code, "remoteAllowed": False},
    )
    assert made.status_code == 204, made.text

    def placed() -> str | None:
        home.runtime.reconciler.reconcile(lock_id)
        with home.runtime.db.read() as session:
            key = session.scalars(select(SmartlockAuth).where(SmartlockAuth.name == "Cleaner"))
            found = key.one()
            return found.id if found.sync_state == "applied" and found.device_ref else None

    keyhouse_key_id = wait_until(placed, timeout=WAIT, what="the cloud link to place the key")
    with home.runtime.db.read() as session:
        known_ref = session.get(SmartlockAuth, keyhouse_key_id).device_ref  # type: ignore[union-attr]
    known = type_code(standin, lock_id, known_code)
    unknown = type_code(standin, lock_id, unknown_code)

    with home.runtime.db.read() as session:
        calls_before = session.get(UpstreamLink, home.account).calls  # type: ignore[union-attr]
    first = home.sync.sync(home.account)
    assert first is not None and first.error is None, first
    assert first.entries >= 2

    ours = {entry["id"]: entry for entry in home.log()}
    for decision, ref, auth_id in (
        (known, known_ref, keyhouse_key_id),
        (unknown, unknown_ref, unknown_ref),
    ):
        theirs = upstream_entry(standin, decision["logId"])
        mine = ours[decision["logId"]]  # the upstream's id is Keyhouse's
        assert official_errors("SmartlockLog", mine) == []
        assert mine["authId"] == auth_id
        assert theirs["authId"] == ref
        for field in ("smartlockId", "name", "action", "trigger", "state", "date", "source"):
            assert mine[field] == theirs[field], field
        assert mine["trigger"] == 255  # the keypad
    assert ours[known["logId"]]["name"] == "Cleaner"
    assert ours[unknown["logId"]]["name"].startswith("Plumber ")
    # The lock's own log, and the filter by key.
    mine = {e["id"] for e in home.log(f"/smartlock/{lock_id}/log")}
    assert {known["logId"], unknown["logId"]} <= mine
    by_key = home.log(f"/smartlock/{lock_id}/log", authId=keyhouse_key_id)
    assert [e["id"] for e in by_key] == [known["logId"]]
    # Newest first, as at the upstream.
    order = [e["id"] for e in home.log()]
    assert order.index(unknown["logId"]) < order.index(known["logId"])

    second = home.sync.sync(home.account)
    assert second is not None and second.error is None
    assert second.entries == 0
    with home.runtime.db.read() as session:
        ids = session.scalars(select(SmartlockLog.id)).all()
        assert len(ids) == len(set(ids))
        link = session.get(UpstreamLink, home.account)
        assert link is not None and link.last_error is None
        # Each pull's calls counted: GET /smartlock and one page of the log.
        assert link.calls == calls_before + first.calls + second.calls
        assert second.calls == 2


def test_the_log_pages_to_older_entries_until_one_keyhouse_has(
    standin: LiveServer, home: Home
) -> None:
    """More new entries than one page: the pull follows the ``id`` cursor to the older ones
    and stops at the first page holding one Keyhouse has."""
    lock_id = keypad_lock(standin)
    _ref, code = upstream_keypad_key(standin, lock_id, f"Walker {new_code()}")
    home.sync.sync(home.account)
    wanted = [type_code(standin, lock_id, code)["logId"] for _ in range(LOG_PAGE + 5)]
    before = len(home.recording.requests)
    done = home.sync.sync(home.account)
    assert done is not None and done.error is None
    assert done.entries == len(wanted)
    pages = [r for r in home.recording.requests[before:] if r.url.path == "/smartlock/log"]
    assert "id" not in pages[0].url.params
    assert len(pages) == 2 and pages[1].url.params["id"]
    ours = [e["id"] for e in home.log(f"/smartlock/{lock_id}/log")]
    ours += [e["id"] for e in home.log(f"/smartlock/{lock_id}/log", id=ours[-1])]
    assert set(wanted) <= set(ours)


def race(pullers: list[UpstreamSync], account: int, periodic: bool) -> list[object]:
    """Every puller at once: the periodic pull (``run``, claimed) or a pull now (``sync``)."""
    barrier = threading.Barrier(len(pullers))
    results: list[object] = []

    def pull(puller: UpstreamSync) -> None:
        barrier.wait()
        try:
            results.append(puller.run(account) if periodic else puller.sync(account))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=pull, args=(p,)) for p in pullers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_racing_pulls_keep_each_entry_once(standin: LiveServer, home: Home) -> None:
    """Several pullers at once (as several processes would), many rounds: every new entry is
    kept exactly once, and of the periodic pulls that race for a due account exactly one runs."""
    lock_id = keypad_lock(standin)
    _ref, code = upstream_keypad_key(standin, lock_id, f"Racer {new_code()}")
    home.sync.sync(home.account)
    pullers = [
        UpstreamSync(
            home.runtime.db, home.runtime.secrets, interval_seconds=3600, transport=home.recording
        )
        for _ in range(4)
    ]
    for round_ in range(6):
        typed = {type_code(standin, lock_id, code)["logId"] for _ in range(1 + round_ % 3)}
        periodic = round_ % 2 == 1
        if periodic:
            pullers[0].after_action(home.account)  # due now
        results = race(pullers, home.account, periodic)
        assert not [r for r in results if isinstance(r, Exception)], results
        ran = [r for r in results if r is not None]
        assert all(r.error is None for r in ran), ran  # type: ignore[attr-defined]
        if periodic:
            assert len(ran) == 1, results
        assert sum(r.entries for r in ran) == len(typed), (round_, ran)  # type: ignore[attr-defined]
        with home.runtime.db.read() as session:
            found = session.scalar(
                select(func.count()).select_from(SmartlockLog).where(SmartlockLog.id.in_(typed))
            )
            assert found == len(typed)


# --- the state ----------------------------------------------------------------------------------


def test_the_locks_state_follows_the_upstream(standin: LiveServer, home: Home) -> None:
    lock_id = keypad_lock(standin)

    def theirs() -> dict:
        answer = httpx.get(f"{standin.url}/smartlock/{lock_id}", headers=standin.headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def mine() -> dict:
        answer = home.client.get(f"/smartlock/{lock_id}", headers=home.headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    steps = [("lock", 1), ("unlock", 3)] * 2
    if theirs()["state"]["state"] == 1:
        steps = steps[1:]
    for action, state in steps[:3]:
        moved = httpx.post(
            f"{standin.url}/smartlock/{lock_id}/action/{action}", headers=standin.headers
        )
        assert moved.status_code == 204, moved.text
        wait_until(
            lambda state=state: theirs()["state"]["state"] == state,
            timeout=WAIT,
            what=f"the upstream to {action}",
        )
        assert mine()["state"]["state"] != state
        done = home.sync.sync(home.account)
        assert done is not None and done.error is None
        assert mine()["state"] == theirs()["state"]
        listed = home.client.get("/smartlock", headers=home.headers).json()
        assert [lock["state"] for lock in listed if lock["smartlockId"] == lock_id] == [
            theirs()["state"]
        ]
        # The action is in Keyhouse's log too, as the upstream logged it.
        latest = home.log(f"/smartlock/{lock_id}/log")[0]
        assert latest["action"] == {"unlock": 1, "lock": 2}[action]


# --- failures --------------------------------------------------------------------------------


def test_a_refused_token_marks_the_link_broken_and_a_relink_mends_it(
    standin: LiveServer, home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    wrong = "kh_" + "w" * 43
    with home.runtime.db.session() as session:
        session.execute(
            update(UpstreamLink)
            .where(UpstreamLink.account_id == home.account)
            .values(token_secret=home.runtime.secrets.seal(wrong))
        )
    done = home.sync.sync(home.account)
    assert done is not None and done.error is not None
    assert done.error.startswith(BROKEN_MARK)  # broken, as the cloud link marks it
    assert "refused the token (401 Unauthorized)" in done.error
    assert "link again" in done.error
    assert wrong not in done.error
    with home.runtime.db.read() as session:
        (status,) = upstream.status(session)
    assert status.last_error == done.error
    assert status.calls == 2  # the link's call and the refused one
    # Broken: nothing more is sent (nor by the cloud link) until the operator links again.
    sent = len(home.recording.requests)
    again = home.sync.sync(home.account)
    assert again is not None and (again.error, again.calls) == (done.error, 0)
    assert len(home.recording.requests) == sent
    assert home.runtime.upstream_sync.run(home.account) is not None  # claimed, sends nothing
    assert len(home.recording.requests) == sent
    upstream.link(
        home.runtime.db,
        home.runtime.secrets,
        account_id=home.account,
        token=standin.token,
        url=standin.url,
        transport=home.recording,
    )
    mended = home.sync.sync(home.account)
    assert mended is not None and mended.error is None
    with home.runtime.db.read() as session:
        (status,) = upstream.status(session)
    assert status.last_error is None
    # Logged (the failure, httpx's requests at DEBUG), never with either token.
    assert any("pulling from Nuki's cloud failed" in r.getMessage() for r in caplog.records)
    assert any(r.name.startswith(("httpx", "httpcore")) for r in caplog.records)
    text = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert wrong not in text and standin.token not in text
    # Only the refused calls carried the wrong token.
    home.recording.requests[:] = [
        r for r in home.recording.requests if r.headers["authorization"] != f"Bearer {wrong}"
    ]


def test_an_unlinked_account_is_not_pulled(home: Home) -> None:
    with home.runtime.db.session() as session:
        upstream.unlink(session, home.account)
    assert home.sync.sync(home.account) is None
    assert home.sync.run(home.account) is None
    home.sync.after_action(home.account)  # nothing to do, no error


# --- the worker ----------------------------------------------------------------------------------


def test_the_worker_pulls_a_new_link_periodically_and_after_an_action(
    standin: LiveServer, tmp_path: Path, store_url: str | None
) -> None:
    lock_id = keypad_lock(standin)
    _ref, code = upstream_keypad_key(standin, lock_id, f"Porter {new_code()}")
    settings = Settings(
        data=tmp_path / "kh",
        database_url=store_url,
        confirm_wait_seconds=0,
        worker_interval_seconds=0.1,
        upstream_sync_seconds=3600,  # after the first pull, only an action brings the next
    )
    runtime = Runtime(settings)
    with TestClient(create_app(runtime=runtime)) as client:
        with runtime.db.session() as session:
            account = admin.create_account(session, email="owner@example.com").id
            headers = {"Authorization": f"Bearer {admin.create_token(session, account_id=account)}"}
        first = type_code(standin, lock_id, code)["logId"]
        upstream.link(
            runtime.db, runtime.secrets, account_id=account, token=standin.token, url=standin.url
        )

        def logged(log_id: str) -> bool:
            answer = client.get("/smartlock/log", headers=headers, params={"limit": 50})
            return log_id in {entry["id"] for entry in answer.json()}

        wait_until(lambda: logged(first), timeout=WAIT, what="the new link's first pull")
        second = type_code(standin, lock_id, code)["logId"]
        runtime.upstream_sync.after_action(account)
        wait_until(lambda: logged(second), timeout=WAIT, what="the pull after the action")
        # An unlock through Keyhouse (the cloud link's POST /smartlock/{id}/action): the
        # upstream's lock moves and logs it; the pull after the action brings that entry.
        theirs_before = {e["id"] for e in upstream_log(standin)}
        moved = client.post(f"/smartlock/{lock_id}/action/unlock", headers=headers)
        assert moved.status_code == 204, moved.text
        (unlocked,) = wait_until(
            lambda: [
                e
                for e in upstream_log(standin)
                if e["id"] not in theirs_before and e["action"] == 1
            ],
            timeout=WAIT,
            what="the upstream to log the unlock",
        )
        runtime.upstream_sync.after_action(account)
        wait_until(lambda: logged(unlocked["id"]), timeout=WAIT, what="the pull after the unlock")
        with runtime.db.read() as session:
            link = session.get(UpstreamLink, account)
            assert link is not None and link.last_error is None


PULL_SCRIPT = """
import sys, time
from pathlib import Path
from keyhouse.devices.upstream_sync import UpstreamSync
from keyhouse.store.database import Database
from keyhouse.store.secret_box import SecretBox

url, data, account, go = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
db = Database(url)
db.engine.connect().close()
print("ready", flush=True)
for _ in range(60000):
    if go.exists():
        break
    time.sleep(0.001)
result = UpstreamSync(db, SecretBox(data)).sync(account)
print(result.entries if result is not None and result.error is None else f"error: {result}")
db.dispose()
"""


def test_two_processes_pulling_at_once_keep_each_entry_once(
    standin: LiveServer, home: Home, tmp_path: Path
) -> None:
    import os
    import sys

    lock_id = keypad_lock(standin)
    _ref, code = upstream_keypad_key(standin, lock_id, f"Twins {new_code()}")
    home.sync.sync(home.account)
    settings = home.runtime.settings
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for round_ in range(3):
        typed = {type_code(standin, lock_id, code)["logId"] for _ in range(2 + round_)}
        go = tmp_path / f"go{round_}"
        pullers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    PULL_SCRIPT,
                    settings.resolved_database_url,
                    str(settings.data),
                    str(home.account),
                    str(go),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(2)
        ]
        for puller in pullers:  # both imported and connected: then they start together
            assert puller.stdout is not None
            assert puller.stdout.readline().strip() == "ready"
        go.touch()
        outputs = [p.communicate(timeout=120) for p in pullers]
        assert all(p.returncode == 0 for p in pullers), outputs
        kept = [int(out.strip().splitlines()[-1]) for out, _err in outputs]
        assert sum(kept) == len(typed), (round_, outputs)
        with home.runtime.db.read() as session:
            found = session.scalars(select(SmartlockLog.id).where(SmartlockLog.id.in_(typed)))
            assert sorted(found) == sorted(typed)


def test_a_pull_stays_within_the_accounts_budget(standin: LiveServer, home: Home) -> None:
    """The budget (KEYHOUSE_UPSTREAM_RATE) is the cloud link's: a pull over it sends nothing
    more, keeps what it brought, and is no failure of the upstream's."""
    from keyhouse.store.rate_limits import RateLimits

    lock_id = keypad_lock(standin)
    _ref, code = upstream_keypad_key(standin, lock_id, f"Thrifty {new_code()}")
    budget = RateLimits(namespace=f"budget-{new_code()}")
    thrifty = UpstreamSync(
        home.runtime.db,
        home.runtime.secrets,
        rate_limits=budget,
        rate="3/minute",
        transport=home.recording,
    )
    home.sync.sync(home.account)  # the log's history, outside this budget
    first = thrifty.sync(home.account)
    assert first is not None and (first.error, first.calls) == (None, 2)
    typed = type_code(standin, lock_id, code)["logId"]
    sent = len(home.recording.requests)
    second = thrifty.sync(home.account)  # the state (the 3rd request), then no log page
    assert second is not None and second.error is not None
    assert "KEYHOUSE_UPSTREAM_RATE" in second.error and "3 a minute" in second.error
    assert (second.calls, second.refreshed, second.entries) == (1, 2, 0)
    assert len(home.recording.requests) == sent + 1
    with home.runtime.db.read() as session:
        (status,) = upstream.status(session)
        assert status.last_error is None  # not the upstream's failure
        assert session.scalar(select(SmartlockLog.id).where(SmartlockLog.id == typed)) is None
    # Another process's pulls and the cloud link count against the same budget.
    assert not budget.hit("3/minute", "upstream", home.account).allowed


def test_a_pull_that_ends_after_the_link_broke_leaves_it_broken(home: Home) -> None:
    """The cloud link marks the link broken while a pull (whose requests went through just
    before) is recording: the pull's record keeps the mark; any other error it replaces."""
    from keyhouse.rules.dates import utcnow
    from keyhouse.store import upstream as links

    def record(error: str | None) -> str | None:
        with home.runtime.db.session() as session:
            links.count_pull(session, home.account, 2, utcnow(), error, BROKEN_MARK)
        with home.runtime.db.read() as session:
            return session.get(UpstreamLink, home.account).last_error  # type: ignore[union-attr]

    def mark(error: str) -> None:
        with home.runtime.db.session() as session:
            session.execute(
                update(UpstreamLink)
                .where(UpstreamLink.account_id == home.account)
                .values(last_error=error)
            )

    mark("Nuki's API at x failed (503): try again later")
    assert record(None) is None
    assert record("Nuki's API at x did not answer in time") == (
        "Nuki's API at x did not answer in time"
    )
    broken = BROKEN_MARK + "Nuki's API at x refused the token (401 Unauthorized): link again"
    mark(broken)
    assert record(None) == broken
    assert record("Nuki's API at x failed (503): try again later") == broken
