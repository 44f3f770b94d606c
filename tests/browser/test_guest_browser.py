"""The guest page in a real browser: headless Chromium on a phone-sized screen, against a real
`keyhouse serve` process whose invite mail goes to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import LiveServer, SmtpServer, running_server, wait_until

LINK = re.compile(r"(https?://[^\s\"<>]+/guest/[A-Za-z0-9_-]{43})\b")
LOCKED, UNLOCKED = 1, 3
TRIGGER_WEB = 4
LOG_SUCCESS, LOG_REJECTED = 0, 9
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def texts(message: Message) -> str:
    found = []
    for part in message.walk():
        if part.get_content_maintype() == "text" and not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                found.append(payload.decode(part.get_content_charset() or "utf-8"))
    return "\n".join(found)


class Owner:
    """The lock owner, over the Nuki API of the live server."""

    def __init__(self, server: LiveServer, smtp: SmtpServer) -> None:
        self.server = server
        self.smtp = smtp
        self.api = httpx.Client(base_url=server.url, headers=server.headers, timeout=15)
        self.lock = server.lock_ids[1]  # "Flat 2"

    def key_for_guest(self, email: str, **extra: Any) -> tuple[dict[str, Any], str]:
        """An app key for a new user with remote use allowed, and the link mailed for it."""
        answer = self.api.put("/account/user", json={"email": email, "name": "Guest"})
        assert answer.status_code == 200, answer.text
        user = answer.json()["accountUserId"]
        body = {
            "name": "Guest December",
            "type": 0,
            "accountUserId": user,
            "remoteAllowed": True,
            **extra,
        }
        before = {k["id"] for k in self.keys()}
        answer = self.api.put(f"/smartlock/{self.lock}/auth", json=body)
        assert answer.status_code == 204, answer.text
        (key,) = [k for k in self.keys() if k["id"] not in before]
        return key, self.link_of(key["id"])

    def keys(self) -> list[dict[str, Any]]:
        answer = self.api.get(f"/smartlock/{self.lock}/auth")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def link_of(self, key_id: str) -> str:
        def mailed() -> str | None:
            for message in list(self.smtp.mailbox.messages):
                if key_id in str(message["Message-ID"]):
                    found = LINK.search(texts(message))
                    if found:
                        return found.group(1)
            return None

        link = wait_until(mailed, timeout=20, what=f"the invite mail of key {key_id}")
        assert link.startswith(self.server.url + "/guest/"), link
        return link

    def update_key(self, key_id: str, **changes: Any) -> None:
        answer = self.api.post(f"/smartlock/{self.lock}/auth/{key_id}", json=changes)
        assert answer.status_code == 204, answer.text
        wait_until(
            lambda: (
                next(k for k in self.keys() if k["id"] == key_id).get("syncState", "applied")
                != "pending"
            ),
            what="the lock to confirm the change",
        )

    def lock_state(self) -> int:
        answer = self.api.get(f"/smartlock/{self.lock}")
        assert answer.status_code == 200, answer.text
        return answer.json()["state"]["state"]

    def last_log_entry(self) -> dict[str, Any]:
        answer = self.api.get(f"/smartlock/{self.lock}/log")
        assert answer.status_code == 200, answer.text
        return answer.json()[0]


@pytest.fixture
def owner(live_server: LiveServer, smtp_server: SmtpServer) -> Owner:
    return Owner(live_server, smtp_server)


def no_csp_violations(page: Any) -> None:
    blocked = [m for m in page.console_messages if "Content Security Policy" in m]
    assert not blocked, blocked


def test_the_page_renders_on_a_phone_and_open_unlocks(
    phone: Any, owner: Owner, tmp_path: Path
) -> None:
    key, link = owner.key_for_guest("anna@example.com")

    answer = phone.goto(link)
    assert answer is not None and answer.status == 200
    assert answer.headers["cache-control"] == "no-store"
    assert phone.title() == "Flat 2 · Keyhouse"
    assert phone.inner_text("#lock") == "Flat 2"
    assert phone.inner_text("#key") == "Guest December"
    assert phone.inner_text("#validity") == "any time, no restrictions"
    assert phone.inner_text("#now") == "Valid now"
    button = phone.locator("#open")
    assert button.is_visible()
    # the stylesheet loaded under the CSP: a full-width button on the phone
    box = button.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] >= 48
    assert box["y"] + box["height"] <= 844  # visible without scrolling

    shot = tmp_path / "guest-page.png"
    phone.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000

    assert owner.lock_state() == LOCKED
    button.click()
    phone.wait_for_selector("#result")
    assert phone.inner_text("#result") == "Done: Flat 2 is unlocked."
    assert phone.url == link + "?opened=1"
    assert owner.lock_state() == UNLOCKED
    entry = owner.last_log_entry()
    assert (entry["trigger"], entry["state"], entry["authId"], entry["action"]) == (
        TRIGGER_WEB,
        LOG_SUCCESS,
        key["id"],
        1,
    )

    # the browser now holds the link: an HttpOnly, SameSite=Strict cookie for /guest/ only
    (cookie,) = phone.context.cookies()
    assert cookie["name"] == "keyhouse_device"
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/guest/"
    no_csp_violations(phone)


def test_a_key_outside_its_window_shows_when_it_works_and_no_button(
    phone: Any, owner: Owner
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    _key, link = owner.key_for_guest("ben@example.com", allowedFromDate=iso(start))

    answer = phone.goto(link)
    assert answer is not None and answer.status == 200
    assert phone.inner_text("#now").startswith("Not valid now: before the key's validity starts")
    assert phone.locator("#open").count() == 0
    assert phone.inner_text("#note").startswith("You can open the door from here while the key")
    no_csp_violations(phone)


def test_open_is_refused_once_the_window_has_closed(phone: Any, owner: Owner) -> None:
    key, link = owner.key_for_guest("cem@example.com")
    phone.goto(link)
    assert phone.locator("#open").is_visible()

    # while the page is open, the owner moves the key's start into the future
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    owner.update_key(key["id"], allowedFromDate=iso(start))

    with phone.expect_response(lambda r: r.request.method == "POST") as posted:
        phone.click("#open")
    assert posted.value.status == 403
    phone.wait_for_selector("#problem")
    assert phone.inner_text("h1") == "Not opened"
    assert "Flat 2 did not open: before the key's validity starts" in phone.inner_text("#problem")
    assert owner.lock_state() == LOCKED
    entry = owner.last_log_entry()
    assert (entry["trigger"], entry["state"], entry["authId"]) == (
        TRIGGER_WEB,
        LOG_REJECTED,
        key["id"],
    )


def test_a_disabled_key_shows_the_dead_link_page(phone: Any, owner: Owner) -> None:
    key, link = owner.key_for_guest("dora@example.com")
    owner.update_key(key["id"], enabled=False)

    answer = phone.goto(link)
    assert answer is not None and answer.status == 410
    assert phone.inner_text("h1") == "Key switched off"
    assert phone.inner_text("#problem") == "This key was switched off by its owner."
    assert phone.locator("#open").count() == 0
    no_csp_violations(phone)


@pytest.fixture
def logged_server(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[LiveServer]:
    """`keyhouse serve --access-log` (off by default): the log a secret could leak into."""
    env = {"KEYHOUSE_SMTP_URL": smtp_server.url}
    with running_server(tmp_path / "logged", env, ["--access-log"]) as server:
        yield server


def test_the_server_log_never_shows_a_link_secret(
    phone: Any, logged_server: LiveServer, smtp_server: SmtpServer
) -> None:
    live_server = logged_server
    owner = Owner(live_server, smtp_server)
    _key, link = owner.key_for_guest("eva@example.com")
    phone.goto(link)
    phone.click("#open")
    phone.wait_for_selector("#result")
    secret = link.rsplit("/", 1)[1]
    wait_until(
        lambda: any("/guest/[secret]" in line for line in live_server.output),
        what="the guest page's access log lines",
    )
    assert not [line for line in live_server.output if secret in line]
