"""Invite mail arrives exactly once through a real `keyhouse serve`, across SMTP outages and
restarts of the server, even one killed while the mail server was taking the message."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from conftest import LiveServer, MailBox, free_port, start_server, wait_until

# Retries every 0.3 s at first (doubling), the worker looks every 0.2 s, and a claim counts
# as abandoned after 1 s: the minutes of production shrink to seconds, nothing else changes.
FAST = {
    "KEYHOUSE_MAIL_RETRY_SECONDS": "0.3",
    "KEYHOUSE_WORKER_INTERVAL_SECONDS": "0.2",
    "KEYHOUSE_MAIL_CLAIM_TIMEOUT_SECONDS": "1",
    "KEYHOUSE_CONFIRM_WAIT_SECONDS": "0.5",
}
HOLD_SECONDS = 4.0


class HoldingMailBox(MailBox):
    """Keeps each message, then holds its answer to DATA: the client waits, and may die."""

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(HOLD_SECONDS)
        return answer


class SlowRecipientMailBox(MailBox):
    """Holds its answer to RCPT: a client dying now has not handed the message over."""

    def __init__(self) -> None:
        super().__init__()
        self.slow = True

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.slow:
            await asyncio.sleep(HOLD_SECONDS)
        envelope.rcpt_tos.append(address)
        return "250 OK"


@contextmanager
def smtp_on(port: int, mailbox: MailBox) -> Iterator[MailBox]:
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


@contextmanager
def servers() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def serve(started: list[subprocess.Popen], data: Path, smtp_port: int) -> LiveServer:
    process, server = start_server(
        data, {**FAST, "KEYHOUSE_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}"}
    )
    started.append(process)
    return server


def invite_a_guest(server: LiveServer) -> None:
    headers = server.headers
    answer = httpx.put(
        f"{server.url}/account/user",
        json={"email": "guest@example.com", "name": "Guest"},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    user = answer.json()["accountUserId"]
    answer = httpx.put(
        f"{server.url}/smartlock/{server.lock_ids[0]}/auth",
        json={"name": "Guest", "type": 0, "accountUserId": user, "remoteAllowed": True},
        headers=headers,
    )
    assert answer.status_code == 204, answer.text


def the_invite(server: LiveServer, token: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{server.url}/keyhouse/invites", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text
    (invite,) = answer.json()
    return invite


def settle(seconds: float) -> None:
    """Give any would-be duplicate time to arrive (several retry periods)."""
    time.sleep(seconds)


def test_smtp_down_at_creation_then_back_the_invite_arrives_exactly_once(tmp_path: Path) -> None:
    smtp_port = free_port()  # nothing listens there yet
    with servers() as started:
        server = serve(started, tmp_path / "data", smtp_port)
        invite_a_guest(server)
        down = wait_until(
            lambda: (i := the_invite(server, server.token))["attempts"] >= 3 and i,
            what="three failed attempts while the mail server is down",
        )
        assert down["status"] == "queued"
        assert "refused" in down["lastError"].lower()

        with smtp_on(smtp_port, MailBox()) as mailbox:
            sent = wait_until(
                lambda: (i := the_invite(server, server.token))["status"] == "sent" and i,
                timeout=15,
                what="the retry to go out once the mail server is back",
            )
            settle(2.0)
            assert len(mailbox.messages) == 1
        (message,) = mailbox.messages
        assert message["Message-ID"] == sent["messageId"]
        assert message["To"] == "guest@example.com"
        assert sent["attempts"] > down["attempts"]
        assert "lastError" not in sent  # null fields are left out


def test_a_restart_mid_retry_sends_the_invite_once(tmp_path: Path) -> None:
    smtp_port = free_port()
    data = tmp_path / "data"
    with servers() as started:
        first = serve(started, data, smtp_port)
        token = first.token
        invite_a_guest(first)
        wait_until(lambda: the_invite(first, token)["attempts"] >= 2, what="failed attempts before")
        started[0].kill()  # no goodbye: the retry it planned dies with it
        started[0].wait(10)

        with smtp_on(smtp_port, MailBox()) as mailbox:
            second = serve(started, data, smtp_port)
            assert not second.token  # the same store, no new demo
            sent = wait_until(
                lambda: (i := the_invite(second, token))["status"] == "sent" and i,
                timeout=15,
                what="the restarted server to send the invite",
            )
            settle(2.0)
            assert len(mailbox.messages) == 1
        assert mailbox.messages[0]["Message-ID"] == sent["messageId"]


def test_a_server_killed_while_the_mail_server_takes_the_message_sends_no_duplicate(
    tmp_path: Path,
) -> None:
    smtp_port = free_port()
    data = tmp_path / "data"
    with servers() as started, smtp_on(smtp_port, HoldingMailBox()) as mailbox:
        first = serve(started, data, smtp_port)
        token = first.token
        invite_a_guest(first)
        wait_until(lambda: mailbox.messages, what="the mail server to have the message")
        started[0].kill()  # before the mail server's "250": the outcome is unknown to it
        started[0].wait(10)

        second = serve(started, data, smtp_port)
        invite = wait_until(
            lambda: (i := the_invite(second, token))["status"] == "unconfirmed" and i,
            timeout=15,
            what="the interrupted hand-over to show as unconfirmed",
        )
        settle(HOLD_SECONDS + 1)
        assert len(mailbox.messages) == 1  # not sent again
        assert the_invite(second, token)["status"] == "unconfirmed"
        assert "may have arrived" in invite["lastError"]
        assert "sentDate" not in invite


def test_a_server_killed_before_handing_the_message_over_sends_it_once_after_restart(
    tmp_path: Path,
) -> None:
    smtp_port = free_port()
    data = tmp_path / "data"
    with servers() as started, smtp_on(smtp_port, SlowRecipientMailBox()) as mailbox:
        first = serve(started, data, smtp_port)
        token = first.token
        invite_a_guest(first)
        wait_until(
            lambda: the_invite(first, token)["attempts"] == 1, what="the sender to claim the mail"
        )
        started[0].kill()  # while the mail server holds its answer to RCPT
        started[0].wait(10)
        assert mailbox.messages == []

        mailbox.slow = False
        second = serve(started, data, smtp_port)
        sent = wait_until(
            lambda: (i := the_invite(second, token))["status"] == "sent" and i,
            timeout=15,
            what="the restarted server to take over the abandoned claim and send the mail",
        )
        settle(2.0)
        assert len(mailbox.messages) == 1
        assert mailbox.messages[0]["Message-ID"] == sent["messageId"]
        assert sent["attempts"] == 2
