"""/account/user: create, list, get, update and delete the people keys are given to."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import Tenant, tenant_with
from keyhouse.rules.dates import utcnow
from keyhouse.store.models import AccountUser

API_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def parse_date(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def users(tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    answer = tenant.get("/account/user", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def user_ids(tenant: Tenant, **params: Any) -> list[int]:
    return [user["accountUserId"] for user in users(tenant, **params)]


# --- create -------------------------------------------------------------------------------


def test_create_answers_200_with_the_account_user_shape(tenant: Tenant) -> None:
    answer = tenant.put("/account/user", json={"email": "anna@example.com", "name": "Anna"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    # type, language and operationId were not set: they are omitted, not null.
    assert set(body) == {
        "accountUserId",
        "accountId",
        "email",
        "name",
        "creationDate",
        "updateDate",
    }
    assert isinstance(body["accountUserId"], int) and body["accountUserId"] > 0
    assert body["accountId"] == tenant.account_id
    assert body["email"] == "anna@example.com"
    assert body["name"] == "Anna"
    assert API_DATE.match(body["creationDate"]), body["creationDate"]
    assert API_DATE.match(body["updateDate"]), body["updateDate"]
    assert body["creationDate"] == body["updateDate"]
    created = parse_date(body["creationDate"])
    assert abs((utcnow() - created).total_seconds()) < 60


def test_created_user_reads_back_the_same(tenant: Tenant) -> None:
    created = tenant.put(
        "/account/user", json={"email": "ben@example.com", "name": "Ben", "language": "de"}
    ).json()
    answer = tenant.get(f"/account/user/{created['accountUserId']}")
    assert answer.status_code == 200, answer.text
    assert answer.json() == created
    assert created["language"] == "de"


def test_type_sent_as_a_json_string_is_accepted(tenant: Tenant) -> None:
    """The PyPI client nuki-web-api sends "type": "0"."""
    answer = tenant.put(
        "/account/user", json={"email": "str@example.com", "name": "Stringy", "type": "0"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["type"] == 0
    company = tenant.put(
        "/account/user", json={"email": "co@example.com", "name": "Company", "type": 1}
    )
    assert company.status_code == 200, company.text
    assert company.json()["type"] == 1


@pytest.mark.parametrize("language", ["en", "de", "es", "fr", "it", "nl", "cs", "sk"])
def test_every_nuki_language_is_accepted(tenant: Tenant, language: str) -> None:
    answer = tenant.put(
        "/account/user",
        json={"email": f"{language}@example.com", "name": "Polyglot", "language": language},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["language"] == language


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "x@example.com", "name": "X", "language": "xx"}, "language"),
        ({"email": "x@example.com", "name": "X", "language": "english"}, "language"),
        ({"email": "x@example.com", "name": "X", "language": 5}, "language"),
        ({"email": "not-an-email", "name": "X"}, "email"),
        ({"email": "x@", "name": "X"}, "email"),
        ({"email": "x@example.com", "name": ""}, "name"),
        ({"email": "x@example.com", "name": "   "}, "name"),
        ({"email": "x@example.com", "name": "N" * 201}, "name"),
        ({"name": "No Mail"}, "email"),
        ({"email": "x@example.com"}, "name"),
        ({"email": "x@example.com", "name": "X", "type": 7}, "type"),
    ],
)
def test_invalid_create_is_400_naming_the_field_and_stores_nothing(
    tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    answer = tenant.put("/account/user", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["status"] == 400
    assert error["error"] == "validation_failed"
    assert error["field"] == field, error
    assert field in error["detailMessage"], error
    assert users(tenant) == []


def test_missing_email_is_reported_as_required(tenant: Tenant) -> None:
    error = tenant.put("/account/user", json={"name": "No Mail"}).json()
    assert error["field"] == "email"
    assert error["rule"] == "required"


def test_duplicate_email_is_409_also_when_it_differs_only_in_case(tenant: Tenant) -> None:
    first = tenant.create_user("dup@example.com", "First")
    for email in ("dup@example.com", "DUP@example.com", "Dup@Example.COM"):
        answer = tenant.put("/account/user", json={"email": email, "name": "Second"})
        assert answer.status_code == 409, (email, answer.text)
        error = answer.json()
        assert error["error"] == "conflict"
        assert error["field"] == "email"
        assert str(first) in error["detailMessage"]
    listed = users(tenant)
    assert [(u["accountUserId"], u["name"]) for u in listed] == [(first, "First")]


# --- list ---------------------------------------------------------------------------------


def test_list_is_empty_for_a_new_account(tenant: Tenant) -> None:
    assert users(tenant) == []


def test_list_filters_by_email_case_insensitively(tenant: Tenant) -> None:
    anna = tenant.create_user("anna@example.com", "Anna")
    tenant.create_user("ben@example.com", "Ben")
    assert user_ids(tenant, email="anna@example.com") == [anna]
    assert user_ids(tenant, email="ANNA@Example.COM") == [anna]
    assert user_ids(tenant, email="nobody@example.com") == []


def test_list_offset_and_limit_page_through_users_in_id_order(tenant: Tenant) -> None:
    ids = [tenant.create_user(f"u{i}@example.com", f"User {i}") for i in range(4)]
    assert user_ids(tenant) == sorted(ids)
    assert user_ids(tenant, offset=1) == ids[1:]
    assert user_ids(tenant, limit=2) == ids[:2]
    assert user_ids(tenant, offset=1, limit=2) == ids[1:3]
    assert user_ids(tenant, offset=10) == []
    assert user_ids(tenant, offset=0, limit=1) == ids[:1]


def test_list_limit_over_the_cap_is_clamped_to_the_cap(tmp_path: Path) -> None:
    with tenant_with(tmp_path, list_max_items=1000) as tenant:
        _clamped_to_1000(tenant)


def _clamped_to_1000(tenant: Tenant) -> None:
    now = utcnow()
    with tenant.runtime.db.session() as session:
        session.add_all(
            AccountUser(
                account_id=tenant.account_id,
                email=f"bulk{i}@example.com",
                email_key=f"bulk{i}@example.com",
                name=f"Bulk {i}",
                created_at=now,
                updated_at=now,
            )
            for i in range(1001)
        )
    assert len(users(tenant, limit=5000)) == 1000
    assert len(users(tenant)) == 1000
    assert tenant.get("/account/user").headers["x-has-more"] == "true"
    assert len(users(tenant, limit=1000)) == 1000
    assert len(users(tenant, offset=1000, limit=5000)) == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [({"offset": -1}, "offset"), ({"limit": 0}, "limit"), ({"limit": -5}, "limit")],
)
def test_list_refuses_negative_offset_and_limit_below_one(
    tenant: Tenant, params: dict[str, int], field: str
) -> None:
    tenant.create_user()
    answer = tenant.get("/account/user", params=params)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["field"] == field
    assert field in error["detailMessage"]


def test_list_refuses_a_non_numeric_offset(tenant: Tenant) -> None:
    answer = tenant.get("/account/user", params={"offset": "two"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == "offset"


# --- get ----------------------------------------------------------------------------------


def test_get_unknown_user_is_404_naming_the_id(tenant: Tenant) -> None:
    answer = tenant.get("/account/user/987654")
    assert answer.status_code == 404, answer.text
    error = answer.json()
    assert error["error"] == "not_found"
    assert "987654" in error["detailMessage"]


def test_get_with_a_non_numeric_id_is_400(tenant: Tenant) -> None:
    answer = tenant.get("/account/user/abc")
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == "accountUserId"


# --- update -------------------------------------------------------------------------------


def test_update_with_only_a_name_keeps_email_and_language(tenant: Tenant) -> None:
    created = tenant.put(
        "/account/user", json={"email": "carla@example.com", "name": "Carla", "language": "it"}
    ).json()
    user_id = created["accountUserId"]
    answer = tenant.post(f"/account/user/{user_id}", json={"name": "Carla Rossi"})
    assert answer.status_code == 200, answer.text
    updated = answer.json()
    assert updated["accountUserId"] == user_id
    assert updated["accountId"] == tenant.account_id
    assert updated["name"] == "Carla Rossi"
    assert updated["email"] == "carla@example.com"
    assert updated["language"] == "it"
    assert updated["creationDate"] == created["creationDate"]
    assert API_DATE.match(updated["updateDate"])
    assert parse_date(updated["updateDate"]) >= parse_date(created["updateDate"])
    assert tenant.get(f"/account/user/{user_id}").json() == updated


def test_update_language_null_clears_it(tenant: Tenant) -> None:
    user_id = tenant.put(
        "/account/user", json={"email": "dora@example.com", "name": "Dora", "language": "fr"}
    ).json()["accountUserId"]
    answer = tenant.post(f"/account/user/{user_id}", json={"language": None})
    assert answer.status_code == 200, answer.text
    assert "language" not in answer.json()
    assert answer.json()["name"] == "Dora"
    assert "language" not in tenant.get(f"/account/user/{user_id}").json()


def test_update_email_changes_it_and_the_filter_finds_the_new_one(tenant: Tenant) -> None:
    user_id = tenant.create_user("old@example.com", "Eve")
    answer = tenant.post(f"/account/user/{user_id}", json={"email": "new@example.com"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["email"] == "new@example.com"
    assert answer.json()["name"] == "Eve"
    assert user_ids(tenant, email="new@example.com") == [user_id]
    assert user_ids(tenant, email="old@example.com") == []


def test_update_to_another_users_email_is_409_and_changes_nothing(tenant: Tenant) -> None:
    first = tenant.create_user("first@example.com", "First")
    second = tenant.create_user("second@example.com", "Second")
    before = tenant.get(f"/account/user/{second}").json()
    for email in ("first@example.com", "FIRST@example.com"):
        answer = tenant.post(f"/account/user/{second}", json={"email": email, "name": "Renamed"})
        assert answer.status_code == 409, answer.text
        assert answer.json()["field"] == "email"
        assert str(first) in answer.json()["detailMessage"]
    assert tenant.get(f"/account/user/{second}").json() == before


def test_update_own_email_in_another_case_is_allowed(tenant: Tenant) -> None:
    user_id = tenant.create_user("case@example.com", "Case")
    answer = tenant.post(f"/account/user/{user_id}", json={"email": "CASE@example.com"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["email"].lower() == "case@example.com"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "broken"}, "email"),
        ({"name": ""}, "name"),
        ({"name": "  "}, "name"),
        ({"language": "xx"}, "language"),
        ({"emial": "typo@example.com"}, "emial"),
    ],
)
def test_invalid_update_is_400_and_changes_nothing(
    tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    user_id = tenant.create_user("frank@example.com", "Frank")
    before = tenant.get(f"/account/user/{user_id}").json()
    answer = tenant.post(f"/account/user/{user_id}", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field
    assert tenant.get(f"/account/user/{user_id}").json() == before


def test_update_unknown_user_is_404(tenant: Tenant) -> None:
    answer = tenant.post("/account/user/424242", json={"name": "Ghost"})
    assert answer.status_code == 404, answer.text
    assert "424242" in answer.json()["detailMessage"]


# --- delete -------------------------------------------------------------------------------


def test_delete_answers_204_and_the_user_is_gone(tenant: Tenant) -> None:
    keep = tenant.create_user("keep@example.com", "Keep")
    gone = tenant.create_user("gone@example.com", "Gone")
    answer = tenant.delete(f"/account/user/{gone}")
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    missing = tenant.get(f"/account/user/{gone}")
    assert missing.status_code == 404
    assert str(gone) in missing.json()["detailMessage"]
    assert user_ids(tenant) == [keep]
    assert tenant.delete(f"/account/user/{gone}").status_code == 404


def test_deleted_users_email_can_be_used_again(tenant: Tenant) -> None:
    gone = tenant.create_user("again@example.com", "Once")
    assert tenant.delete(f"/account/user/{gone}").status_code == 204
    again = tenant.create_user("again@example.com", "Twice")
    assert tenant.get(f"/account/user/{again}").json()["name"] == "Twice"
    assert user_ids(tenant, email="again@example.com") == [again]


def test_a_deleted_users_id_is_never_given_to_a_new_user(tenant: Tenant) -> None:
    gone = tenant.create_user("first@example.com", "Once")
    assert tenant.delete(f"/account/user/{gone}").status_code == 204
    newcomer = tenant.create_user("second@example.com", "Someone else")
    assert newcomer != gone
    assert tenant.get(f"/account/user/{gone}").status_code == 404


def test_delete_unknown_user_is_404(tenant: Tenant) -> None:
    answer = tenant.delete("/account/user/31337")
    assert answer.status_code == 404, answer.text
    assert "31337" in answer.json()["detailMessage"]


def test_deleting_a_user_removes_their_keys_and_only_theirs(tenant: Tenant) -> None:
    leaving = tenant.create_user("leaving@example.com", "Leaving")
    staying = tenant.create_user("staying@example.com", "Staying")
    key_a = tenant.create_key(
        tenant.plain_lock, name="Leaving A", accountUserId=leaving, remoteAllowed=False
    )
    key_b = tenant.create_key(
        tenant.keypad_lock, name="Leaving B", accountUserId=leaving, remoteAllowed=True
    )
    kept = tenant.create_key(
        tenant.plain_lock, name="Staying", accountUserId=staying, remoteAllowed=False
    )
    assert {key_a["syncState"], key_b["syncState"], kept["syncState"]} == {"applied"}
    assert tenant.runtime.link.auth_count(tenant.plain_lock) == 2
    assert tenant.runtime.link.auth_count(tenant.keypad_lock) == 1

    answer = tenant.delete(f"/account/user/{leaving}")
    assert answer.status_code == 204, answer.text

    remaining = tenant.keys()
    remaining_ids = {key["id"] for key in remaining}
    assert key_a["id"] not in remaining_ids
    assert key_b["id"] not in remaining_ids
    assert kept["id"] in remaining_ids
    assert all(key.get("accountUserId") != leaving for key in remaining)
    assert tenant.get("/smartlock/auth", params={"accountUserId": leaving}).json() == []
    assert [k["id"] for k in tenant.keys(tenant.keypad_lock)] == []
    # The locks themselves no longer hold the keys either.
    assert tenant.runtime.link.auth_count(tenant.plain_lock) == 1
    assert tenant.runtime.link.auth_count(tenant.keypad_lock) == 0
