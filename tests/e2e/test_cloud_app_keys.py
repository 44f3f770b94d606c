"""App keys (type 0) on locks driven through Nuki's cloud: the key's account user is found or
made at the upstream by e-mail (Nuki then sends its own invite), and the key goes there with
that user. The stand-in for api.nuki.io is a second Keyhouse server process in Nuki mode; every
request the link sends is checked against the official spec (the ``cloud`` fixture's end)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from test_cloud_link import Cloud, linked, only, standin_server

from conftest import free_port, wait_until
from keyhouse.rules.dates import format_api_datetime
from keyhouse.services import guest
from keyhouse.store.models import OutboxMessage, SmartlockAuth, UpstreamLink


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with standin_server(tmp_path) as standin, linked(tmp_path, standin) as found:
        yield found


def keyhouse_user(cloud: Cloud, email: str, name: str = "Guest") -> int:
    made = cloud.client.put(
        "/account/user", headers=cloud.headers, json={"email": email, "name": name}
    )
    assert made.status_code == 200, made.text
    return made.json()["accountUserId"]


def app_key(cloud: Cloud, name: str, user: int, **extra: Any) -> str:
    return cloud.create(
        {"name": name, "type": 0, "accountUserId": user, "remoteAllowed": True, **extra}
    )


def their_users(cloud: Cloud) -> list[dict[str, Any]]:
    answer = httpx.get(f"{cloud.standin.url}/account/user", headers=cloud.standin.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def user_creates(cloud: Cloud) -> int:
    return sum(
        1 for r in cloud.recording.requests if r.method == "PUT" and r.url.path == "/account/user"
    )


def invite_mails(cloud: Cloud, email: str) -> list[OutboxMessage]:
    with cloud.runtime.db.read() as session:
        return list(
            session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.recipient == email, OutboxMessage.kind == "invite"
                )
            )
        )


def test_an_app_key_goes_to_the_upstream_with_a_user_of_the_same_email(cloud: Cloud) -> None:
    user = keyhouse_user(cloud, "Ann.Guest@example.com", "Ann")
    assert [u for u in their_users(cloud) if u["email"].lower() == "ann.guest@example.com"] == []
    key_id = app_key(cloud, "Ann's phone", user, allowedWeekDays=124)
    cloud.wait_state(key_id, "applied")
    (theirs_user,) = [
        u for u in their_users(cloud) if u["email"].lower() == "ann.guest@example.com"
    ]
    assert theirs_user["name"] == "Ann"
    theirs = only(cloud.theirs(), "Ann's phone")
    assert theirs["type"] == 0 and theirs["allowedWeekDays"] == 124
    assert theirs["accountUserId"] == theirs_user["accountUserId"]
    assert cloud.row(key_id).device_ref == theirs["id"]
    assert cloud.creates() == 1
    # Keyhouse's own invite says that Nuki sends one too (to add the key to the Nuki app).
    (invite,) = invite_mails(cloud, "Ann.Guest@example.com")
    assert "Nuki also sends you its own\ne-mail invitation" in invite.body, invite.body
    assert "Open your key here:" in invite.body

    # A second key of the same person: the upstream user is found, not made again.
    second = app_key(cloud, "Ann's tablet", user)
    cloud.wait_state(second, "applied")
    assert only(cloud.theirs(), "Ann's tablet")["accountUserId"] == theirs_user["accountUserId"]
    assert user_creates(cloud) == 1
    assert (
        len([u for u in their_users(cloud) if u["email"].lower() == "ann.guest@example.com"]) == 1
    )

    # A change keeps the user (the whole key goes with it).
    renamed = cloud.client.post(
        f"/smartlock/{cloud.lock_id}/auth/{key_id}", headers=cloud.headers, json={"name": "Ann 2"}
    )
    assert renamed.status_code == 204, renamed.text
    cloud.wait_state(key_id, "applied", check=lambda k: k["name"] == "Ann 2")
    assert only(cloud.theirs(), "Ann 2")["accountUserId"] == theirs_user["accountUserId"]


def test_an_upstream_user_already_there_is_used_and_not_made_again(cloud: Cloud) -> None:
    made = httpx.put(
        f"{cloud.standin.url}/account/user",
        headers=cloud.standin.headers,
        json={"email": "bob@example.com", "name": "Bob at Nuki"},
    )
    assert made.status_code == 200, made.text
    user = keyhouse_user(cloud, "BOB@example.com", "Bob")
    key_id = app_key(cloud, "Bob's phone", user)
    cloud.wait_state(key_id, "applied")
    assert only(cloud.theirs(), "Bob's phone")["accountUserId"] == made.json()["accountUserId"]
    assert user_creates(cloud) == 0


def test_an_app_key_whose_user_is_gone_fails_with_words_and_sends_nothing(
    cloud: Cloud,
) -> None:
    """A type 0 key always names a user through the API; a user row removed behind the API's
    back (the column is set to NULL) leaves one without: it fails, saying why."""
    dead = f"http://127.0.0.1:{free_port()}"

    def point(url: str) -> None:
        cloud.runtime.db.transaction(
            lambda session: session.execute(update(UpstreamLink).values(url=url))
        )

    point(dead)  # the key waits (nothing reaches the upstream) while its user goes
    user = keyhouse_user(cloud, "carl@example.com", "Carl")
    key_id = app_key(cloud, "Carl's phone", user)
    cloud.wait_state(
        key_id, "pending", check=lambda k: "could not reach Nuki's API" in k.get("error", "")
    )
    cloud.runtime.db.transaction(
        lambda session: session.execute(
            update(SmartlockAuth).where(SmartlockAuth.id == key_id).values(account_user_id=None)
        )
    )
    point(cloud.standin.url)
    cloud.runtime.retry_now(cloud.lock_id)
    key = cloud.wait_state(key_id, "failed")
    assert "has no account user in Keyhouse" in key["error"], key
    assert cloud.creates() == 0 and user_creates(cloud) == 0
    assert [k for k in cloud.theirs() if k["name"] == "Carl's phone"] == []


# --- the guest page's Open on an upstream lock ----------------------------------------------

GUEST_LINK = re.compile(r"/guest/([A-Za-z0-9_-]{43})\b")
UNLOCKED = 3
LOG_SUCCESS, LOG_REJECTED = 0, 9
TRIGGER_WEB = 4


def guest_link(cloud: Cloud, key_id: str) -> str:
    """The guest link's secret, from the invite mail as the guest gets it (an .eml file)."""
    folder = cloud.runtime.settings.mail_dir

    def found() -> str | None:
        for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            if key_id not in str(message["Message-ID"]):
                continue
            for part in message.walk():
                text = part.get_content_maintype() == "text" and not part.is_multipart()
                if text and (match := GUEST_LINK.search(part.get_content())):
                    return match.group(1)
        return None

    return wait_until(found, what=f"the invite mail of key {key_id}")


def their_state(cloud: Cloud) -> int:
    answer = httpx.get(
        f"{cloud.standin.url}/smartlock/{cloud.lock_id}", headers=cloud.standin.headers
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["state"]["state"]


def our_log(cloud: Cloud) -> list[dict[str, Any]]:
    answer = cloud.client.get(f"/smartlock/{cloud.lock_id}/log", headers=cloud.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def actions_sent(cloud: Cloud) -> int:
    path = f"/smartlock/{cloud.lock_id}/action"
    return sum(1 for r in cloud.recording.requests if r.method == "POST" and r.url.path == path)


def test_open_on_an_upstream_lock_unlocks_there_and_logs_the_guest_key(cloud: Cloud) -> None:
    user = keyhouse_user(cloud, "dora@example.com", "Dora")
    key_id = app_key(cloud, "Dora's key", user)
    cloud.wait_state(key_id, "applied")
    secret = guest_link(cloud, key_id)
    assert their_state(cloud) != UNLOCKED

    answer = cloud.client.post(f"/guest/{secret}/open", follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert actions_sent(cloud) == 1
    wait_until(lambda: their_state(cloud) == UNLOCKED, what="the upstream lock to unlock")
    (entry,) = [e for e in our_log(cloud) if e["authId"] == key_id]
    assert (entry["trigger"], entry["action"], entry["state"]) == (TRIGGER_WEB, 1, LOG_SUCCESS)
    assert entry["name"] == "Dora's key"
    assert "accepted" in entry["error"]  # the cloud took it; the lock's outcome is Nuki's

    # The pull brings Nuki's entry of that unlock (made with the owner's token): it takes the
    # place of Keyhouse's, which keeps naming the guest's key; one entry for one Open.
    theirs = httpx.get(
        f"{cloud.standin.url}/smartlock/log", headers=cloud.standin.headers, params={"limit": 50}
    ).json()
    (nukis,) = [e for e in theirs if e["trigger"] == TRIGGER_WEB and e["action"] == 1]
    cloud.runtime.upstream_sync.sync(cloud.account_id)
    web_unlocks = [e for e in our_log(cloud) if (e["trigger"], e["action"]) == (TRIGGER_WEB, 1)]
    assert len(web_unlocks) == 1, web_unlocks
    (settled,) = web_unlocks
    assert settled["id"] == nukis["id"] and settled["authId"] == key_id
    assert settled["name"] == "Dora's key" and settled["state"] == LOG_SUCCESS
    assert "error" not in settled
    cloud.runtime.upstream_sync.sync(cloud.account_id)  # again: nothing new
    assert len([e for e in our_log(cloud) if e["trigger"] == TRIGGER_WEB]) == 1


def test_open_on_an_upstream_lock_outside_the_window_or_disabled_sends_nothing(
    cloud: Cloud,
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    user = keyhouse_user(cloud, "emil@example.com", "Emil")
    later = app_key(cloud, "Emil later", user, allowedFromDate=format_api_datetime(start))
    cloud.wait_state(later, "applied")
    secret = guest_link(cloud, later)

    answer = cloud.client.post(f"/guest/{secret}/open", follow_redirects=False)
    assert answer.status_code == 403, answer.text
    assert "validity starts" in answer.text
    assert actions_sent(cloud) == 0
    (entry,) = [e for e in our_log(cloud) if e["authId"] == later]
    assert (entry["trigger"], entry["state"]) == (TRIGGER_WEB, LOG_REJECTED)

    # Disabled between the page and the Open (the link itself checks it too, as it resolves):
    # Keyhouse reads the key again and refuses before anything goes upstream.
    now_key = app_key(cloud, "Emil now", user)
    cloud.wait_state(now_key, "applied")
    shown = guest.view(cloud.runtime, guest_link(cloud, now_key), None)
    off = cloud.client.post(
        f"/smartlock/{cloud.lock_id}/auth/{now_key}",
        headers=cloud.headers,
        json={"name": "Emil now", "enabled": False},
    )
    assert off.status_code == 204, off.text
    with pytest.raises(guest.GuestRefusal) as refused:
        guest.open_door(cloud.runtime, shown)
    assert refused.value.status == 403
    assert actions_sent(cloud) == 0
    (entry,) = [e for e in our_log(cloud) if e["authId"] == now_key]
    assert entry["state"] == LOG_REJECTED and "disabled" in entry["error"]
    assert their_state(cloud) != UNLOCKED
