"""The cloud link (NukiCloudLink) end to end: Keyhouse (in process, its worker running) drives
the locks of a linked account at the stand-in for api.nuki.io, a second Keyhouse server
process in Nuki mode. Every request the link sends is checked against the official spec.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from standin import standin_server as nuki_standin

from conftest import LiveServer, database_url_for, free_port, wait_until
from keyhouse.app import create_app
from keyhouse.runtime import Runtime
from keyhouse.services import admin, upstream
from keyhouse.settings import Settings
from keyhouse.store.models import SmartlockAuth, UpstreamLink
from official_schemas import request_problems

WEEKDAY_CODE = {
    "name": "Cleaner",
    "type": 13,
    "code": 345678,
    "remoteAllowed": False,
    "allowedWeekDays": 124,  # Monday to Friday
    "allowedFromTime": 480,
    "allowedUntilTime": 1020,
}
WINDOW = ("allowedWeekDays", "allowedFromTime", "allowedUntilTime")
WEDNESDAY_10 = "2026-12-09T09:00:00Z"  # 10:00 in the lock's zone (Europe/Vienna): in the window


class Recording(httpx.BaseTransport):
    """Real HTTP, every request kept (to check it against the official spec)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.inner.handle_request(request)

    def count(self, method: str, suffix: str) -> int:
        return sum(
            1
            for r in self.requests
            if r.method == method and r.url.path.endswith(suffix) and "/auth/" not in suffix
        )


@contextmanager
def standin_server(tmp: Path, **env: str) -> Iterator[LiveServer]:
    """The stand-in in ``tmp``, its new keys listed after 1 s (as Nuki lists them late)."""
    with nuki_standin(
        tmp / "standin", **{"KEYHOUSE_NUKI_KEYS_APPEAR_SECONDS": "1", **env}
    ) as server:
        yield server


@dataclass
class Cloud:
    """Keyhouse linked to the stand-in: its API (client, headers), the lock with a keypad."""

    standin: LiveServer
    runtime: Runtime
    client: TestClient
    headers: dict[str, str]
    lock_id: int
    recording: Recording
    account_id: int
    tokens: set[str] = field(default_factory=set)  # the upstream tokens the link may send
    seen: list[dict[str, Any]] = field(default_factory=list)

    # --- Keyhouse's side
    def keys(self) -> list[dict[str, Any]]:
        answer = self.client.get(f"/smartlock/{self.lock_id}/auth", headers=self.headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def key(self, key_id: str) -> dict[str, Any] | None:
        return next((k for k in self.keys() if k["id"] == key_id), None)

    def create(self, body: dict[str, Any]) -> str:
        made = self.client.put(f"/smartlock/{self.lock_id}/auth", headers=self.headers, json=body)
        assert made.status_code == 204, made.text
        (found,) = [k for k in self.keys() if k["name"] == body["name"]]
        return found["id"]

    def wait_state(
        self, key_id: str, state: str, timeout: float = 40, check: Callable | None = None
    ) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            key = self.key(key_id)
            if key is not None:
                self.seen.append(key)
            ok = key is not None and key["syncState"] == state
            return key if ok and (check is None or check(key)) else None

        try:
            return wait_until(done, timeout=timeout, what=f"key {key_id} {state}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; seen: {self.seen[-3:]}") from None

    def row(self, key_id: str) -> SmartlockAuth:
        with self.runtime.db.read() as session:
            found = session.scalar(select(SmartlockAuth).where(SmartlockAuth.id == key_id))
            assert found is not None
            session.expunge(found)
            return found

    # --- the upstream's side
    def theirs(self) -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{self.standin.url}/smartlock/{self.lock_id}/auth", headers=self.standin.headers
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def emulate(self, **changes: Any) -> None:
        done = httpx.post(
            f"{self.standin.url}/emulator/smartlock/{self.lock_id}",
            headers=self.standin.headers,
            json=changes,
        )
        assert done.status_code == 200, done.text

    def keypad(self, code: int, at: str) -> bool:
        """The code entered at the upstream's lock (its emulator): did the door open?"""
        answer = httpx.post(
            f"{self.standin.url}/emulator/smartlock/{self.lock_id}/keypad",
            headers=self.standin.headers,
            json={"code": code, "at": at},
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["opened"]

    def switch(self, **changes: Any) -> None:
        done = httpx.post(
            f"{self.standin.url}/emulator/nuki", headers=self.standin.headers, json=changes
        )
        assert done.status_code == 200, done.text

    def creates(self) -> int:
        return sum(
            1
            for r in self.recording.requests
            if r.method == "PUT" and r.url.path == f"/smartlock/{self.lock_id}/auth"
        )

    def check_requests(self) -> None:
        assert self.recording.requests
        for request in self.recording.requests:
            problems = request_problems(
                request.method, request.url.path, request.url.params, request.content
            )
            assert problems == [], (request.method, request.url.path, problems)
            assert request.headers["authorization"] in {f"Bearer {t}" for t in self.tokens}


@contextmanager
def linked(tmp: Path, standin: LiveServer, **settings: Any) -> Iterator[Cloud]:
    data = tmp / "keyhouse"
    runtime = Runtime(
        Settings(
            data=data,
            database_url=database_url_for(data),  # not the stand-in's (PostgreSQL pass)
            worker_interval_seconds=0.1,
            confirm_wait_seconds=0,
            drift_check_seconds=0,
            # The link's own requests only (the pulls of state and log: test_upstream_sync).
            upstream_sync_seconds=0,
            **settings,
        )
    )
    recording = Recording()
    runtime.cloud_link.transport = recording
    runtime.cloud_link.throttled_seconds = 1.0
    with TestClient(create_app(runtime=runtime)) as client:
        with runtime.db.session() as session:
            account = admin.create_account(session, email="owner@example.com").id
            token = admin.create_token(session, account_id=account)
        result = upstream.link(
            runtime.db, runtime.secrets, account_id=account, token=standin.token, url=standin.url
        )
        assert result.imported == 2
        listed = httpx.get(f"{standin.url}/smartlock", headers=standin.headers).json()
        (lock_id,) = [lock["smartlockId"] for lock in listed if lock["config"]["keypadPaired"]]
        cloud = Cloud(
            standin,
            runtime,
            client,
            {"Authorization": f"Bearer {token}"},
            lock_id,
            recording,
            account,
            {standin.token},
        )
        yield cloud
        cloud.check_requests()


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with standin_server(tmp_path) as standin, linked(tmp_path, standin) as found:
        yield found


def only(keys: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [k for k in keys if k["name"] == name]
    assert len(found) == 1, keys
    return found[0]


# --- the happy path -----------------------------------------------------------------------------


def test_a_keypad_code_goes_to_the_upstream_and_its_changes_follow(cloud: Cloud) -> None:
    key_id = cloud.create(WEEKDAY_CODE)
    key = cloud.wait_state(key_id, "applied")
    assert "error" not in key
    theirs = only(cloud.theirs(), "Cleaner")
    assert theirs["code"] == 345678 and theirs["type"] == 13
    assert {name: theirs[name] for name in WINDOW} == {n: WEEKDAY_CODE[n] for n in WINDOW}
    row = cloud.row(key_id)
    assert row.device_ref == theirs["id"] and row.create_marker is None
    assert row.accepted_revision == row.applied_revision == row.revision
    assert cloud.creates() == 1
    # The account-wide listing shows the key as Keyhouse holds it: a drift check finds nothing.
    held = cloud.runtime.cloud_link.read_all(cloud.lock_id)
    assert held[theirs["id"]]["onLock"] is True
    assert cloud.runtime.reconciler.repair(cloud.lock_id) == 0
    assert cloud.key(key_id)["syncState"] == "applied"
    assert cloud.keypad(345678, at=WEDNESDAY_10) is True  # the real door opens to the code

    # A rename keeps the window (the stand-in wipes it on a partial update).
    renamed = cloud.client.post(
        f"/smartlock/{cloud.lock_id}/auth/{key_id}", headers=cloud.headers, json={"name": "Maid"}
    )
    assert renamed.status_code == 204, renamed.text
    cloud.wait_state(key_id, "applied", check=lambda k: k["name"] == "Maid")
    theirs = only(cloud.theirs(), "Maid")
    assert {name: theirs[name] for name in WINDOW} == {n: WEEKDAY_CODE[n] for n in WINDOW}
    assert theirs["id"] == cloud.row(key_id).device_ref

    # Disabled here: disabled there, and the upstream's keypad refuses the code.
    disabled = cloud.client.post(
        f"/smartlock/{cloud.lock_id}/auth/{key_id}",
        headers=cloud.headers,
        json={"name": "Maid", "enabled": False},
    )
    assert disabled.status_code == 204, disabled.text
    cloud.wait_state(key_id, "applied", check=lambda k: k["enabled"] is False)
    assert only(cloud.theirs(), "Maid")["enabled"] is False
    assert cloud.keypad(345678, at=WEDNESDAY_10) is False  # and now refuses it

    # Deleted here: gone there.
    gone = cloud.client.delete(f"/smartlock/{cloud.lock_id}/auth/{key_id}", headers=cloud.headers)
    assert gone.status_code == 204, gone.text
    wait_until(lambda: cloud.key(key_id) is None, timeout=30, what="the key to be removed")
    assert [k for k in cloud.theirs() if k["name"] == "Maid"] == []
    assert cloud.creates() == 1


def test_with_the_upstream_lock_offline_a_key_is_accepted_then_applied(cloud: Cloud) -> None:
    cloud.emulate(online=False)
    key_id = cloud.create(WEEKDAY_CODE)
    # Nuki has it (listed, as sent), the lock not: pending, and the key says so.
    key = cloud.wait_state(
        key_id, "pending", check=lambda k: "the lock does not hold it yet" in k.get("error", "")
    )
    row = cloud.row(key_id)
    assert row.accepted_revision == row.revision > row.applied_revision
    assert row.device_ref is not None and row.create_marker is None
    assert key["syncState"] == "pending"
    cloud.emulate(online=True)
    cloud.wait_state(key_id, "applied", timeout=60)
    assert cloud.creates() == 1
    assert only(cloud.theirs(), "Cleaner")["code"] == 345678


# --- no second create -----------------------------------------------------------------------------


def test_keys_that_appear_late_are_created_once(cloud: Cloud) -> None:
    cloud.switch(keysAppearAfterSeconds=6)
    key_id = cloud.create(WEEKDAY_CODE)
    cloud.wait_state(
        key_id, "pending", check=lambda k: "not listed by Nuki yet" in k.get("error", "")
    )
    assert cloud.row(key_id).create_marker is not None
    cloud.wait_state(key_id, "applied", timeout=60)
    assert cloud.creates() == 1
    cloud.switch(keysAppearAfterSeconds=0)
    only(cloud.theirs(), "Cleaner")


def test_a_create_whose_answer_is_lost_is_not_sent_twice(tmp_path: Path) -> None:
    """The stand-in answers a create only once its lock took it (a slow lock: 3 s); the link
    gives up on each request after 0.5 s: the create landed, its answer is lost. The key is
    found by its fingerprint, never created again."""
    with (
        standin_server(tmp_path, KEYHOUSE_CONFIRM_WAIT_SECONDS="6") as standin,
        linked(tmp_path, standin, device_timeout_seconds=1.5) as cloud,
    ):
        cloud.emulate(latencyMs=3000)
        key_id = cloud.create(WEEKDAY_CODE)
        cloud.wait_state(key_id, "pending", check=lambda k: "answer lost" in k.get("error", ""))
        cloud.emulate(latencyMs=0)
        cloud.wait_state(key_id, "applied", timeout=60)
        assert cloud.creates() == 1
        only(cloud.theirs(), "Cleaner")


# --- the upstream's failures ----------------------------------------------------------------------


def test_a_revoked_token_breaks_the_link_and_every_key_says_so(tmp_path: Path) -> None:
    with standin_server(tmp_path) as standin:
        made = httpx.put(
            f"{standin.url}/keyhouse/tokens",
            headers=standin.headers,
            json={"name": "for keyhouse"},
        )
        assert made.status_code == 200, made.text
        second = LiveServer(
            standin.url, made.json()["token"], standin.lock_ids, standin.data, [], {}
        )
        with linked(tmp_path, second) as cloud:
            revoked = httpx.delete(
                f"{standin.url}/keyhouse/tokens/{made.json()['id']}", headers=standin.headers
            )
            assert revoked.status_code == 204, revoked.text
            key_id = cloud.create(WEEKDAY_CODE)
            broken = "link to Nuki's cloud is broken"
            key = cloud.wait_state(key_id, "pending", check=lambda k: broken in k.get("error", ""))
            assert "refused the token (401 Unauthorized)" in key["error"]
            assert "link again" in key["error"]
            assert second.token not in key["error"]
            with cloud.runtime.db.read() as session:
                (status,) = upstream.status(session)
            assert status.last_error and "link again" in status.last_error
            assert cloud.row(key_id).create_marker is None  # certainly not created
            # Linked again with a working token: the key goes through, once.
            upstream.link(
                cloud.runtime.db,
                cloud.runtime.secrets,
                account_id=cloud.account_id,
                token=standin.token,
                url=standin.url,
            )
            cloud.tokens.add(standin.token)  # the requests after relinking carry it
            cloud.standin = standin
            cloud.runtime.retry_now(cloud.lock_id)
            cloud.wait_state(key_id, "applied", timeout=60)
            assert cloud.creates() == 2  # the one refused with 401, and the one that landed
            only(cloud.theirs(), "Cleaner")


def test_an_html_429_backs_off_and_the_key_comes_through_once(cloud: Cloud) -> None:
    cloud.switch(tooManyRequests=2)
    key_id = cloud.create(WEEKDAY_CODE)
    cloud.wait_state(
        key_id, "pending", check=lambda k: "429 Too Many Requests" in k.get("error", "")
    )
    cloud.wait_state(key_id, "applied", timeout=60)
    only(cloud.theirs(), "Cleaner")


def test_an_unreachable_upstream_keeps_the_key_pending_and_it_comes_through(
    cloud: Cloud,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"

    def point(url: str) -> None:
        cloud.runtime.db.transaction(
            lambda session: session.execute(update(UpstreamLink).values(url=url))
        )

    point(dead)
    key_id = cloud.create(WEEKDAY_CODE)
    cloud.wait_state(
        key_id, "pending", check=lambda k: "could not reach Nuki's API" in k.get("error", "")
    )
    point(cloud.standin.url)
    cloud.runtime.retry_now(cloud.lock_id)
    cloud.wait_state(key_id, "applied", timeout=60)
    only(cloud.theirs(), "Cleaner")


def test_the_budget_holds_requests_back(tmp_path: Path) -> None:
    with (
        standin_server(tmp_path) as standin,
        linked(tmp_path, standin, upstream_rate="1 per 3 seconds") as cloud,
    ):
        key_id = cloud.create(WEEKDAY_CODE)
        cloud.wait_state(key_id, "pending", check=lambda k: "budget" in k.get("error", ""))
        cloud.wait_state(key_id, "applied", timeout=60)
        assert cloud.creates() == 1
        with cloud.runtime.db.read() as session:
            (status,) = upstream.status(session)
        assert status.calls == len(cloud.recording.requests) + 1  # and the link's GET /smartlock


def test_a_code_the_upstream_refuses_fails_with_its_reason_and_its_key_is_untouched(
    cloud: Cloud,
) -> None:
    """The owner made code 345678 at Nuki; the same code made in Keyhouse is refused there
    (409): the key is failed with the upstream's reason, and the owner's key stays."""
    theirs = httpx.put(
        f"{cloud.standin.url}/smartlock/{cloud.lock_id}/auth",
        headers=cloud.standin.headers,
        json={"name": "Owner's", "type": 13, "code": 345678, "remoteAllowed": False},
    )
    assert theirs.status_code == 204, theirs.text
    key_id = cloud.create(WEEKDAY_CODE)
    key = cloud.wait_state(key_id, "failed")
    assert "409" in key["error"], key
    assert cloud.row(key_id).create_marker is None  # refused: certainly not created
    assert cloud.creates() == 1
    wait_until(lambda: [k for k in cloud.theirs() if k["name"] == "Owner's"], what="theirs")
    assert [k for k in cloud.theirs() if k["name"] == "Cleaner"] == []


def test_a_write_while_the_upstream_works_on_the_lock_waits_for_the_423_to_pass(
    cloud: Cloud,
) -> None:
    key_id = cloud.create(WEEKDAY_CODE)
    cloud.wait_state(key_id, "applied")
    # The upstream's lock takes 4 s per change: while it works, writes there answer 423.
    cloud.emulate(latencyMs=4000)
    path = f"/smartlock/{cloud.lock_id}/auth/{key_id}"
    renamed = cloud.client.post(path, headers=cloud.headers, json={"name": "Maid"})
    assert renamed.status_code == 204, renamed.text
    cloud.wait_state(key_id, "pending", check=lambda k: "Nuki" in k.get("error", ""))
    disabled = cloud.client.post(path, headers=cloud.headers, json={"enabled": False})
    assert disabled.status_code == 204, disabled.text
    cloud.wait_state(key_id, "pending", check=lambda k: "423 Locked" in k.get("error", ""))
    cloud.emulate(latencyMs=0)
    cloud.wait_state(key_id, "applied", timeout=60, check=lambda k: k["enabled"] is False)
    theirs = only(cloud.theirs(), "Maid")
    assert theirs["enabled"] is False
    assert {name: theirs[name] for name in WINDOW} == {n: WEEKDAY_CODE[n] for n in WINDOW}


def test_a_failed_relink_with_a_wrong_token_does_not_break_a_working_link(cloud: Cloud) -> None:
    from keyhouse.errors import KeyhouseError

    with pytest.raises(KeyhouseError, match="refused the token"):
        upstream.link(
            cloud.runtime.db,
            cloud.runtime.secrets,
            account_id=cloud.account_id,
            token="kh_" + "w" * 43,
            url=cloud.standin.url,
        )
    key_id = cloud.create(WEEKDAY_CODE)
    cloud.wait_state(key_id, "applied")
    with cloud.runtime.db.read() as session:
        (status,) = upstream.status(session)
    assert status.last_error is None  # the link's own contact since went well


def test_a_create_never_listed_is_sent_again_only_after_the_window_and_never_doubles(
    tmp_path: Path,
) -> None:
    """Nuki never lists the new key (hideNewKeys): no second create before
    KEYHOUSE_UPSTREAM_RESEND_SECONDS; the one after it is refused (the code exists there), so
    the key fails with that reason, and the upstream holds the code once."""
    with (
        standin_server(tmp_path) as standin,
        linked(tmp_path, standin, upstream_resend_seconds=4) as cloud,
    ):
        cloud.switch(hideNewKeys=True)
        key_id = cloud.create(WEEKDAY_CODE)
        cloud.wait_state(
            key_id, "pending", check=lambda k: "not listed by Nuki yet" in k.get("error", "")
        )
        assert cloud.creates() == 1
        key = cloud.wait_state(key_id, "failed", timeout=60)
        assert "409" in key["error"]
        assert cloud.creates() == 2
        cloud.switch(hideNewKeys=False)
        only(cloud.theirs(), "Cleaner")


def test_the_token_is_in_no_log_line_of_the_link(
    cloud: Cloud, caplog: pytest.LogCaptureFixture
) -> None:
    """Every logger at DEBUG (httpx's and httpcore's included) while a key is created through
    an upstream that throttles: the token is in no record."""
    import logging

    with caplog.at_level(logging.DEBUG):
        cloud.switch(tooManyRequests=1)
        key_id = cloud.create(WEEKDAY_CODE)
        cloud.wait_state(key_id, "applied", timeout=60)
    assert any(r.name.startswith(("httpx", "httpcore")) for r in caplog.records)
    text = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert cloud.standin.token not in text


def test_a_key_deleted_while_its_create_may_still_land_is_removed_there_too(
    cloud: Cloud,
) -> None:
    """Deleted in Keyhouse while Nuki does not list its create yet: the removal waits for the
    key to show (found by its fingerprint) and deletes it there: nothing is left behind."""
    cloud.switch(keysAppearAfterSeconds=5)
    key_id = cloud.create(WEEKDAY_CODE)
    cloud.wait_state(
        key_id, "pending", check=lambda k: "not listed by Nuki yet" in k.get("error", "")
    )
    gone = cloud.client.delete(f"/smartlock/{cloud.lock_id}/auth/{key_id}", headers=cloud.headers)
    assert gone.status_code == 204, gone.text
    cloud.wait_state(key_id, "deleting", check=lambda k: "may still land" in k.get("error", ""))
    wait_until(lambda: cloud.key(key_id) is None, timeout=60, what="the key to be removed")
    cloud.switch(keysAppearAfterSeconds=0)
    assert [k for k in cloud.theirs() if k["name"] == "Cleaner"] == []
    assert cloud.creates() == 1


# --- drift through the real link: the safer state wins --------------------------------------------


def upstream_post(cloud: Cloud, upstream_id: str, body: dict[str, Any]) -> None:
    """A change made at Nuki behind Keyhouse's back (the owner in Nuki's app or Web)."""
    done = httpx.post(
        f"{cloud.standin.url}/smartlock/{cloud.lock_id}/auth/{upstream_id}",
        headers=cloud.standin.headers,
        json=body,
    )
    assert done.status_code == 204, done.text


def test_a_window_wiped_at_the_upstream_is_put_back_and_a_disabling_there_is_adopted(
    cloud: Cloud,
) -> None:
    key_id = cloud.create(WEEKDAY_CODE)
    cloud.wait_state(key_id, "applied")
    theirs = only(cloud.theirs(), "Cleaner")

    # Nuki's partial update wipes the window: widened access, put back by one drift check.
    upstream_post(cloud, theirs["id"], {"name": "Cleaner"})
    wait_until(
        lambda: not only(cloud.theirs(), "Cleaner").get("allowedWeekDays"),
        timeout=20,
        what="the stand-in to wipe the window",
    )
    assert cloud.runtime.reconciler.repair(cloud.lock_id) >= 1
    cloud.wait_state(key_id, "applied")
    wait_until(
        lambda: (
            {n: only(cloud.theirs(), "Cleaner").get(n) for n in WINDOW}
            == {n: WEEKDAY_CODE[n] for n in WINDOW}
        ),
        timeout=30,
        what="the window back at the upstream",
    )
    assert cloud.key(key_id)["allowedWeekDays"] == 124

    # Disabled at Nuki (the whole key sent, window kept): narrowed access, adopted.
    theirs = only(cloud.theirs(), "Cleaner")
    whole = {n: theirs[n] for n in ("name", "code", *WINDOW) if n in theirs}
    upstream_post(cloud, theirs["id"], {**whole, "enabled": False, "remoteAllowed": False})
    wait_until(
        lambda: only(cloud.theirs(), "Cleaner")["enabled"] is False,
        timeout=20,
        what="the key disabled at the upstream",
    )
    cloud.runtime.reconciler.repair(cloud.lock_id)
    key = cloud.wait_state(key_id, "applied", check=lambda k: k["enabled"] is False)
    assert key["allowedWeekDays"] == 124
    assert only(cloud.theirs(), "Cleaner")["enabled"] is False  # not put back
    assert cloud.creates() == 1


def test_a_key_made_at_the_upstream_is_adopted_and_never_deleted(cloud: Cloud) -> None:
    made = httpx.put(
        f"{cloud.standin.url}/smartlock/{cloud.lock_id}/auth",
        headers=cloud.standin.headers,
        json={"name": "Owner's own", "type": 13, "code": 579246, "remoteAllowed": False},
    )
    assert made.status_code == 204, made.text
    wait_until(
        lambda: [k for k in cloud.theirs() if k["name"] == "Owner's own"],
        timeout=20,
        what="the owner's key listed at the upstream",
    )
    for _ in range(3):  # several drift checks: adopted once, never deleted
        cloud.runtime.reconciler.repair(cloud.lock_id)
        adopted = only(cloud.keys(), "Owner's own")
        assert adopted["origin"] == "upstream"
        assert only(cloud.theirs(), "Owner's own")["code"] == 579246
    assert cloud.creates() == 0  # adopting sends nothing


def test_a_key_deleted_while_the_upstream_lock_is_offline_is_not_adopted_back(
    cloud: Cloud,
) -> None:
    """Nuki goes on listing a removed key until its lock takes the removal: Keyhouse keeps the
    tombstone until then, so a drift check can't take the key for one made at Nuki."""
    key_id = cloud.create(WEEKDAY_CODE)
    cloud.wait_state(key_id, "applied")
    cloud.emulate(online=False)
    gone = cloud.client.delete(f"/smartlock/{cloud.lock_id}/auth/{key_id}", headers=cloud.headers)
    assert gone.status_code == 204, gone.text
    cloud.wait_state(key_id, "deleting", check=lambda k: "still lists" in k.get("error", ""))
    assert [k for k in cloud.theirs() if k["name"] == "Cleaner"]  # Nuki still lists it
    cloud.runtime.reconciler.repair(cloud.lock_id)
    listed = cloud.keys()
    assert [k["id"] for k in listed if k["name"] == "Cleaner"] == [key_id]  # no adoption
    cloud.emulate(online=True)
    wait_until(lambda: cloud.key(key_id) is None, timeout=60, what="the key to be removed")
    cloud.runtime.reconciler.repair(cloud.lock_id)
    listed = cloud.keys()
    assert [k for k in listed if k["name"] == "Cleaner"] == []
    assert [k for k in cloud.theirs() if k["name"] == "Cleaner"] == []


# --- the upstream's own failures: 402 for good, 5xx for now ---------------------------------------


def test_a_402_fails_the_key_with_the_upstreams_reason_and_nothing_is_made(cloud: Cloud) -> None:
    cloud.switch(failNext=1, failStatus=402)
    key_id = cloud.create(WEEKDAY_CODE)
    key = cloud.wait_state(key_id, "failed")
    assert "402" in key["error"] and "Payment required" in key["error"], key["error"]
    assert [k for k in cloud.theirs() if k["name"] == "Cleaner"] == []
    assert cloud.creates() == 1  # refused for good: not sent again
    assert cloud.row(key_id).create_marker is None


def test_5xx_answers_are_retried_and_nothing_is_doubled(tmp_path: Path) -> None:
    with (
        standin_server(tmp_path) as standin,
        linked(tmp_path, standin, upstream_resend_seconds=3) as cloud,
    ):
        key_id = cloud.create(WEEKDAY_CODE)
        cloud.wait_state(key_id, "applied")

        # A change meets two proxy errors (HTML 502s), then goes through, window kept.
        cloud.switch(failNext=2, failStatus=502)
        renamed = cloud.client.post(
            f"/smartlock/{cloud.lock_id}/auth/{key_id}",
            headers=cloud.headers,
            json={"name": "Maid"},
        )
        assert renamed.status_code == 204, renamed.text
        cloud.wait_state(key_id, "applied", timeout=60, check=lambda k: k["name"] == "Maid")
        theirs = only(cloud.theirs(), "Maid")
        assert {n: theirs[n] for n in WINDOW} == {n: WEEKDAY_CODE[n] for n in WINDOW}

        # A create answered 503: it may have landed, so it is looked for and sent again only
        # after the resend window; it had not landed, so there is exactly one at the end.
        cloud.switch(failNext=1, failStatus=503)
        second = cloud.create({**WEEKDAY_CODE, "name": "Gardener", "code": 468135})
        cloud.wait_state(second, "applied", timeout=60)
        assert len([k for k in cloud.theirs() if k["name"] == "Gardener"]) == 1
        listed = cloud.keys()
        assert [k["name"] for k in listed].count("Gardener") == 1
