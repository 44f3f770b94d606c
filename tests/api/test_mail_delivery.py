"""The outbox sender against a real SMTP server: one Message-ID for every attempt, backoff,
and a connection lost after the hand-over marked unconfirmed instead of sent twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from conftest import MailBox, Tenant, free_port, tenant_with, wait_until
from keyhouse.outbox.sender import MAX_BACKOFF_SECONDS, MailSender
from keyhouse.settings import Settings

FAST = {"mail_retry_seconds": 0.2}  # the first retry after 0.2 s, not 2 s


class BusyOnceMailBox(MailBox):
    """Answers the first DATA with 451 (try again later), then accepts."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        if not self.refused:
            content = (envelope.original_content or envelope.content).decode()
            self.refused.append(content)
            return "451 4.3.0 busy, try again"
        return await super().handle_DATA(server, session, envelope)


class HangingUpMailBox(MailBox):
    """Takes the message, then drops the connection without answering."""

    async def handle_DATA(self, server, session, envelope):
        await super().handle_DATA(server, session, envelope)
        server.transport.close()
        return "250 never heard"


@contextmanager
def smtp(mailbox: MailBox) -> Iterator[str]:
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


def invite_a_guest(tenant: Tenant) -> None:
    user = tenant.create_user("guest@example.com", "Guest")
    tenant.create_key(tenant.plain_lock, name="Guest", accountUserId=user, remoteAllowed=True)


def the_invite(tenant: Tenant) -> dict:
    answer = tenant.get("/keyhouse/invites")
    assert answer.status_code == 200, answer.text
    (invite,) = answer.json()
    return invite


def test_a_retry_after_451_carries_the_same_message_id(tmp_path: Path) -> None:
    mailbox = BusyOnceMailBox()
    with smtp(mailbox) as url, tenant_with(tmp_path, smtp_url=url, **FAST) as tenant:
        invite_a_guest(tenant)
        sent = wait_until(
            lambda: (i := the_invite(tenant))["status"] == "sent" and i,
            what="the retry after the 451 to be accepted",
        )
    (refused,) = mailbox.refused
    (accepted,) = mailbox.messages
    assert f"Message-ID: {sent['messageId']}" in refused
    assert accepted["Message-ID"] == sent["messageId"]
    assert sent["attempts"] == 2


def test_a_connection_lost_after_the_hand_over_is_unconfirmed_and_not_sent_again(
    tmp_path: Path,
) -> None:
    mailbox = HangingUpMailBox()
    with smtp(mailbox) as url, tenant_with(tmp_path, smtp_url=url, **FAST) as tenant:
        invite_a_guest(tenant)
        invite = wait_until(
            lambda: (i := the_invite(tenant))["status"] == "unconfirmed" and i,
            what="the invite to be unconfirmed",
        )
        time.sleep(1.0)  # five worker rounds: a retry would have gone out by now
        assert tenant.runtime.mail.deliver_due() == 0
        assert the_invite(tenant)["status"] == "unconfirmed"
        answer = tenant.get("/keyhouse/invites", params={"status": "unconfirmed"})
        assert [i["id"] for i in answer.json()] == [invite["id"]]
    assert len(mailbox.messages) == 1
    assert invite["attempts"] == 1
    assert "may have arrived" in invite["lastError"]
    assert "Resend" in invite["lastError"]


def test_an_unconfirmed_invite_can_be_resent_as_a_new_one(tmp_path: Path) -> None:
    mailbox = HangingUpMailBox()
    with smtp(mailbox) as url, tenant_with(tmp_path, smtp_url=url, **FAST) as tenant:
        invite_a_guest(tenant)
        wait_until(lambda: the_invite(tenant)["status"] == "unconfirmed", what="unconfirmed")
        (key,) = tenant.keys(tenant.plain_lock)
        answer = tenant.post(f"/keyhouse/smartlock/{tenant.plain_lock}/auth/{key['id']}/invite")
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] in ("queued", "unconfirmed", "sent")
        wait_until(lambda: len(mailbox.messages) == 2, what="the resent invite")
    first, second = mailbox.messages
    assert first["Message-ID"] != second["Message-ID"]


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [(1, 2.0), (2, 4.0), (3, 8.0), (8, 256.0), (9, MAX_BACKOFF_SECONDS), (50, MAX_BACKOFF_SECONDS)],
)
def test_retries_back_off_doubling_up_to_five_minutes(
    tmp_path: Path, attempts: int, delay: float
) -> None:
    sender = MailSender(db=None, settings=Settings(data=tmp_path))  # type: ignore[arg-type]
    assert sender.retry_delay(attempts) == delay
