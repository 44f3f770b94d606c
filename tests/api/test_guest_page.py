"""The guest page an invite link opens (/guest/{secret}), over HTTP through the app.

The link comes from the invite mail as the guest gets it (an .eml file in the data folder,
since these tenants have no SMTP server); the door's answer is checked through the Nuki API
(GET /smartlock/{id}, /smartlock/{id}/log).
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from conftest import Tenant, tenant_with, wait_until
from keyhouse.api.guest import hide_secrets
from keyhouse.rules.dates import format_api_datetime
from keyhouse.rules.windows import describe_validity
from keyhouse.store.models import Invite, Smartlock

LINK = re.compile(r"/guest/([A-Za-z0-9_-]{43})\b")
LOCKED, UNLOCKED = 1, 3
TRIGGER_WEB = 4
LOG_SUCCESS, LOG_REJECTED = 0, 9
KEYPAD_CODE = 246813


# --- helpers ----------------------------------------------------------------------------------


def mail_text(raw: bytes) -> tuple[str, str]:
    """(Message-ID, text of every text part) of a raw mail."""
    message = message_from_bytes(raw, policy=policy.default)
    texts = [
        part.get_content()
        for part in message.walk()
        if part.get_content_maintype() == "text" and not part.is_multipart()
    ]
    return str(message["Message-ID"]), "\n".join(texts)


def mailed_links(tenant: Tenant, key_id: str) -> list[str]:
    """The guest-link secrets mailed for ``key_id``, oldest first."""
    folder = tenant.runtime.settings.mail_dir
    found = []
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        message_id, text = mail_text(path.read_bytes())
        if key_id in message_id:
            found.extend(dict.fromkeys(LINK.findall(text)))
    return found


def link_of(tenant: Tenant, key_id: str, count: int = 1) -> str:
    """The newest guest link of ``key_id`` once ``count`` invites of it were mailed."""
    links = wait_until(
        lambda: (found := mailed_links(tenant, key_id)) and len(found) >= count and found,
        what=f"{count} invite mail(s) for key {key_id}",
    )
    return links[-1]


def iso(dt: datetime) -> str:
    return format_api_datetime(dt)


def guest_key(
    tenant: Tenant,
    *,
    lock: int | None = None,
    remote: bool = True,
    email: str = "guest@example.com",
    language: str | None = None,
    **extra: Any,
) -> tuple[dict, str]:
    """An app key for a new account user, and its guest link's secret."""
    body: dict[str, Any] = {"email": email, "name": "Guest"}
    if language:
        body["language"] = language
    answer = tenant.put("/account/user", json=body)
    assert answer.status_code == 200, answer.text
    user = answer.json()["accountUserId"]
    key = tenant.create_key(
        lock or tenant.plain_lock,
        name="Guest December",
        type=0,
        accountUserId=user,
        remoteAllowed=remote,
        **extra,
    )
    return key, link_of(tenant, key["id"])


def lock_state(tenant: Tenant, smartlock_id: int) -> int:
    answer = tenant.get(f"/smartlock/{smartlock_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()["state"]["state"]


def log_of(tenant: Tenant, smartlock_id: int) -> list[dict[str, Any]]:
    answer = tenant.get(f"/smartlock/{smartlock_id}/log")
    assert answer.status_code == 200, answer.text
    return answer.json()


def emulate(tenant: Tenant, smartlock_id: int, **changes: Any) -> None:
    answer = tenant.post(f"/emulator/smartlock/{smartlock_id}", json=changes)
    assert answer.status_code == 200, answer.text


def lock_timezone(tenant: Tenant, smartlock_id: int) -> str:
    with tenant.runtime.db.session() as session:
        lock = session.get(Smartlock, smartlock_id)
        assert lock is not None
        return lock.timezone


def invite_row(tenant: Tenant, secret: str) -> Invite:
    digest = hashlib.sha256(secret.encode()).hexdigest()
    with tenant.runtime.db.session() as session:
        row = session.scalars(select(Invite).where(Invite.link_hash == digest)).one()
        session.expunge(row)
        return row


def browser(tenant: Tenant) -> TestClient:
    """Another browser on the same server: its own cookie jar."""
    return TestClient(tenant.client.app, raise_server_exceptions=False)


def open_door(client: TestClient, secret: str) -> httpx.Response:
    return client.post(f"/guest/{secret}/open", follow_redirects=False)


def text_of(answer: httpx.Response) -> str:
    """The page's visible text, roughly: tags out, whitespace folded, entities unescaped."""
    import html

    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", answer.text)).split())


def assert_page(answer: httpx.Response, status: int, *phrases: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    shown = text_of(answer)
    for phrase in phrases:
        assert phrase in shown, shown


# --- what the guest sees ----------------------------------------------------------------------


def test_the_page_shows_lock_key_validity_and_open(tenant: Tenant) -> None:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60)
    _key, secret = guest_key(tenant, allowedUntilDate=iso(until))
    answer = tenant.client.get(f"/guest/{secret}")
    validity = describe_validity(
        allowed_from_date=None,
        allowed_until_date=until,
        allowed_week_days=None,
        allowed_from_time=None,
        allowed_until_time=None,
        timezone=lock_timezone(tenant, tenant.plain_lock),
    )
    assert_page(answer, 200, "Flat 2", "Guest December", "Valid now", "Open", validity)
    assert re.search(r'<form method="post">\s*<button type="submit" id="open">', answer.text)
    assert secret not in answer.text
    assert "<script" not in answer.text and "style=" not in answer.text


def test_the_validity_is_in_words_in_the_lock_time_zone(tenant: Tenant) -> None:
    timezone = lock_timezone(tenant, tenant.plain_lock)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    _key, secret = guest_key(tenant, allowedFromDate=iso(start), allowedWeekDays=124)
    expected = describe_validity(
        allowed_from_date=start,
        allowed_until_date=None,
        allowed_week_days=124,
        allowed_from_time=None,
        allowed_until_time=None,
        timezone=timezone,
    )
    assert_page(tenant.client.get(f"/guest/{secret}"), 200, expected)


def test_a_german_guest_gets_the_validity_in_german(tenant: Tenant) -> None:
    timezone = lock_timezone(tenant, tenant.plain_lock)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    _key, secret = guest_key(tenant, language="de", allowedFromDate=iso(start))
    expected = describe_validity(
        allowed_from_date=start,
        allowed_until_date=None,
        allowed_week_days=None,
        allowed_from_time=None,
        allowed_until_time=None,
        timezone=timezone,
        language="de",
    )
    assert_page(tenant.client.get(f"/guest/{secret}"), 200, expected)


# --- the page's language ---------------------------------------------------------------------

GERMAN_BROWSER = {"Accept-Language": "de-AT,de;q=0.9,en;q=0.5"}
ENGLISH_BROWSER = {"Accept-Language": "en-US"}
ENGLISH_LABELS = ("Your key", "Valid", "Right now", "Open", "Not valid now", "Done:", "This key")


def html_lang(answer: httpx.Response) -> str:
    found = re.search(r'<html lang="([^"]*)">', answer.text)
    assert found, answer.text
    return found.group(1)


def assert_no_english(answer: httpx.Response) -> None:
    shown = text_of(answer)
    for english in ENGLISH_LABELS:
        assert english not in shown, (english, shown)


def test_a_german_users_page_is_all_german(tenant: Tenant) -> None:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60)
    _key, secret = guest_key(tenant, language="de", allowedUntilDate=iso(until))
    validity = describe_validity(
        allowed_from_date=None,
        allowed_until_date=until,
        allowed_week_days=None,
        allowed_from_time=None,
        allowed_until_time=None,
        timezone=lock_timezone(tenant, tenant.plain_lock),
        language="de",
    )
    # the user's language wins over the browser's
    answer = tenant.client.get(f"/guest/{secret}", headers=ENGLISH_BROWSER)
    assert_page(answer, 200, "Ihr Schlüssel", "Flat 2", "Gültig", validity, "Jetzt gültig")
    assert html_lang(answer) == "de"
    assert re.search(r'<dt>Gültig</dt>\s*<dd id="validity">', answer.text)
    assert re.search(
        r'<dt>Im Moment</dt>\s*<dd id="now" class="yes">Jetzt gültig</dd>', answer.text
    )
    assert re.search(r'<button type="submit" id="open">Öffnen</button>', answer.text)
    assert_no_english(answer)


def test_a_german_user_gets_the_note_in_german_and_the_refusal_too(tenant: Tenant) -> None:
    _key, secret = guest_key(tenant, language="de", remote=False)
    page = tenant.client.get(f"/guest/{secret}")
    assert_page(
        page,
        200,
        "Jetzt gültig",
        "Bitten Sie die Person, die Sie eingeladen hat, das Öffnen aus der Ferne zu erlauben",
    )
    assert 'id="open"' not in page.text
    assert_no_english(page)

    answer = open_door(tenant.client, secret)
    assert_page(
        answer,
        403,
        "Nicht aufgesperrt",
        "Das Schloss „Flat 2“ wurde nicht aufgesperrt: Dieser Schlüssel funktioniert nur direkt "
        "an der Tür mit der App.",
    )
    assert html_lang(answer) == "de"
    assert_no_english(answer)
    assert lock_state(tenant, tenant.plain_lock) == LOCKED


def test_a_german_user_outside_the_window_reads_why_in_german(tenant: Tenant) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    _key, secret = guest_key(tenant, language="de", allowedFromDate=iso(start))
    page = tenant.client.get(f"/guest/{secret}")
    assert_page(
        page,
        200,
        "Jetzt nicht gültig: Der Schlüssel gilt noch nicht.",
        "Sie können die Tür von hier aus öffnen, solange der Schlüssel gilt: ab ",
    )
    assert_no_english(page)
    assert "before the key's validity starts" not in page.text

    answer = tenant.client.post(f"/guest/{secret}")
    assert_page(
        answer, 403, "wurde nicht aufgesperrt: Der Schlüssel gilt gerade nicht. Gültig: ab "
    )
    assert_page(answer, 403, "Zurück zu Ihrem Schlüssel")
    assert_no_english(answer)


def test_a_german_user_reads_the_success_in_german(tenant: Tenant) -> None:
    _key, secret = guest_key(tenant, language="de")
    answer = tenant.client.post(f"/guest/{secret}", follow_redirects=True)
    assert_page(answer, 200, "Erledigt: Das Schloss „Flat 2“ ist aufgesperrt.")
    assert html_lang(answer) == "de"
    assert_no_english(answer)
    assert lock_state(tenant, tenant.plain_lock) == UNLOCKED


def test_a_german_users_dead_link_is_german(tenant: Tenant) -> None:
    key, secret = guest_key(tenant, language="de")
    answer = tenant.post(
        f"/smartlock/{tenant.plain_lock}/auth/{key['id']}", json={"enabled": False}
    )
    assert answer.status_code == 204, answer.text
    for answer in (
        tenant.client.get(f"/guest/{secret}", headers=ENGLISH_BROWSER),
        open_door(tenant.client, secret),
    ):
        assert_page(
            answer,
            410,
            "Schlüssel ausgeschaltet",
            "Dieser Schlüssel wurde von seinem Besitzer ausgeschaltet.",
        )
        assert html_lang(answer) == "de"
        assert "switched off" not in answer.text


def test_a_german_users_taken_link_is_german(tenant: Tenant) -> None:
    _key, secret = guest_key(tenant, language="de")
    assert open_door(tenant.client, secret).status_code == 303
    other = browser(tenant)
    for answer in (
        other.get(f"/guest/{secret}", headers=ENGLISH_BROWSER),
        other.post(f"/guest/{secret}/open", headers=ENGLISH_BROWSER, follow_redirects=False),
    ):
        assert_page(
            answer,
            403,
            "Link schon vergeben",
            "Dieser Schlüssel-Link wurde schon auf einem anderen Gerät übernommen; bitten Sie "
            "owner, die Einladung noch einmal zu senden.",
        )
        assert html_lang(answer) == "de"
        assert "already taken" not in answer.text


def test_a_french_user_gets_english_whatever_the_browser_says(tenant: Tenant) -> None:
    key, secret = guest_key(tenant, language="fr")
    answer = tenant.client.get(f"/guest/{secret}", headers=GERMAN_BROWSER)
    assert_page(answer, 200, "Your key", "Valid", "Right now", "Valid now", "Open")
    assert html_lang(answer) == "en"
    assert "Gültig" not in answer.text and "Öffnen" not in answer.text
    tenant.post(f"/smartlock/{tenant.plain_lock}/auth/{key['id']}", json={"enabled": False})
    answer = tenant.client.get(f"/guest/{secret}", headers=GERMAN_BROWSER)
    assert_page(answer, 410, "This key was switched off by its owner.")
    assert html_lang(answer) == "en"


@pytest.mark.parametrize(
    ("headers", "lang", "phrase"),
    [
        (GERMAN_BROWSER, "de", "Dieser Schlüssel-Link ist nicht bekannt."),
        (ENGLISH_BROWSER, "en", "This key link is not known."),
        ({}, "en", "This key link is not known."),
    ],
)
def test_an_unknown_link_speaks_the_browsers_language(
    tenant: Tenant, headers: dict[str, str], lang: str, phrase: str
) -> None:
    for answer in (
        tenant.client.get(f"/guest/{'D' * 43}", headers=headers),
        tenant.client.post(f"/guest/{'D' * 43}/open", headers=headers, follow_redirects=False),
    ):
        assert_page(answer, 404, phrase)
        assert html_lang(answer) == lang


def test_the_rate_limit_page_speaks_the_browsers_language(tenant: Tenant) -> None:
    for n in range(5):
        assert tenant.client.get(f"/guest/{'E' * 42}{n}").status_code == 404
    german = tenant.client.get(f"/guest/{'E' * 43}", headers=GERMAN_BROWSER)
    assert_page(german, 429, "Zu viele Anfragen", "warten Sie")
    assert html_lang(german) == "de"
    english = tenant.client.get(f"/guest/{'E' * 43}", headers=ENGLISH_BROWSER)
    assert_page(english, 429, "Too many requests from your network")
    assert html_lang(english) == "en"


# --- opening ----------------------------------------------------------------------------------


def test_open_inside_the_window_unlocks_and_logs_a_web_use_of_the_key(tenant: Tenant) -> None:
    key, secret = guest_key(tenant)
    assert lock_state(tenant, tenant.plain_lock) == LOCKED

    answer = open_door(tenant.client, secret)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/guest/{secret}?opened=1"
    assert lock_state(tenant, tenant.plain_lock) == UNLOCKED
    entry = log_of(tenant, tenant.plain_lock)[0]
    assert entry["trigger"] == TRIGGER_WEB
    assert entry["authId"] == key["id"]
    assert entry["action"] == 1
    assert entry["state"] == LOG_SUCCESS

    shown = tenant.client.get(answer.headers["location"])
    assert_page(shown, 200, "Done: Flat 2 is unlocked.")


def test_the_page_form_posts_to_its_own_address_too(tenant: Tenant) -> None:
    _key, secret = guest_key(tenant)
    answer = tenant.client.post(f"/guest/{secret}", follow_redirects=True)
    assert_page(answer, 200, "is unlocked")
    assert lock_state(tenant, tenant.plain_lock) == UNLOCKED


def test_open_outside_the_window_is_refused_by_the_lock(tenant: Tenant) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    key, secret = guest_key(tenant, allowedFromDate=iso(start))

    page = tenant.client.get(f"/guest/{secret}")
    assert_page(page, 200, "Not valid now", "You can open the door from here while the key")
    assert 'id="open"' not in page.text

    answer = open_door(tenant.client, secret)
    assert_page(answer, 403, "Flat 2 did not open", "before the key's validity starts")
    assert lock_state(tenant, tenant.plain_lock) == LOCKED
    entry = log_of(tenant, tenant.plain_lock)[0]
    assert (entry["trigger"], entry["state"], entry["authId"]) == (
        TRIGGER_WEB,
        LOG_REJECTED,
        key["id"],
    )


def test_a_key_without_remote_use_shows_no_button_and_the_lock_refuses(tenant: Tenant) -> None:
    key, secret = guest_key(tenant, remote=False)
    page = tenant.client.get(f"/guest/{secret}")
    # the guest is told what they can do: Keyhouse has no app to use the key at the door
    assert_page(
        page,
        200,
        "Valid now",
        "set to work only at the door",
        "Ask the person who invited you to allow remote opening for your key, or to give you "
        "a keypad code.",
    )
    assert "with the app" not in page.text
    assert 'id="open"' not in page.text
    # and its owner was told when the key was made: the key carries the warning
    shown = tenant.get(f"/smartlock/{key['smartlockId']}/auth/{key['id']}").json()
    assert "can't open the door from its Keyhouse guest link" in shown["warning"]

    answer = open_door(tenant.client, secret)
    assert_page(answer, 403, "did not open", "remote use is not allowed")
    assert lock_state(tenant, tenant.plain_lock) == LOCKED
    entry = log_of(tenant, tenant.plain_lock)[0]
    assert (entry["trigger"], entry["state"], entry["authId"]) == (
        TRIGGER_WEB,
        LOG_REJECTED,
        key["id"],
    )


def test_a_keypad_code_key_says_type_your_code_and_never_shows_it(tenant: Tenant) -> None:
    user = tenant.create_user("kim@example.com", "Kim")
    key = tenant.create_key(
        tenant.keypad_lock,
        name="Kim code",
        type=13,
        code=KEYPAD_CODE,
        accountUserId=user,
        remoteAllowed=False,
    )
    secret = link_of(tenant, key["id"])
    page = tenant.client.get(f"/guest/{secret}")
    assert_page(page, 200, "Front Door", "Kim code", "type your code at the keypad")
    assert str(KEYPAD_CODE) not in page.text
    assert 'id="open"' not in page.text

    answer = open_door(tenant.client, secret)
    assert_page(answer, 403, "type your code at the keypad")
    assert str(KEYPAD_CODE) not in answer.text
    assert lock_state(tenant, tenant.keypad_lock) == LOCKED


def test_an_offline_lock_answers_503(tenant: Tenant) -> None:
    _key, secret = guest_key(tenant)
    emulate(tenant, tenant.plain_lock, online=False)
    answer = open_door(tenant.client, secret)
    assert_page(answer, 503, "Flat 2 can't be reached right now")
    assert answer.headers["retry-after"]


def test_a_key_not_on_the_lock_yet_answers_409(tenant: Tenant) -> None:
    emulate(tenant, tenant.plain_lock, online=False)
    tenant.runtime.settings.confirm_wait_seconds = 0.1
    _key, secret = guest_key(tenant)  # stays pending: the lock is offline
    page = tenant.client.get(f"/guest/{secret}")
    assert_page(page, 200, "The key is not on the lock yet")
    assert 'id="open"' not in page.text
    answer = open_door(tenant.client, secret)
    assert_page(answer, 409, "The key is not on the lock yet")


# --- redemption -------------------------------------------------------------------------------


def test_get_never_redeems(tenant: Tenant) -> None:
    _key, secret = guest_key(tenant)
    for _ in range(3):
        assert tenant.client.get(f"/guest/{secret}").status_code == 200
    assert browser(tenant).get(f"/guest/{secret}").status_code == 200
    row = invite_row(tenant, secret)
    assert row.redeemed_at is None and row.device_hash is None
    assert "set-cookie" not in tenant.client.get(f"/guest/{secret}").headers


def test_the_owner_sees_when_the_link_was_redeemed(tenant: Tenant) -> None:
    key, secret = guest_key(tenant)
    tenant.client.get(f"/guest/{secret}")
    (invite,) = tenant.get("/keyhouse/invites", params={"authId": key["id"]}).json()
    assert "redeemedDate" not in invite  # looking is not redeeming
    assert open_door(tenant.client, secret).status_code == 303
    (invite,) = tenant.get("/keyhouse/invites", params={"authId": key["id"]}).json()
    redeemed = datetime.fromisoformat(invite["redeemedDate"].replace("Z", "+00:00"))
    assert abs(redeemed - datetime.now(UTC)) < timedelta(seconds=30)


def test_the_first_open_binds_the_link_to_that_browser(tenant: Tenant) -> None:
    _key, secret = guest_key(tenant)
    answer = open_door(tenant.client, secret)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("keyhouse_device=")
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "path=/guest/", "samesite=strict"} <= attributes
    assert "secure" not in attributes  # plain http here
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value) >= 22  # >= 128 bits
    row = invite_row(tenant, secret)
    assert row.redeemed_at is not None
    assert row.device_hash == hashlib.sha256(value.encode()).hexdigest()
    assert value not in answer.text

    # the same browser keeps using it
    assert tenant.client.get(f"/guest/{secret}").status_code == 200
    assert open_door(tenant.client, secret).status_code == 303

    # another browser: refused, the door does not move
    tenant.post(f"/smartlock/{tenant.plain_lock}/action/lock")
    other = browser(tenant)
    assert_page(
        other.get(f"/guest/{secret}"),
        403,
        "already taken on another device; ask owner to resend the invite",
    )
    refused = open_door(other, secret)
    assert_page(refused, 403, "already taken on another device")
    assert "set-cookie" not in refused.headers
    assert lock_state(tenant, tenant.plain_lock) == LOCKED
    assert invite_row(tenant, secret).device_hash == row.device_hash


def test_over_https_the_device_cookie_is_secure(tenant: Tenant) -> None:
    _key, secret = guest_key(tenant)
    https = TestClient(tenant.client.app, base_url="https://keys.example.com")
    answer = open_door(https, secret)
    assert answer.status_code == 303, answer.text
    attributes = {part.strip().lower() for part in answer.headers["set-cookie"].split(";")}
    assert "secure" in attributes
    assert https.get(f"/guest/{secret}").status_code == 200  # the browser sends it back


def test_a_forged_device_cookie_does_not_pass(tenant: Tenant) -> None:
    _key, secret = guest_key(tenant)
    assert open_door(tenant.client, secret).status_code == 303
    other = browser(tenant)
    other.cookies.set("keyhouse_device", "A" * 43, path="/guest/")
    assert other.get(f"/guest/{secret}").status_code == 403


def test_a_redeemed_link_lives_on_after_the_invite_would_have_expired(tenant: Tenant) -> None:
    _key, secret = guest_key(tenant)
    assert open_door(tenant.client, secret).status_code == 303
    past = datetime.now(UTC) - timedelta(days=1)
    with tenant.runtime.db.session() as session:
        session.execute(update(Invite).values(expires_at=past))
    assert tenant.client.get(f"/guest/{secret}").status_code == 200


def test_an_unredeemed_link_expires(tenant: Tenant) -> None:
    _key, secret = guest_key(tenant)
    past = datetime.now(UTC) - timedelta(seconds=1)
    with tenant.runtime.db.session() as session:
        session.execute(update(Invite).values(expires_at=past))
    assert_page(tenant.client.get(f"/guest/{secret}"), 410, "This invite expired; ask owner")
    assert_page(open_door(tenant.client, secret), 410, "This invite expired")
    assert invite_row(tenant, secret).redeemed_at is None


# --- dead links -------------------------------------------------------------------------------


def test_a_disabled_key_is_a_dead_link(tenant: Tenant) -> None:
    key, secret = guest_key(tenant)
    answer = tenant.post(
        f"/smartlock/{tenant.plain_lock}/auth/{key['id']}", json={"enabled": False}
    )
    assert answer.status_code == 204, answer.text
    assert_page(tenant.client.get(f"/guest/{secret}"), 410, "switched off by its owner")
    assert_page(open_door(tenant.client, secret), 410, "switched off by its owner")
    assert lock_state(tenant, tenant.plain_lock) == LOCKED


def test_a_deleted_key_is_a_dead_link(tenant: Tenant) -> None:
    key, secret = guest_key(tenant)
    answer = tenant.delete(f"/smartlock/{tenant.plain_lock}/auth/{key['id']}")
    assert answer.status_code == 204, answer.text
    wait_until(
        lambda: key["id"] not in {k["id"] for k in tenant.keys(tenant.plain_lock)},
        what="the key to be gone",
    )
    assert_page(tenant.client.get(f"/guest/{secret}"), 410, "This key no longer exists.")
    assert_page(open_door(tenant.client, secret), 410, "This key no longer exists.")


def test_a_key_being_deleted_is_a_dead_link(tenant: Tenant) -> None:
    key, secret = guest_key(tenant)
    assert open_door(tenant.client, secret).status_code == 303
    emulate(tenant, tenant.plain_lock, online=False)  # the removal waits for the lock
    tenant.runtime.settings.confirm_wait_seconds = 0.1
    assert tenant.delete(f"/smartlock/{tenant.plain_lock}/auth/{key['id']}").status_code == 204
    assert_page(tenant.client.get(f"/guest/{secret}"), 410, "This key no longer exists.")
    assert_page(open_door(tenant.client, secret), 410, "This key no longer exists.")


def resend(tenant: Tenant, key: dict) -> str:
    answer = tenant.post(f"/keyhouse/smartlock/{tenant.plain_lock}/auth/{key['id']}/invite")
    assert answer.status_code == 200, answer.text
    return link_of(tenant, key["id"], count=2)


def test_a_resend_kills_the_old_link(tenant: Tenant) -> None:
    key, old = guest_key(tenant)
    new = resend(tenant, key)
    assert new != old
    assert_page(tenant.client.get(f"/guest/{old}"), 410, "replaced by a newer invite")
    assert_page(open_door(tenant.client, old), 410, "replaced by a newer invite")
    assert lock_state(tenant, tenant.plain_lock) == LOCKED
    assert tenant.client.get(f"/guest/{new}").status_code == 200


def test_a_resend_kills_a_redeemed_link_too(tenant: Tenant) -> None:
    key, old = guest_key(tenant)
    assert open_door(tenant.client, old).status_code == 303
    tenant.post(f"/smartlock/{tenant.plain_lock}/action/lock")
    new = resend(tenant, key)
    assert_page(tenant.client.get(f"/guest/{old}"), 410, "replaced by a newer invite")
    assert_page(open_door(tenant.client, old), 410, "replaced by a newer invite")
    assert lock_state(tenant, tenant.plain_lock) == LOCKED
    # the new link is not bound yet: any browser may take it
    assert open_door(browser(tenant), new).status_code == 303


@pytest.mark.parametrize(
    "secret",
    ["A" * 43, "short", "x" * 300, "no%20spaces%20here%20at%20all%20in%20links"],
)
def test_an_unknown_link_is_a_404_page(tenant: Tenant, secret: str) -> None:
    answer = tenant.client.get(f"/guest/{secret}")
    assert_page(answer, 404, "This key link is not known")
    assert_page(open_door(tenant.client, secret), 404, "This key link is not known")


def test_pages_never_show_the_secret(tenant: Tenant) -> None:
    key, secret = guest_key(tenant)
    pages = [tenant.client.get(f"/guest/{secret}"), open_door(tenant.client, secret)]
    pages.append(browser(tenant).get(f"/guest/{secret}"))
    tenant.post(f"/smartlock/{tenant.plain_lock}/auth/{key['id']}", json={"enabled": False})
    pages.append(tenant.client.get(f"/guest/{secret}"))
    for page in pages:
        assert secret not in page.text


# --- rate limits ------------------------------------------------------------------------------


def test_thirty_requests_a_minute_per_ip_then_429(tenant: Tenant) -> None:
    _key, secret = guest_key(tenant)
    for _ in range(30):
        assert tenant.client.get(f"/guest/{secret}").status_code == 200
    answer = tenant.client.get(f"/guest/{secret}")
    assert_page(answer, 429, "Too many requests")
    # A moving window: the next request is allowed when the first of the 30 is a minute old.
    assert 50 <= int(answer.headers["retry-after"]) <= 60
    assert answer.headers["cache-control"] == "no-store"
    assert open_door(tenant.client, secret).status_code == 429
    assert lock_state(tenant, tenant.plain_lock) == LOCKED


def test_five_unknown_links_a_minute_per_ip_then_429_even_for_a_good_link(
    tenant: Tenant,
) -> None:
    _key, secret = guest_key(tenant)
    for n in range(5):
        assert tenant.client.get(f"/guest/{'B' * 42}{n}").status_code == 404
    answer = tenant.client.get(f"/guest/{'B' * 43}")
    assert_page(answer, 429, "Too many requests")
    assert 50 <= int(answer.headers["retry-after"]) <= 60
    assert tenant.client.get(f"/guest/{secret}").status_code == 429


def test_the_limits_free_up_with_time_and_are_set_in_the_settings(tmp_path: Path) -> None:
    with tenant_with(tmp_path, guest_rate_limit="2 per 2 seconds") as tenant:
        _key, secret = guest_key(tenant)
        assert tenant.client.get(f"/guest/{secret}").status_code == 200
        assert tenant.client.get(f"/guest/{secret}").status_code == 200
        answer = tenant.client.get(f"/guest/{secret}")
        assert answer.status_code == 429
        assert answer.headers["retry-after"] in ("1", "2")
        time.sleep(2.1)
        assert tenant.client.get(f"/guest/{secret}").status_code == 200


# --- headers, assets, the OpenAPI document, logs ----------------------------------------------


def test_every_guest_answer_carries_the_security_headers(tenant: Tenant) -> None:
    _key, secret = guest_key(tenant)
    answers = [
        tenant.client.get(f"/guest/{secret}"),
        tenant.client.get(f"/guest/{'C' * 43}"),
        open_door(tenant.client, secret),
    ]
    for answer in answers:
        headers = answer.headers
        assert headers["cache-control"] == "no-store"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-robots-tag"].startswith("noindex")
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "style-src 'self'" in csp
        assert "unsafe-inline" not in csp and "script-src" not in csp
        assert "form-action 'self'" in csp and "frame-ancestors 'none'" in csp


def test_the_stylesheet_is_served_from_the_package(tenant: Tenant) -> None:
    answer = tenant.client.get("/guest/assets/guest.css")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/css")
    assert "button" in answer.text
    page = tenant.client.get(f"/guest/{guest_key(tenant)[1]}")
    assert '<link rel="stylesheet" href="/guest/assets/guest.css">' in page.text


def test_the_guest_page_is_not_in_the_openapi_document(tenant: Tenant) -> None:
    document = tenant.client.get("/openapi.json").json()
    assert not [path for path in document["paths"] if path.startswith("/guest")]


def test_access_log_lines_hide_the_secret() -> None:
    secret = "k" * 43
    line = f'127.0.0.1:5000 - "POST /guest/{secret}/open HTTP/1.1" 303'
    assert hide_secrets(line) == '127.0.0.1:5000 - "POST /guest/[secret]/open HTTP/1.1" 303'
    assert hide_secrets(f"/guest/{secret}?opened=1") == "/guest/[secret]?opened=1"
    assert hide_secrets("/guest/assets/guest.css") == "/guest/assets/guest.css"
