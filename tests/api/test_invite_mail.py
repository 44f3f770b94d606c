"""Invite e-mail of app keys: real SMTP (aiosmtpd on loopback), .eml files, the outbox, retries.

The mail is multipart/alternative (text and HTML); it carries the guest link
(``http://host:port/guest/<secret>``), whose secret the server keeps only as its SHA-256.

Each test builds its own Runtime and app from Settings (like conftest does) so the mail settings
are in place before the app starts.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import inspect, select, text, update

from conftest import MailBox, SmtpServer, Tenant, free_port, tenant_with, wait_until
from keyhouse.services.invites import INVITE_VALID_FOR, NOT_KEPT
from keyhouse.store.models import Invite, OutboxMessage

GUEST_LINK = re.compile(r"\b(https?://[^/\s\"<>]+)/guest/([A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])")
VIENNA_WINDOW = {
    "allowedFromDate": "2026-11-30T23:00:00Z",
    "allowedUntilDate": "2027-01-31T23:00:00Z",
    "allowedWeekDays": 124,
    "allowedFromTime": 480,
    "allowedUntilTime": 1080,
}
VIENNA_VALIDITY = "Mon–Fri, 08:00–18:00, 1 Dec 2026 – 31 Jan 2027, Europe/Vienna time"


@contextmanager
def started(tmp_path: Path, smtp_url: str | None, **extra: Any) -> Iterator[Tenant]:
    options = {"confirm_wait_seconds": 5, "worker_interval_seconds": 0.2, **extra}
    with tenant_with(tmp_path, smtp_url=smtp_url, **options) as tenant:
        assert tenant.runtime.settings.smtp_url == smtp_url
        yield tenant


@pytest.fixture
def mail_tenant(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Tenant]:
    with started(tmp_path, smtp_server.url) as tenant:
        yield tenant


def decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(part.get_content_charset() or "utf-8").replace("\r\n", "\n")


def parts(message: Message) -> dict[str, str]:
    """Headers and both parts of a multipart/alternative mail: "body" is the text part."""
    assert message.get_content_type() == "multipart/alternative", message.get_content_type()
    bodies = {
        part.get_content_type(): decoded(part) for part in message.walk() if not part.is_multipart()
    }
    assert set(bodies) == {"text/plain", "text/html"}, set(bodies)
    return {
        "to": message["To"],
        "from": message["From"],
        "subject": str(make_header(decode_header(message["Subject"]))),
        "message_id": message["Message-ID"],
        "body": bodies["text/plain"],
        "html": bodies["text/html"],
    }


def guest_secret(mail: dict[str, str]) -> str:
    """The secret of the guest link in the text part; the HTML part links to the same."""
    found = GUEST_LINK.search(mail["body"])
    assert found, mail["body"]
    assert f'href="{found.group(0)}"' in mail["html"]
    return found.group(2)


def outbox(tenant: Tenant) -> list[OutboxMessage]:
    with tenant.runtime.db.session() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def invites(tenant: Tenant) -> list[Invite]:
    with tenant.runtime.db.session() as session:
        return list(session.scalars(select(Invite).order_by(Invite.id)))


def settle(mailbox: MailBox, count: int) -> list[Message]:
    """Wait for ``count`` messages, then a little longer to see that no more arrive."""
    messages = mailbox.wait_for(count, timeout=10)
    time.sleep(0.6)  # three worker intervals
    assert len(mailbox.messages) == count, [m["Subject"] for m in mailbox.messages]
    return messages


def app_key(user: int, **extra: Any) -> dict[str, Any]:
    return {"name": "Guest December", "accountUserId": user, "remoteAllowed": False, **extra}


# --- one invite per app key -------------------------------------------------------------------


def test_an_app_key_sends_one_invite_with_lock_key_validity_and_guest_link(
    mail_tenant: Tenant, smtp_server: SmtpServer
) -> None:
    tenant = mail_tenant
    user = tenant.create_user("anna@example.com", "Anna")
    key = tenant.create_key(tenant.keypad_lock, **app_key(user, **VIENNA_WINDOW))

    (message,) = settle(smtp_server.mailbox, 1)
    mail = parts(message)
    assert mail["to"] == "anna@example.com"
    assert mail["from"] == tenant.runtime.settings.mail_from
    assert mail["subject"] == "Your key to Front Door: Guest December"
    body = mail["body"]
    assert "Hello Anna," in body
    assert "Lock:         Front Door\n" in body
    assert "Key:          Guest December\n" in body
    assert f"Valid:        {VIENNA_VALIDITY}\n" in body
    assert "Remote use:   no, only near the door\n" in body
    assert "Invite code" not in body
    found = GUEST_LINK.search(body)
    assert found, body
    assert found.group(1) == tenant.runtime.settings.guest_base_url
    guest_secret(mail)
    assert "do not share it" in body
    assert "The first browser that opens the door with it keeps the key" in body
    assert "Nuki" not in body  # a virtual lock: no invite from Nuki to expect
    assert '<html lang="en">' in mail["html"]
    assert "Hello Anna," in mail["html"] and VIENNA_VALIDITY in mail["html"]
    assert key["id"] in mail["message_id"]

    # the outbox row is marked sent
    (row,) = outbox(tenant)
    assert row.status == "sent"
    assert row.sent_at is not None
    assert row.attempts == 1
    assert row.last_error is None
    assert row.recipient == "anna@example.com"
    assert row.kind == "invite"
    assert row.secrets is None  # cleared once sent


def test_the_guest_link_secret_is_kept_only_as_its_sha256(
    mail_tenant: Tenant, smtp_server: SmtpServer
) -> None:
    tenant = mail_tenant
    user = tenant.create_user("ben@example.com", "Ben")
    key = tenant.create_key(tenant.plain_lock, **app_key(user))
    (message,) = settle(smtp_server.mailbox, 1)
    secret = guest_secret(parts(message))
    wait_until(lambda: outbox(tenant)[0].status == "sent", what="the outbox row to be sent")

    (invite,) = invites(tenant)
    assert invite.link_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert invite.auth_key == key["id"]
    assert invite.account_user_id == user
    assert invite.expires_at - invite.created_at == INVITE_VALID_FOR

    # the kept body shows where the link was, not the link
    (row,) = outbox(tenant)
    assert secret not in row.body and "/guest/" not in row.body
    assert f"Open your key here:\n{NOT_KEPT}\n" in row.body

    # the secret is in no column of any table
    with tenant.runtime.db.session() as session:
        tables = inspect(session.connection()).get_table_names()
        for table in tables:
            for row in session.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    shown = str(value)
                    assert secret not in shown, (table, shown[:200])


def test_a_keypad_code_without_user_or_a_fob_sends_no_mail(
    mail_tenant: Tenant, smtp_server: SmtpServer
) -> None:
    tenant = mail_tenant
    user = tenant.create_user("cleaner@example.com", "Cleaner")
    tenant.create_key(tenant.keypad_lock, name="Cleaner", type=13, code=345678, remoteAllowed=False)
    tenant.create_key(
        tenant.keypad_lock, name="Fob", type=2, accountUserId=user, remoteAllowed=False
    )
    time.sleep(0.8)
    assert smtp_server.mailbox.messages == []
    assert outbox(tenant) == []
    assert invites(tenant) == []


def test_a_key_for_several_locks_sends_one_invite_per_lock(
    mail_tenant: Tenant, smtp_server: SmtpServer
) -> None:
    tenant = mail_tenant
    user = tenant.create_user("carla@example.com", "Carla")
    answer = tenant.put(
        "/smartlock/auth",
        json={**app_key(user), "smartlockIds": [tenant.keypad_lock, tenant.plain_lock]},
    )
    assert answer.status_code == 204, answer.text

    messages = settle(smtp_server.mailbox, 2)
    mails = [parts(m) for m in messages]
    assert {m["to"] for m in mails} == {"carla@example.com"}
    assert sorted(m["subject"] for m in mails) == [
        "Your key to Flat 2: Guest December",
        "Your key to Front Door: Guest December",
    ]
    secrets = [guest_secret(m) for m in mails]
    assert secrets[0] != secrets[1]
    listed = tenant.keys()
    keys = {k["smartlockId"]: k["id"] for k in listed}
    assert len(keys) == 2
    stored = invites(tenant)
    assert {i.auth_key for i in stored} == set(keys.values())
    assert sorted(i.link_hash for i in stored) == sorted(
        hashlib.sha256(s.encode()).hexdigest() for s in secrets
    )
    assert [row.status for row in outbox(tenant)] == ["sent", "sent"]


# --- without SMTP: .eml files -----------------------------------------------------------------


def test_without_smtp_the_invite_is_written_as_an_eml_file(tmp_path: Path) -> None:
    with started(tmp_path, None) as tenant:
        user = tenant.create_user("dora@example.com", "Dora")
        tenant.create_key(tenant.keypad_lock, **app_key(user, **VIENNA_WINDOW))
        folder = tenant.runtime.settings.mail_dir
        assert folder == tmp_path / "data" / "mail"
        files = wait_until(lambda: sorted(folder.glob("*.eml")), what="an .eml file")
        wait_until(lambda: outbox(tenant)[0].status == "sent", what="the outbox row to be sent")
        time.sleep(0.6)
        files = sorted(folder.glob("*.eml"))
        assert len(files) == 1, files
        assert not list(folder.glob("*.tmp"))
        mail = parts(message_from_bytes(files[0].read_bytes()))
        assert mail["to"] == "dora@example.com"
        assert mail["subject"] == "Your key to Front Door: Guest December"
        assert f"Valid:        {VIENNA_VALIDITY}\n" in mail["body"]
        guest_secret(mail)
        (row,) = outbox(tenant)
        assert row.status == "sent" and row.sent_at is not None and row.last_error is None


# --- SMTP down at creation, delivered later ---------------------------------------------------


def test_when_smtp_is_down_the_key_is_made_and_the_mail_goes_out_later(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there yet
    with started(tmp_path, f"smtp://127.0.0.1:{port}") as tenant:
        user = tenant.create_user("emil@example.com", "Emil")
        started_at = time.monotonic()
        key = tenant.create_key(tenant.keypad_lock, **app_key(user))
        assert time.monotonic() - started_at < 5
        assert key["syncState"] == "applied"

        row = wait_until(
            lambda: (rows := outbox(tenant)) and rows[0].last_error and rows[0],
            what="a first failed delivery attempt",
        )
        assert row.status == "pending"
        assert row.attempts >= 1
        assert row.last_error and "refused" in row.last_error.lower()
        assert row.next_attempt_at is not None
        assert row.sent_at is None

        mailbox = MailBox()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            with tenant.runtime.db.session() as session:
                session.execute(update(OutboxMessage).values(next_attempt_at=None))
            # the mail worker (every 0.2 s) picks it up
            wait_until(lambda: outbox(tenant)[0].status == "sent", what="the retry to be sent")
            assert tenant.runtime.mail.deliver_due() == 0  # nothing left to send
            (message,) = settle(mailbox, 1)
        finally:
            controller.stop()
        mail = parts(message)
        assert mail["to"] == "emil@example.com"
        guest_secret(mail)
        (row,) = outbox(tenant)
        assert row.status == "sent"
        assert row.last_error is None
        assert row.attempts >= 2
        assert len(invites(tenant)) == 1


class SlowMailBox(MailBox):
    """A mail server that takes half a second to accept each message."""

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.5)
        return await super().handle_DATA(server, session, envelope)


def test_two_concurrent_deliveries_send_a_pending_mail_once(tmp_path: Path) -> None:
    port = free_port()
    with started(tmp_path, f"smtp://127.0.0.1:{port}") as tenant:
        user = tenant.create_user("fritz@example.com", "Fritz")
        tenant.create_key(tenant.plain_lock, **app_key(user))
        wait_until(lambda: outbox(tenant)[0].last_error, what="a first failed attempt")
        tenant.runtime.mail_worker.stop()  # only our two deliveries from here on
        mailbox = SlowMailBox()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            with tenant.runtime.db.session() as session:
                session.execute(update(OutboxMessage).values(next_attempt_at=None))
            threads = [threading.Thread(target=tenant.runtime.mail.deliver_due) for _ in range(2)]
            for thread in threads:
                thread.start()
                time.sleep(0.1)
            for thread in threads:
                thread.join(15)
            time.sleep(0.3)
        finally:
            controller.stop()
        assert outbox(tenant)[0].status == "sent"
        assert len(mailbox.messages) == 1
