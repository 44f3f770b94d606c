"""The PyPI client `nuki-web-api` (module `nukiwebapi`), unchanged, against `keyhouse serve`.

Only ``base_url`` differs from talking to api.nuki.io. The client's quirks are kept as they are:
it sends an account user's ``type`` as the string "0", sends only the fields given to
``update_auth`` (a partial update), and raises ``requests.HTTPError`` carrying our
``detailMessage``.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from nukiwebapi import NukiWebAPI

from conftest import LiveServer, SmtpServer, wait_until

FROM_DATE = "2026-12-01T00:00:00.000Z"
UNTIL_DATE = "2027-01-31T23:00:00.000Z"
WINDOW = {
    "allowedFromDate": FROM_DATE,
    "allowedUntilDate": UNTIL_DATE,
    "allowedWeekDays": 124,
    "allowedFromTime": 480,
    "allowedUntilTime": 1080,
}


def window_of(key: dict[str, Any]) -> dict[str, Any]:
    return {field: key.get(field) for field in WINDOW}


@pytest.fixture
def api(live_server: LiveServer) -> NukiWebAPI:
    return NukiWebAPI(live_server.token, base_url=live_server.url)


def test_lock_listing_through_the_client(api: NukiWebAPI, live_server: LiveServer) -> None:
    listed = api.smartlock.list_smartlocks()
    assert sorted(lock["smartlockId"] for lock in listed) == sorted(live_server.lock_ids)

    instances = api.lock_instances
    assert sorted(instances) == sorted(live_server.lock_ids)
    for smartlock_id, instance in instances.items():
        assert instance.id == smartlock_id
        assert instance.name in {"Front Door", "Flat 2"}
        assert instance.is_locked is True
        assert instance.battery_charge == 100
        # the client's hex id is the Nuki id: the smartlockId's hex without the type digit
        assert int(instance.hex_id, 16) == smartlock_id & 0xFFFFFFFF

    one = api.smartlock.get_smartlock(live_server.lock_ids[0])
    assert one.raw_data["smartlockId"] == live_server.lock_ids[0]
    assert one.raw_data["config"]["name"] == one.name

    by_type = api.smartlock.list_smartlocks(type_=4)
    assert len(by_type) == 2
    assert api.smartlock.list_smartlocks(type_=2) == []


def test_account_user_lifecycle_through_the_client(api: NukiWebAPI) -> None:
    # the client sends type as the string "0"
    created = api.account_user.create_account_user(
        "client.user@example.com", "Client User", type=0, language="de"
    )
    user_id = created["accountUserId"]
    assert created["type"] == 0
    assert created["language"] == "de"
    assert created["email"] == "client.user@example.com"

    listed = api.account_user.list_account_users()
    assert [u["accountUserId"] for u in listed if u["email"] == "client.user@example.com"] == [
        user_id
    ]
    assert api.account_user.get_account_user(user_id)["name"] == "Client User"

    updated = api.account_user.update_account_user(
        user_id, "client.renamed@example.com", "Renamed User", "fr"
    )
    assert updated["accountUserId"] == user_id
    assert updated["email"] == "client.renamed@example.com"
    assert updated["name"] == "Renamed User"
    assert updated["language"] == "fr"
    assert api.account_user.get_account_user(user_id)["name"] == "Renamed User"

    # a duplicate e-mail is refused with 409 and our sentence
    with pytest.raises(requests.HTTPError) as refused:
        api.account_user.create_account_user("client.renamed@example.com", "Twin")
    assert refused.value.response.status_code == 409
    assert "already belongs to account user" in str(refused.value)

    answer = api.account_user.delete_account_user(user_id)
    assert answer.status_code == 204
    with pytest.raises(requests.HTTPError) as gone:
        api.account_user.get_account_user(user_id)
    assert gone.value.response.status_code == 404
    assert f"account user {user_id} does not exist" in str(gone.value)
    assert all(u["accountUserId"] != user_id for u in api.account_user.list_account_users())


def test_keys_through_the_client(
    api: NukiWebAPI, live_server: LiveServer, smtp_server: SmtpServer
) -> None:
    front, flat = live_server.lock_ids
    user_id = api.account_user.create_account_user("key.holder@example.com", "Key Holder")[
        "accountUserId"
    ]

    # one lock, with restrictions
    assert (
        api.smartlock_auth.create_auth_for_smartlock(
            front,
            "Weekdays",
            remote_allowed=False,
            allowed_from_date=FROM_DATE,
            allowed_until_date=UNTIL_DATE,
            allowed_week_days=124,
            allowed_from_time=480,
            allowed_until_time=1080,
            account_user_id=user_id,
            smart_actions_enabled=False,
        )
        is None
    )
    (weekdays,) = [
        k
        for k in api.smartlock_auth.list_auths_for_smartlock(front, types="0")
        if k["name"] == "Weekdays"
    ]
    assert window_of(weekdays) == WINDOW
    assert weekdays["accountUserId"] == user_id
    assert weekdays["type"] == 0

    single = api.smartlock_auth.get_auth(front, weekdays["id"]).json()
    assert single["id"] == weekdays["id"]
    assert window_of(single) == WINDOW

    # partial update: only the name is sent, the time window stays
    api.smartlock_auth.update_auth(front, weekdays["id"], name="x")
    renamed = api.smartlock_auth.get_auth(front, weekdays["id"]).json()
    assert renamed["name"] == "x"
    assert window_of(renamed) == WINDOW
    assert renamed["enabled"] is True

    # several locks at once: one key per lock
    api.smartlock_auth.create_auth_for_smartlocks(
        "Both doors", smartlock_ids=[front, flat], remote_allowed=True, account_user_id=user_id
    )
    both = [k for k in api.smartlock_auth.list_auths() if k["name"] == "Both doors"]
    assert sorted(k["smartlockId"] for k in both) == sorted([front, flat])
    assert all(k["remoteAllowed"] is True and k["accountUserId"] == user_id for k in both)
    assert len({k["id"] for k in both}) == 2

    mine = api.smartlock_auth.list_auths(account_user_id=user_id, types="0")
    assert sorted(k["name"] for k in mine) == ["Both doors", "Both doors", "x"]
    assert api.smartlock_auth.list_auths(account_user_id=user_id, types="13") == []
    assert [k["name"] for k in api.smartlock_auth.list_auths_for_smartlock(flat, types="0")] == [
        "Both doors"
    ]

    # every app key sent its invite: one, then one per lock
    messages = smtp_server.mailbox.wait_for(3, timeout=10)
    assert len(messages) == 3
    assert all(m["To"] == "key.holder@example.com" for m in messages)

    # bulk update: each entry names its key; the time window of "x" stays
    first, second = sorted(both, key=lambda k: k["smartlockId"] != front)
    api.smartlock_auth.update_auths_bulk(
        [
            {"id": first["id"], "name": "Both doors (front)", "enabled": False},
            {"id": weekdays["id"], "name": "Weekdays again"},
        ]
    )
    after = {k["id"]: k for k in api.smartlock_auth.list_auths()}
    assert after[first["id"]]["name"] == "Both doors (front)"
    assert after[first["id"]]["enabled"] is False
    assert after[second["id"]]["name"] == "Both doors"
    assert after[weekdays["id"]]["name"] == "Weekdays again"
    assert window_of(after[weekdays["id"]]) == WINDOW

    # delete one, then the rest in one call
    api.smartlock_auth.delete_auth(front, weekdays["id"])
    wait_until(
        lambda: weekdays["id"] not in {k["id"] for k in api.smartlock_auth.list_auths()},
        what="the deleted key to disappear",
    )
    with pytest.raises(requests.HTTPError) as gone:
        api.smartlock_auth.get_auth(front, weekdays["id"])
    assert gone.value.response.status_code == 404
    api.smartlock_auth.delete_auths([first["id"], second["id"]])
    wait_until(
        lambda: api.smartlock_auth.list_auths(account_user_id=user_id) == [],
        what="the deleted keys to disappear",
    )


def test_client_errors_carry_our_detail_message(api: NukiWebAPI, live_server: LiveServer) -> None:
    front = live_server.lock_ids[0]

    with pytest.raises(requests.HTTPError) as missing_user:
        api.smartlock_auth.create_auth_for_smartlock(front, "No user", remote_allowed=False)
    assert missing_user.value.response.status_code == 400
    assert missing_user.value.response.json()["field"] == "accountUserId"
    assert "accountUserId is required" in str(missing_user.value)
    assert "PUT /account/user" in str(missing_user.value)

    with pytest.raises(requests.HTTPError) as bad_code:
        api.smartlock_auth.create_auth_for_smartlock(
            front, "Keypad", remote_allowed=False, type=13, code=123456
        )
    assert bad_code.value.response.status_code == 400
    assert "Detail: " in str(bad_code.value)
    assert bad_code.value.response.json()["field"] == "code"

    with pytest.raises(requests.HTTPError) as unknown_lock:
        api.smartlock_auth.list_auths_for_smartlock(1)
    assert unknown_lock.value.response.status_code in (403, 404)
    assert "smartlock 1 does not exist in your account" in str(unknown_lock.value)

    stranger = NukiWebAPI("kh_not-a-token", base_url=live_server.url)
    with pytest.raises(requests.HTTPError) as unauthorized:
        stranger.smartlock.list_smartlocks()
    assert unauthorized.value.response.status_code == 401
    assert unauthorized.value.response.json()["detailMessage"] in str(unauthorized.value)

    # nothing was created by the refused requests
    assert api.smartlock_auth.list_auths() == []
