"""What the mails say, as received by a real SMTP server (aiosmtpd on loopback): the invite and
keypad-code mails in text and HTML, in the user's language, and the notices sent when a key is
switched off or deleted.

Each test builds its own Runtime and app, so the SMTP URL is set before the app starts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from conftest import MailBox, SmtpServer, Tenant, make_tenant
from keyhouse.app import create_app
from keyhouse.runtime import Runtime
from keyhouse.settings import Settings
from keyhouse.store.models import OutboxMessage

GUEST_LINK = re.compile(r"https?://[^/\s\"<>]+/guest/[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")
VIENNA_WINDOW = {
    "allowedFromDate": "2026-11-30T23:00:00Z",
    "allowedUntilDate": "2027-01-31T23:00:00Z",
    "allowedWeekDays": 124,
    "allowedFromTime": 480,
    "allowedUntilTime": 1080,
}
VALIDITY_EN = "Mon–Fri, 08:00–18:00, 1 Dec 2026 – 31 Jan 2027, Europe/Vienna time"
VALIDITY_DE = "Mo–Fr, 08:00–18:00, 1. Dez. 2026 – 31. Jan. 2027, Zeitzone Europe/Vienna"


@contextmanager
def started(tmp_path: Path, smtp_url: str, interval: float = 0.2) -> Iterator[Tenant]:
    settings = Settings(
        data=tmp_path / "data",
        smtp_url=smtp_url,
        confirm_wait_seconds=5,
        worker_interval_seconds=interval,
    )
    runtime = Runtime(settings)
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
        yield make_tenant(client, runtime, "owner@example.com")


@pytest.fixture
def tenant(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Tenant]:
    with started(tmp_path, smtp_server.url) as made:
        yield made


class Mail:
    """A received multipart/alternative mail: headers, text part and HTML part, decoded."""

    def __init__(self, message: Message) -> None:
        assert message.get_content_type() == "multipart/alternative", message.get_content_type()
        bodies: dict[str, str] = {}
        for part in message.walk():
            if part.is_multipart():
                continue
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            text = payload.decode(part.get_content_charset() or "utf-8")
            bodies[part.get_content_type()] = text.replace("\r\n", "\n")
        assert sorted(bodies) == ["text/html", "text/plain"], sorted(bodies)
        self.to = message["To"]
        self.language = message["Content-Language"]
        self.subject = str(make_header(decode_header(message["Subject"])))
        self.text = bodies["text/plain"]
        self.html = bodies["text/html"]

    def __repr__(self) -> str:
        return f"Mail(to={self.to!r}, subject={self.subject!r})"


def settle(mailbox: MailBox, count: int) -> list[Mail]:
    """Wait for ``count`` mails, then a little longer to see that no more arrive."""
    mailbox.wait_for(count, timeout=10)
    time.sleep(0.8)  # four worker intervals
    mails = [Mail(m) for m in mailbox.messages]
    assert len(mails) == count, mails
    return mails


def outbox(tenant: Tenant) -> list[OutboxMessage]:
    with tenant.runtime.db.session() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def user(tenant: Tenant, email: str, name: str, language: str | None = None) -> int:
    body: dict[str, Any] = {"email": email, "name": name}
    if language is not None:
        body["language"] = language
    answer = tenant.put("/account/user", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["accountUserId"]


def update(tenant: Tenant, key: dict, **fields: Any) -> None:
    answer = tenant.post(f"/smartlock/{key['smartlockId']}/auth/{key['id']}", json=fields)
    assert answer.status_code == 204, answer.text


def delete(tenant: Tenant, key: dict) -> None:
    answer = tenant.delete(f"/smartlock/{key['smartlockId']}/auth/{key['id']}")
    assert answer.status_code == 204, answer.text


def assert_no_external_assets(html: str, link: str | None) -> None:
    for tag in ("<img", "<link", "<script", "<style", "url("):
        assert tag not in html.lower(), tag
    urls = set(re.findall(r"https?://[^\s\"<>]+", html))
    assert urls == ({link} if link else set()), urls


# --- the invite and the keypad code -----------------------------------------------------------


def test_an_invite_has_a_text_and_an_html_part_with_the_same_facts(
    tenant: Tenant, smtp_server: SmtpServer
) -> None:
    anna = user(tenant, "anna@example.com", "Anna")
    tenant.create_key(
        tenant.keypad_lock, name="December", accountUserId=anna, remoteAllowed=True, **VIENNA_WINDOW
    )
    (mail,) = settle(smtp_server.mailbox, 1)
    assert mail.to == "anna@example.com"
    assert mail.subject == "Your key to Front Door: December"
    (link,) = GUEST_LINK.findall(mail.text)
    assert "Hello Anna," in mail.text
    assert 'owner has given you a key to the lock "Front Door".' in mail.text
    assert f"Valid:        {VALIDITY_EN}\n" in mail.text
    assert "Remote use:   yes, also from afar\n" in mail.text
    assert "This link is your key: do not share it" in mail.text
    assert "The first browser that opens the door with it keeps the key" in mail.text
    assert "Invite code" not in mail.text

    assert mail.html.startswith('<!doctype html>\n<html lang="en">')
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in mail.html
    for fact in ("Hello Anna,", "Front Door", "December", VALIDITY_EN, "yes, also from afar"):
        assert fact in mail.html, fact
    assert f'href="{link}"' in mail.html
    assert "This link is your key:" in mail.html
    assert "keeps the key" in mail.html
    assert_no_external_assets(mail.html, link)


def test_a_german_user_gets_the_invite_in_german(tenant: Tenant, smtp_server: SmtpServer) -> None:
    jonas = user(tenant, "jonas@example.at", "Jonas", language="de")
    tenant.create_key(
        tenant.keypad_lock, name="Dezember", accountUserId=jonas, remoteAllowed=False,
        **VIENNA_WINDOW,
    )  # fmt: skip
    (mail,) = settle(smtp_server.mailbox, 1)
    assert mail.subject == "Ihr Schlüssel für Front Door: Dezember"
    assert "Guten Tag Jonas," in mail.text
    assert f"Gültig:        {VALIDITY_DE}\n" in mail.text
    assert "Fernzugriff:   nein, nur direkt an der Tür\n" in mail.text
    assert "Der Link ist Ihr Schlüssel" in mail.text
    assert "Hello" not in mail.text and "Valid:" not in mail.text
    (link,) = GUEST_LINK.findall(mail.text)
    assert '<html lang="de">' in mail.html
    assert mail.language == "de"
    assert VALIDITY_DE in mail.html and "Guten Tag Jonas," in mail.html
    assert f'href="{link}"' in mail.html
    (row,) = outbox(tenant)
    assert row.language == "de"


def test_a_language_without_templates_gets_english(tenant: Tenant, smtp_server: SmtpServer) -> None:
    claire = user(tenant, "claire@example.fr", "Claire", language="fr")
    tenant.create_key(
        tenant.keypad_lock, name="Décembre", accountUserId=claire, remoteAllowed=False,
        **VIENNA_WINDOW,
    )  # fmt: skip
    (mail,) = settle(smtp_server.mailbox, 1)
    assert mail.subject == "Your key to Front Door: Décembre"
    assert "Hello Claire," in mail.text
    assert f"Valid:        {VALIDITY_EN}\n" in mail.text
    assert '<html lang="en">' in mail.html
    assert mail.language == "en"
    (row,) = outbox(tenant)
    assert row.language == "en"


@pytest.mark.parametrize("language", [None, "de"])
def test_a_keypad_code_with_a_user_mails_the_code_in_both_parts(
    tenant: Tenant, smtp_server: SmtpServer, language: str | None
) -> None:
    cleaner = user(tenant, "cleaner@example.com", "Cleaner", language=language)
    tenant.create_key(
        tenant.keypad_lock, name="Cleaner", type=13, code=345678, accountUserId=cleaner,
        remoteAllowed=False, allowedWeekDays=3,
    )  # fmt: skip
    (mail,) = settle(smtp_server.mailbox, 1)
    english = language is None
    assert mail.subject == (
        "Your keypad code for Front Door: Cleaner"
        if english
        else "Ihr Tastaturcode für Front Door: Cleaner"
    )
    assert ("Your code:    345678\n" if english else "Ihr Code:      345678\n") in mail.text
    assert ("at the keypad" if english else "am Keypad") in mail.text
    assert ("Sat, Sun, Europe/Vienna time" if english else "Sa, So, Zeitzone Europe/Vienna") in (
        mail.text
    )
    (link,) = GUEST_LINK.findall(mail.text)
    assert re.search(r">345678</p>", mail.html), mail.html
    assert f'href="{link}"' in mail.html
    (row,) = outbox(tenant)
    assert row.kind == "keypad_code"
    assert "345678" not in row.body and link not in row.body  # kept without its secrets


def test_the_html_part_escapes_names_the_text_part_shows_them(
    tenant: Tenant, smtp_server: SmtpServer
) -> None:
    odd = user(tenant, "odd@example.com", 'Eve "<i>" & Co')
    key = tenant.create_key(
        tenant.plain_lock, name="<b>x</b>", accountUserId=odd, remoteAllowed=False
    )
    update(tenant, key, enabled=False)
    invite, notice = settle(smtp_server.mailbox, 2)
    for mail in (invite, notice):
        assert "<b>x</b>" in mail.subject and "<b>x</b>" in mail.text
        assert "<b>" not in mail.html and "<i>" not in mail.html
        assert "&lt;b&gt;x&lt;/b&gt;" in mail.html
        assert "Eve &#34;&lt;i&gt;&#34; &amp; Co" in mail.html
        assert 'Hello Eve "<i>" & Co,' in mail.text


# --- notices ----------------------------------------------------------------------------------


def test_disabling_a_key_sends_one_notice_and_disabling_again_none(
    tenant: Tenant, smtp_server: SmtpServer
) -> None:
    anna = user(tenant, "anna@example.com", "Anna")
    key = tenant.create_key(
        tenant.plain_lock, name="Guest", accountUserId=anna, remoteAllowed=False
    )
    update(tenant, key, enabled=False)
    update(tenant, key, enabled=False)  # already off: nothing changes, nothing is sent
    update(tenant, key, name="Guest (off)")  # a rename of a disabled key: no notice either
    invite, notice = settle(smtp_server.mailbox, 2)
    assert invite.subject == "Your key to Flat 2: Guest"
    assert notice.to == "anna@example.com"
    assert notice.subject == "Your key to Flat 2 is switched off: Guest"
    assert 'owner has switched off your key "Guest" to the lock "Flat 2".' in notice.text
    assert "the link in your invite e-mail no longer works" in notice.text
    assert "switched off your key &ldquo;Guest&rdquo;" in notice.html
    assert not GUEST_LINK.search(notice.text) and not GUEST_LINK.search(notice.html)
    assert_no_external_assets(notice.html, None)
    rows = outbox(tenant)
    assert [row.kind for row in rows] == ["invite", "key_disabled"]
    assert rows[1].secrets is None


def test_re_enabling_a_key_sends_nothing(tenant: Tenant, smtp_server: SmtpServer) -> None:
    anna = user(tenant, "anna@example.com", "Anna")
    key = tenant.create_key(
        tenant.plain_lock, name="Guest", accountUserId=anna, remoteAllowed=False
    )
    update(tenant, key, enabled=False)
    update(tenant, key, enabled=True)
    settle(smtp_server.mailbox, 2)
    assert [row.kind for row in outbox(tenant)] == ["invite", "key_disabled"]


def test_a_bulk_update_notifies_each_key_switched_off_in_its_users_language(
    tenant: Tenant, smtp_server: SmtpServer
) -> None:
    anna = user(tenant, "anna@example.com", "Anna")
    jonas = user(tenant, "jonas@example.at", "Jonas", language="de")
    first = tenant.create_key(tenant.plain_lock, name="A", accountUserId=anna, remoteAllowed=False)
    second = tenant.create_key(
        tenant.keypad_lock, name="J", accountUserId=jonas, remoteAllowed=False
    )
    third = tenant.create_key(tenant.keypad_lock, name="K", accountUserId=anna, remoteAllowed=False)
    answer = tenant.post(
        "/smartlock/auth",
        json=[
            {"id": first["id"], "enabled": False},
            {"id": second["id"], "enabled": False},
            {"id": third["id"], "name": "K2"},  # stays on: no notice
        ],
    )
    assert answer.status_code == 204, answer.text
    mails = settle(smtp_server.mailbox, 5)
    notices = sorted((m.to, m.subject) for m in mails[3:])
    assert notices == [
        ("anna@example.com", "Your key to Flat 2 is switched off: A"),
        ("jonas@example.at", "Ihr Schlüssel für Front Door ist ausgeschaltet: J"),
    ]


def test_deleting_a_key_sends_a_notice(tenant: Tenant, smtp_server: SmtpServer) -> None:
    anna = user(tenant, "anna@example.com", "Anna")
    key = tenant.create_key(
        tenant.plain_lock, name="Guest", accountUserId=anna, remoteAllowed=False
    )
    delete(tenant, key)
    _invite, notice = settle(smtp_server.mailbox, 2)
    assert notice.to == "anna@example.com"
    assert notice.subject == "Your key to Flat 2 was revoked: Guest"
    assert 'owner has revoked your key "Guest" to the lock "Flat 2".' in notice.text
    assert "The key is deleted" in notice.text
    assert "revoked your key &ldquo;Guest&rdquo;" in notice.html
    assert not GUEST_LINK.search(notice.text) and not GUEST_LINK.search(notice.html)
    assert [row.kind for row in outbox(tenant)] == ["invite", "key_deleted"]


def test_a_bulk_delete_notifies_each_key_once(tenant: Tenant, smtp_server: SmtpServer) -> None:
    anna = user(tenant, "anna@example.com", "Anna")
    cleaner = user(tenant, "cleaner@example.com", "Cleaner", language="de")
    app = tenant.create_key(tenant.plain_lock, name="A", accountUserId=anna, remoteAllowed=False)
    code = tenant.create_key(
        tenant.keypad_lock, name="Putzen", type=13, code=345678, accountUserId=cleaner,
        remoteAllowed=False,
    )  # fmt: skip
    update(tenant, app, enabled=False)  # a disabled key is told when it is deleted too
    answer = tenant.request("DELETE", "/smartlock/auth", json=[app["id"], code["id"]])
    assert answer.status_code == 204, answer.text
    again = tenant.delete(f"/smartlock/{app['smartlockId']}/auth/{app['id']}")
    assert again.status_code in (204, 404), again.text  # being deleted, or gone: no 2nd notice
    mails = settle(smtp_server.mailbox, 5)
    assert [m.subject for m in mails[2:]] == [
        "Your key to Flat 2 is switched off: A",
        "Your key to Flat 2 was revoked: A",
        "Ihr Schlüssel für Front Door wurde entzogen: Putzen",
    ]
    assert "Ihr Tastaturcode öffnet die Tür nicht mehr" in mails[4].text
    assert "345678" not in mails[4].text and "345678" not in mails[4].html


def test_deleting_a_user_sends_a_notice_for_each_of_their_keys(
    tenant: Tenant, smtp_server: SmtpServer
) -> None:
    anna = user(tenant, "anna@example.com", "Anna")
    other = user(tenant, "ben@example.com", "Ben")
    tenant.create_key(tenant.plain_lock, name="Flat", accountUserId=anna, remoteAllowed=False)
    tenant.create_key(tenant.keypad_lock, name="Door", accountUserId=anna, remoteAllowed=False)
    tenant.create_key(
        tenant.keypad_lock, name="Code", type=13, code=345678, accountUserId=anna,
        remoteAllowed=False,
    )  # fmt: skip
    tenant.create_key(tenant.keypad_lock, name="Ben", accountUserId=other, remoteAllowed=False)
    answer = tenant.delete(f"/account/user/{anna}")
    assert answer.status_code == 204, answer.text
    assert tenant.get(f"/account/user/{anna}").status_code == 404
    mails = settle(smtp_server.mailbox, 7)
    notices = mails[4:]
    assert {m.to for m in notices} == {"anna@example.com"}
    assert sorted(m.subject for m in notices) == [
        "Your key to Flat 2 was revoked: Flat",
        "Your key to Front Door was revoked: Code",
        "Your key to Front Door was revoked: Door",
    ]
    assert all("Hello Anna," in m.text for m in notices)


def test_keys_without_a_user_to_tell_send_nothing(tenant: Tenant, smtp_server: SmtpServer) -> None:
    fob_holder = user(tenant, "fob@example.com", "Fob Holder")
    code = tenant.create_key(
        tenant.keypad_lock, name="Door code", type=13, code=345678, remoteAllowed=False
    )
    fob = tenant.create_key(
        tenant.keypad_lock, name="Fob", type=2, accountUserId=fob_holder, remoteAllowed=False
    )
    for key in (code, fob):
        update(tenant, key, enabled=False)
        delete(tenant, key)
    answer = tenant.delete(f"/account/user/{fob_holder}")
    assert answer.status_code == 204, answer.text
    settle(smtp_server.mailbox, 0)
    assert outbox(tenant) == []


def test_notices_nudge_the_mail_worker(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """With a worker that scans only every 30 s, a notice still goes out at once: the answer
    hands the queued mail to the worker."""
    with started(tmp_path, smtp_server.url, interval=30) as tenant:
        anna = user(tenant, "anna@example.com", "Anna")
        key = tenant.create_key(
            tenant.plain_lock, name="Guest", accountUserId=anna, remoteAllowed=False
        )
        assert len(smtp_server.mailbox.wait_for(1, timeout=5)) == 1
        update(tenant, key, enabled=False)
        assert len(smtp_server.mailbox.wait_for(2, timeout=5)) == 2
        answer = tenant.request("DELETE", "/smartlock/auth", json=[key["id"]])
        assert answer.status_code == 204, answer.text
        assert len(smtp_server.mailbox.wait_for(3, timeout=5)) == 3
        subjects = [Mail(m).subject for m in smtp_server.mailbox.messages]
        assert subjects[1:] == [
            "Your key to Flat 2 is switched off: Guest",
            "Your key to Flat 2 was revoked: Guest",
        ]
