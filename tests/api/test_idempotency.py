"""Issue 12: an ``Idempotency-Key`` makes a retried write happen once within 24 h.

A replay returns the first answer (``Idempotent-Replayed: true``) and changes nothing; the same
key with a different request is a 422 that says so; concurrent requests under one key make one
write; an invalid key is a 400 naming the header; a key older than 24 h is forgotten. On
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, update

from conftest import Tenant, tenant_with
from keyhouse.rules.dates import utcnow
from keyhouse.store.idempotency import Pruner
from keyhouse.store.models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEYPAD_CODES = [n for n in range(345_671, 399_999) if "0" not in str(n)]


def keypad_code(index: int = 0, **extra: Any) -> dict[str, Any]:
    code = KEYPAD_CODES[index]
    return {"name": f"Code {index}", "type": 13, "code": code, "remoteAllowed": False, **extra}


def keyed(key: str) -> dict[str, str]:
    return {HEADER: key}


def records(tenant: Tenant) -> int:
    with tenant.runtime.db.read() as session:
        return session.scalar(select(func.count()).select_from(IdempotencyRecord)) or 0


def test_a_replay_returns_the_first_answer_and_makes_one_key(store_tenant: Tenant) -> None:
    tenant = store_tenant
    path = f"/smartlock/{tenant.keypad_lock}/auth"
    first = tenant.put(path, json=keypad_code(), headers=keyed("create-1"))
    assert first.status_code == 204, first.text
    assert REPLAYED not in first.headers
    again = tenant.put(path, json=keypad_code(), headers=keyed("create-1"))
    assert again.status_code == 204, again.text
    assert again.headers[REPLAYED] == "true"
    assert len(tenant.keys(tenant.keypad_lock)) == 1

    # An answer with a body: the same user, the same JSON, one user.
    user = {"email": "guest@example.com", "name": "Guest"}
    made = tenant.put("/account/user", json=user, headers=keyed("user-1"))
    assert made.status_code == 200, made.text
    replayed = tenant.put("/account/user", json=user, headers=keyed("user-1"))
    assert replayed.status_code == 200 and replayed.headers[REPLAYED] == "true"
    assert replayed.content == made.content
    assert replayed.headers["content-type"] == "application/json"
    assert len(tenant.get("/account/user").json()) == 1


def test_without_the_header_every_request_is_made(tenant: Tenant) -> None:
    path = f"/smartlock/{tenant.keypad_lock}/auth"
    assert tenant.put(path, json=keypad_code(0)).status_code == 204
    assert tenant.put(path, json=keypad_code(1)).status_code == 204
    assert len(tenant.keys(tenant.keypad_lock)) == 2
    assert records(tenant) == 0


def test_the_same_key_with_another_request_is_422_and_changes_nothing(
    store_tenant: Tenant,
) -> None:
    tenant = store_tenant
    path = f"/smartlock/{tenant.keypad_lock}/auth"
    assert tenant.put(path, json=keypad_code(0), headers=keyed("k")).status_code == 204

    other_body = tenant.put(path, json=keypad_code(1), headers=keyed("k"))
    assert other_body.status_code == 422, other_body.text
    error = other_body.json()
    assert error["field"] == HEADER and error["rule"] == "idempotency_mismatch"
    assert "different request" in error["detailMessage"] and "body" in error["detailMessage"]

    other_path = tenant.put(f"/smartlock/{tenant.plain_lock}/auth", json=keypad_code(0))
    assert other_path.status_code in (204, 400, 409)  # without a key: made or refused
    elsewhere = tenant.post(f"/smartlock/{tenant.plain_lock}/action/lock", headers=keyed("k"))
    assert elsewhere.status_code == 422, elsewhere.text
    assert "the method (POST, was PUT)" in elsewhere.json()["detailMessage"]

    (key,) = tenant.keys(tenant.keypad_lock)
    assert key["name"] == "Code 0" and key["code"] == KEYPAD_CODES[0]


def test_an_error_is_not_stored_so_the_corrected_request_may_reuse_the_key(
    store_tenant: Tenant,
) -> None:
    tenant = store_tenant
    path = f"/smartlock/{tenant.keypad_lock}/auth"
    refused = tenant.put(path, json=keypad_code(0, code=120000), headers=keyed("fix-me"))
    assert refused.status_code == 400, refused.text
    assert records(tenant) == 0
    fixed = tenant.put(path, json=keypad_code(0), headers=keyed("fix-me"))
    assert fixed.status_code == 204 and REPLAYED not in fixed.headers
    assert len(tenant.keys(tenant.keypad_lock)) == 1


def test_keys_are_per_token(tenant: Tenant) -> None:
    other = tenant.token_with("smartlock.auth")
    path = f"/smartlock/{tenant.keypad_lock}/auth"
    assert tenant.put(path, json=keypad_code(0), headers=keyed("same")).status_code == 204
    second = tenant.client.put(
        path, json=keypad_code(1), headers={"Authorization": f"Bearer {other}", **keyed("same")}
    )
    assert second.status_code == 204 and REPLAYED not in second.headers
    assert len(tenant.keys(tenant.keypad_lock)) == 2


def _one_round(
    tenant: Tenant, index: int, senders: int
) -> tuple[list[httpx.Response], list[httpx.Response]]:
    """``senders`` threads send the same key creation and the same user creation at once."""
    key = str(uuid.uuid4())
    path = f"/smartlock/{tenant.keypad_lock}/auth"
    user = {"email": f"user{index}@example.com", "name": f"User {index}"}
    barrier = threading.Barrier(senders)
    answers: list[httpx.Response] = []
    users: list[httpx.Response] = []

    def send() -> None:
        barrier.wait()
        answers.append(tenant.put(path, json=keypad_code(index), headers=keyed(key)))
        users.append(tenant.put("/account/user", json=user, headers=keyed(key + "-user")))

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers, users


def test_concurrent_requests_under_one_key_make_one_write(store_tenant: Tenant) -> None:
    tenant = store_tenant
    rounds = 20
    for index in range(rounds):
        answers, users = _one_round(tenant, index, senders=4)
        statuses = sorted(answer.status_code for answer in answers)
        assert set(statuses) <= {204, 409} and 204 in statuses, [a.text for a in answers]
        made = [a for a in answers if a.status_code == 204 and REPLAYED not in a.headers]
        assert len(made) == 1, statuses
        assert len(tenant.keys(tenant.keypad_lock)) == index + 1
        assert all(u.status_code in (200, 409) for u in users), [u.text for u in users]
        user_ids = {u.json()["accountUserId"] for u in users if u.status_code == 200}
        assert len(user_ids) == 1, [u.text for u in users]
    assert len(tenant.get("/account/user").json()) == rounds


def test_an_invalid_key_is_400_naming_the_header(tenant: Tenant) -> None:
    path = f"/smartlock/{tenant.keypad_lock}/auth"
    for value in ("", "x" * 256, b"caf\xc3\xa9", "tab\there"):
        answer = tenant.put(path, json=keypad_code(), headers={HEADER: value})  # type: ignore[dict-item]
        assert answer.status_code == 400, (value, answer.text)
        error = answer.json()
        assert error["field"] == HEADER and error["rule"] == "idempotency_key", error
    assert tenant.keys(tenant.keypad_lock) == []
    longest = tenant.put(path, json=keypad_code(), headers=keyed("k " + "x" * 253))
    assert longest.status_code == 204, longest.text


def test_a_key_older_than_24_hours_is_forgotten_and_pruned(store_tenant: Tenant) -> None:
    tenant = store_tenant
    path = f"/smartlock/{tenant.keypad_lock}/auth"
    assert tenant.put(path, json=keypad_code(0), headers=keyed("old")).status_code == 204
    with tenant.runtime.db.session() as session:
        session.execute(
            update(IdempotencyRecord).values(created_at=utcnow() - timedelta(hours=24, seconds=1))
        )
    again = tenant.put(path, json=keypad_code(0, name="Code again"), headers=keyed("old"))
    assert again.status_code in (204, 409), again.text  # made again (the code is taken: 409)
    assert REPLAYED not in again.headers
    fresh = tenant.put(path, json=keypad_code(1), headers=keyed("fresh"))
    assert fresh.status_code == 204
    older = tenant.put(path, json=keypad_code(2), headers=keyed("older"))
    assert older.status_code == 204
    with tenant.runtime.db.session() as session:
        session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == "older")
            .values(created_at=utcnow() - timedelta(hours=25))
        )
    Pruner(tenant.runtime.db).maybe()
    with tenant.runtime.db.read() as session:
        left = set(session.scalars(select(IdempotencyRecord.key)))
    assert "fresh" in left and "older" not in left
    assert left <= {"fresh", "old"}


def test_a_key_older_than_24_hours_makes_the_write_again(tenant: Tenant) -> None:
    user = {"email": "guest@example.com", "name": "Guest"}
    first = tenant.put("/account/user", json=user, headers=keyed("u"))
    assert first.status_code == 200
    assert tenant.delete(f"/account/user/{first.json()['accountUserId']}").status_code == 204
    with tenant.runtime.db.session() as session:
        session.execute(
            update(IdempotencyRecord).values(created_at=utcnow() - timedelta(hours=24, seconds=1))
        )
    again = tenant.put("/account/user", json=user, headers=keyed("u"))
    assert again.status_code == 200 and REPLAYED not in again.headers
    assert again.json()["accountUserId"] != first.json()["accountUserId"]
    assert records(tenant) == 1


def log_entries(tenant: Tenant, lock: int) -> int:
    answer = tenant.get(f"/smartlock/{lock}/log")
    assert answer.status_code == 200, answer.text
    return len(answer.json())


def test_a_lock_action_under_one_key_moves_the_lock_once(store_tenant: Tenant) -> None:
    tenant = store_tenant
    lock = tenant.plain_lock
    before = log_entries(tenant, lock)
    first = tenant.post(f"/smartlock/{lock}/action/unlock", headers=keyed("open"))
    assert first.status_code == 204, first.text
    again = tenant.post(f"/smartlock/{lock}/action/unlock", headers=keyed("open"))
    assert again.status_code == 204 and again.headers[REPLAYED] == "true"
    assert log_entries(tenant, lock) == before + 1

    # The emulator's door events are writes too: one keypad entry, one log entry.
    tenant.create_key(tenant.keypad_lock, **keypad_code(3))
    keypad = f"/emulator/smartlock/{tenant.keypad_lock}/keypad"
    entries = log_entries(tenant, tenant.keypad_lock)
    entered = tenant.post(keypad, json={"code": KEYPAD_CODES[3]}, headers=keyed("door"))
    assert entered.status_code == 200, entered.text
    replayed = tenant.post(keypad, json={"code": KEYPAD_CODES[3]}, headers=keyed("door"))
    assert replayed.content == entered.content and replayed.headers[REPLAYED] == "true"
    assert log_entries(tenant, tenant.keypad_lock) == entries + 1


def test_a_failed_lock_action_is_not_stored(tenant: Tenant) -> None:
    lock = tenant.plain_lock
    assert tenant.post(f"/emulator/smartlock/{lock}", json={"online": False}).status_code == 200
    offline = tenant.post(f"/smartlock/{lock}/action/lock", headers=keyed("try"))
    assert offline.status_code == 409 and offline.json()["error"] == "lock_offline"
    assert records(tenant) == 0
    assert tenant.post(f"/emulator/smartlock/{lock}", json={"online": True}).status_code == 200
    done = tenant.post(f"/smartlock/{lock}/action/lock", headers=keyed("try"))
    assert done.status_code == 204 and REPLAYED not in done.headers


def test_a_retry_while_the_first_runs_is_409_in_progress_then_replayed(tmp_path: Path) -> None:
    with tenant_with(tmp_path) as tenant:
        lock = tenant.plain_lock
        slow = tenant.post(f"/emulator/smartlock/{lock}", json={"latencyMs": 1500})
        assert slow.status_code == 200
        first: list[httpx.Response] = []
        thread = threading.Thread(
            target=lambda: first.append(
                tenant.post(f"/smartlock/{lock}/action/unlock", headers=keyed("slow"))
            )
        )
        thread.start()
        time.sleep(0.5)
        busy = tenant.post(f"/smartlock/{lock}/action/unlock", headers=keyed("slow"))
        assert busy.status_code == 409, busy.text
        assert busy.json()["rule"] == "idempotency_in_progress"
        assert busy.headers["Retry-After"] == "1"
        thread.join(30)
        assert first[0].status_code == 204
        done = tenant.post(f"/smartlock/{lock}/action/unlock", headers=keyed("slow"))
        assert done.status_code == 204 and done.headers[REPLAYED] == "true"


def test_the_header_is_documented_on_every_write(tenant: Tenant) -> None:
    document = tenant.client.get("/openapi.json").json()
    writes = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            names = {p["name"] for p in operation.get("parameters", [])}
            if method == "get" or path.startswith("/guest"):
                assert HEADER not in names, (method, path)
                continue
            writes += 1
            assert HEADER in names, (method, path)
            (parameter,) = [p for p in operation["parameters"] if p["name"] == HEADER]
            assert parameter["in"] == "header" and parameter["required"] is False
            assert parameter["schema"]["maxLength"] == 255
            assert operation["responses"]["422"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"
            }
    assert writes >= 17
