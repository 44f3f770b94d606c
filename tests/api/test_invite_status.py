"""Invites beside the Nuki paths: delivery status (queued, sent, failed) and resend."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from conftest import MailBox, Tenant, free_port, make_tenant, tenant_with, wait_until

GUEST_LINK = re.compile(r"https?://[^/\s\"<>]+/guest/[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")


class RefusingMailBox(MailBox):
    """A mail server that refuses every recipient for good."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.1.1 mailbox unavailable"


@pytest.fixture
def mailbox() -> Iterator[tuple[MailBox, str]]:
    box = MailBox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


@pytest.fixture
def tenant(tmp_path: Path, mailbox: tuple[MailBox, str]) -> Iterator[Tenant]:
    with tenant_with(tmp_path, smtp_url=mailbox[1], confirm_wait_seconds=5) as made:
        yield made


def invites(tenant: Tenant, **params: str) -> list[dict]:
    answer = tenant.get("/keyhouse/invites", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def app_key(tenant: Tenant, email: str = "guest@example.com") -> dict:
    user = tenant.create_user(email, "Guest")
    return tenant.create_key(
        tenant.plain_lock, name="Guest", accountUserId=user, remoteAllowed=False
    )


def test_a_delivered_invite_shows_sent(tenant: Tenant, mailbox: tuple[MailBox, str]) -> None:
    key = app_key(tenant)
    (invite,) = wait_until(
        lambda: [i for i in invites(tenant) if i["status"] == "sent"], what="the invite sent"
    )
    assert invite["authId"] == key["id"]
    assert invite["smartlockId"] == tenant.plain_lock
    assert invite["email"] == "guest@example.com"
    assert invite["attempts"] == 1
    assert "lastError" not in invite
    assert invite["sentDate"].endswith("Z") and invite["expiryDate"] > invite["creationDate"]
    assert len(mailbox[0].wait_for(1)) == 1


def test_an_invite_waiting_for_smtp_shows_queued_with_the_reason(tmp_path: Path) -> None:
    with tenant_with(
        tmp_path, smtp_url=f"smtp://127.0.0.1:{free_port()}", confirm_wait_seconds=5
    ) as tenant:
        app_key(tenant)
        (invite,) = wait_until(
            lambda: [i for i in invites(tenant) if i.get("lastError")],
            what="a failed attempt",
        )
        assert invite["status"] == "queued"
        assert invite["attempts"] >= 1
        assert "refused" in invite["lastError"].lower()
        assert invites(tenant, status="sent") == []


def test_a_refused_invite_shows_failed_with_the_servers_reply(tmp_path: Path) -> None:
    box = RefusingMailBox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with tenant_with(
            tmp_path, smtp_url=f"smtp://127.0.0.1:{port}", confirm_wait_seconds=5
        ) as tenant:
            app_key(tenant)
            (invite,) = wait_until(
                lambda: invites(tenant, status="failed"), what="the invite to fail"
            )
            assert invite["lastError"].startswith("550")
            assert "mailbox unavailable" in invite["lastError"]
            assert invite["attempts"] == 1  # a 5xx is final: no retry
    finally:
        controller.stop()


def guest_links(message: Message) -> list[str]:
    """The guest links in the text part of a (multipart) mail."""
    (text,) = [p for p in message.walk() if p.get_content_type() == "text/plain"]
    payload = text.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return GUEST_LINK.findall(payload.decode(text.get_content_charset() or "utf-8"))


def test_resend_sends_a_new_link_and_retires_the_old_one(
    tenant: Tenant, mailbox: tuple[MailBox, str]
) -> None:
    key = app_key(tenant)
    wait_until(lambda: invites(tenant, status="sent"), what="the first invite")
    answer = tenant.post(f"/keyhouse/smartlock/{tenant.plain_lock}/auth/{key['id']}/invite")
    assert answer.status_code == 200, answer.text
    fresh = answer.json()
    assert fresh["authId"] == key["id"] and fresh["email"] == "guest@example.com"
    messages = mailbox[0].wait_for(2)
    assert len(messages) == 2
    links = [guest_links(m) for m in messages]
    assert all(len(found) == 1 for found in links), links
    assert links[0] != links[1]  # a new link
    newest, older = invites(tenant, authId=key["id"])
    assert newest["id"] == fresh["id"]
    assert older["expiryDate"] <= newest["creationDate"]  # the first link stopped working


def test_resend_of_a_users_keypad_code_mails_the_code_again_with_a_new_link(
    tenant: Tenant, mailbox: tuple[MailBox, str]
) -> None:
    user = tenant.create_user("cleaner@example.com", "Cleaner")
    code = tenant.create_key(
        tenant.keypad_lock,
        name="Cleaner",
        type=13,
        code=345678,
        accountUserId=user,
        remoteAllowed=False,
    )
    wait_until(lambda: invites(tenant, status="sent"), what="the first mail")
    answer = tenant.post(f"/keyhouse/smartlock/{tenant.keypad_lock}/auth/{code['id']}/invite")
    assert answer.status_code == 200, answer.text
    first, second = mailbox[0].wait_for(2)
    assert guest_links(first) != guest_links(second)
    for message in (first, second):
        text = next(p for p in message.walk() if p.get_content_type() == "text/plain")
        assert "345678" in text.get_payload(decode=True).decode()


def test_resend_is_refused_where_an_invite_makes_no_sense(tenant: Tenant) -> None:
    code = tenant.create_key(
        tenant.keypad_lock, name="Cleaner", type=13, code=345678, remoteAllowed=False
    )  # a keypad code nobody was given
    answer = tenant.post(f"/keyhouse/smartlock/{tenant.keypad_lock}/auth/{code['id']}/invite")
    assert answer.status_code == 409, answer.text
    assert answer.json()["rule"] == "key_with_user"
    key = app_key(tenant)
    tenant.post(f"/smartlock/{tenant.plain_lock}/auth/{key['id']}", json={"enabled": False})
    answer = tenant.post(f"/keyhouse/smartlock/{tenant.plain_lock}/auth/{key['id']}/invite")
    assert answer.status_code == 409 and answer.json()["rule"] == "usable_key"
    answer = tenant.post(f"/keyhouse/smartlock/{tenant.plain_lock}/auth/{'0' * 24}/invite")
    assert answer.status_code == 404
    assert len(invites(tenant)) == 1  # nothing queued by the refusals


def test_invites_are_per_account_and_need_the_auth_scope(tenant: Tenant, tmp_path: Path) -> None:
    key = app_key(tenant)
    other = make_tenant(tenant.client, tenant.runtime, "stranger@example.org")
    assert other.get("/keyhouse/invites").json() == []
    answer = other.post(f"/keyhouse/smartlock/{tenant.plain_lock}/auth/{key['id']}/invite")
    assert answer.status_code == 403
    read_only = tenant.token_with("smartlock.readOnly")
    answer = tenant.get("/keyhouse/invites", headers={"Authorization": f"Bearer {read_only}"})
    assert answer.status_code == 403
    answer = tenant.get("/keyhouse/invites", params={"status": "lost"})
    assert answer.status_code == 400 and answer.json()["field"] == "status"
