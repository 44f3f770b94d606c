"""`keyhouse invite …` (one guest, or a CSV of guests) against a real server."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path

import httpx
import pytest

from conftest import LiveServer, SmtpServer

GUEST_LINK = re.compile(r"https?://[^/\s\"<>]+/guest/[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")


def mail_bodies(message: Message) -> dict[str, str]:
    """The parts of a multipart/alternative mail by content type, decoded."""
    assert message.get_content_type() == "multipart/alternative"
    bodies = {}
    for part in message.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            bodies[part.get_content_type()] = payload.decode(part.get_content_charset() or "utf-8")
    assert set(bodies) == {"text/plain", "text/html"}
    return bodies


def subject_of(message: Message) -> str:
    return str(make_header(decode_header(message["Subject"])))


@pytest.fixture
def run(live_server: LiveServer, tmp_path: Path):
    """Run `keyhouse …` as a subprocess with the live server's URL and token."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "KEYHOUSE_URL": live_server.url,
        "KEYHOUSE_TOKEN": live_server.token,
        "HOME": str(home),
        "KEYHOUSE_CONFIG": str(home / "config.toml"),
    }
    env.pop("KEYHOUSE_PROFILE", None)

    def keyhouse(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "keyhouse", *args],
            capture_output=True,
            text=True,
            timeout=110,
            env=env,
            check=False,
        )

    return keyhouse


def get(server: LiveServer, path: str, **params: str) -> list | dict:
    answer = httpx.get(f"{server.url}{path}", headers=server.headers, params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def keypad_lock(server: LiveServer) -> dict:
    return next(lock for lock in get(server, "/smartlock") if lock["config"]["keypadPaired"])


INVITE = [
    "invite",
    "--lock",
    "Front Door",
    "--email",
    "guest@example.com",
    "--name",
    "Guest",
    "--from",
    "2026-12-01",
    "--until",
    "2027-01-31",
    "--days",
    "mon-fri",
    "--time",
    "08:00-18:00",
    "--wait",
]


def test_invite_creates_user_and_key_and_sends_the_mail(
    live_server: LiveServer, smtp_server: SmtpServer, run
) -> None:
    lock = keypad_lock(live_server)
    assert lock["name"] == "Front Door" and lock["config"]["timezone"] == "Europe/Vienna"

    done = run(*INVITE)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    (user,) = [u for u in get(live_server, "/account/user") if u["email"] == "guest@example.com"]
    assert f"created guest@example.com (Guest), accountUserId {user['accountUserId']}" in out
    (key,) = get(live_server, f"/smartlock/{lock['smartlockId']}/auth")
    assert key["id"] in out and "Front Door" in out
    assert "Mon–Fri, 08:00–18:00, 1 Dec 2026 – 31 Jan 2027, Europe/Vienna time" in out
    assert "sync:  applied" in out
    assert key["accountUserId"] == user["accountUserId"]
    assert key["type"] == 0 and key["remoteAllowed"] is False
    assert key["syncState"] == "applied"
    assert key["allowedWeekDays"] == 124
    assert (key["allowedFromTime"], key["allowedUntilTime"]) == (480, 1080)
    assert key["allowedFromDate"] == "2026-11-30T23:00:00.000Z"
    assert key["allowedUntilDate"] == "2027-01-31T23:00:00.000Z"

    messages = smtp_server.mailbox.wait_for(1, timeout=10)
    assert len(messages) == 1, "no invite mail within 10 s"
    assert messages[0]["To"] == "guest@example.com"
    bodies = mail_bodies(messages[0])
    assert (
        "Mon–Fri, 08:00–18:00, 1 Dec 2026 – 31 Jan 2027, Europe/Vienna time" in bodies["text/plain"]
    )
    (link,) = GUEST_LINK.findall(bodies["text/plain"])
    assert f'href="{link}"' in bodies["text/html"]

    # A second invite to the same e-mail reuses the user (on the other lock, by id, remote).
    other = next(
        x for x in get(live_server, "/smartlock") if x["smartlockId"] != lock["smartlockId"]
    )
    again = run(
        "invite",
        "--lock",
        str(other["smartlockId"]),
        "--email",
        "Guest@Example.com",
        "--name",
        "Guest",
        "--remote",
        "--wait",
    )
    assert again.returncode == 0, again.stderr
    assert (
        f"reused guest@example.com (Guest), accountUserId {user['accountUserId']}" in again.stdout
    )
    assert "any time, no restrictions" in again.stdout
    users = [u for u in get(live_server, "/account/user") if u["email"] == "guest@example.com"]
    assert len(users) == 1
    (second,) = get(live_server, f"/smartlock/{other['smartlockId']}/auth")
    assert second["accountUserId"] == user["accountUserId"] and second["remoteAllowed"] is True


def test_invite_with_code_makes_a_keypad_code(
    live_server: LiveServer, smtp_server: SmtpServer, run
) -> None:
    lock = keypad_lock(live_server)
    done = run(
        "invite",
        "--lock",
        "front door",
        "--email",
        "cleaner@example.com",
        "--name",
        "Cleaner",
        "--code",
        "345678",
        "--days",
        "sat,sun",
        "--wait",
    )
    assert done.returncode == 0, done.stderr
    assert "keypad code 345678" in done.stdout and "Sat, Sun" in done.stdout
    (key,) = get(live_server, f"/smartlock/{lock['smartlockId']}/auth")
    assert key["type"] == 13 and key["code"] == 345678 and key["allowedWeekDays"] == 3
    (user,) = [u for u in get(live_server, "/account/user") if u["email"] == "cleaner@example.com"]
    assert key["accountUserId"] == user["accountUserId"]
    assert key["syncState"] == "applied"
    (message,) = smtp_server.mailbox.wait_for(1, timeout=10)
    assert message["To"] == "cleaner@example.com"
    assert subject_of(message) == "Your keypad code for Front Door: Cleaner"
    bodies = mail_bodies(message)
    assert "345678" in bodies["text/plain"] and "345678" in bodies["text/html"]
    assert GUEST_LINK.search(bodies["text/plain"])


def test_usage_errors_exit_2_before_anything_is_created(live_server: LiveServer, run) -> None:
    bad_days = run("invite", "--lock", "Front Door", "--email", "a@example.com", "--name", "A",
                   "--days", "mon-fry")  # fmt: skip
    assert bad_days.returncode == 2
    assert bad_days.stderr.startswith("error: --days 'mon-fry' is not valid")
    assert "Traceback" not in bad_days.stderr
    unknown = run("invite", "--lock", "Back Door", "--email", "a@example.com", "--name", "A")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: no lock 'Back Door'")
    missing = run("invite", "--lock", "Front Door")
    assert missing.returncode == 2 and "--email, --name" in missing.stderr
    bad_code = run("invite", "--lock", "Front Door", "--email", "a@example.com", "--name", "A",
                   "--code", "123456")  # fmt: skip
    assert bad_code.returncode == 1 and "must not start with 12" in bad_code.stderr
    lock = keypad_lock(live_server)
    assert get(live_server, f"/smartlock/{lock['smartlockId']}/auth") == []


def test_csv_of_fifty_guests_with_two_bad_rows(
    live_server: LiveServer, run, tmp_path: Path
) -> None:
    lock = keypad_lock(live_server)
    path = tmp_path / "guests.csv"
    rows = []
    for n in range(1, 51):
        row = {
            "email": f"guest{n:02d}@example.com",
            "name": f"Guest {n}",
            "lock": "Front Door" if n % 2 else str(lock["smartlockId"]),
            "from": "2026-12-01",
            "until": "2027-01-31",
            "days": "mon-fri",
            "time": "08:00-18:00",
            "remote": "yes" if n % 5 == 0 else "",
            "code": f"3456{n - 9}{n - 9}" if 10 <= n < 19 else "",  # 345611 … 345699
        }
        rows.append(row)
    rows[6]["email"] = "not-an-email"  # line 8 of the file
    rows[29]["code"] = "123456"  # line 31
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    done = run("invite", "--csv", str(path))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 50, done.stdout
    assert [int(re.match(r"row (\d+): ", line).group(1)) for line in lines] == list(range(2, 52))
    failed = [line for line in lines if ": failed: " in line]
    assert len(failed) == 2, failed
    assert failed[0].startswith("row 8: failed: email 'not-an-email' is not a valid e-mail")
    assert failed[1].startswith("row 31: failed: code 123456 is not valid")
    assert lines[0].startswith("row 2: ok guest01@example.com key ")
    assert lines[0].endswith(" on Front Door")
    assert "48 of 50" in done.stderr and "Traceback" not in done.stderr

    keys = get(live_server, f"/smartlock/{lock['smartlockId']}/auth")
    assert len(keys) == 48
    assert sum(key["type"] == 13 for key in keys) == 9
    assert all(key["allowedWeekDays"] == 124 for key in keys)
    assert all(key["allowedFromDate"] == "2026-11-30T23:00:00.000Z" for key in keys)
    assert sum(key["remoteAllowed"] for key in keys) == 9  # every 5th guest, not row 31


def test_bad_csv_exits_2(run, tmp_path: Path) -> None:
    path = tmp_path / "guests.csv"
    path.write_text("email,lock\nguest@example.com,Front Door\n", encoding="utf-8")
    done = run("invite", "--csv", str(path))
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "no column name" in done.stderr
    assert done.stdout == ""
    missing = run("invite", "--csv", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "can't read" in missing.stderr


def test_the_seed_workflow_end_to_end_through_the_cli(
    live_server: LiveServer, smtp_server: SmtpServer, run
) -> None:
    """The seed's six curl calls as four commands: invite, edit, disable, remove (key, user)."""
    lock = keypad_lock(live_server)
    done = run(*INVITE)
    assert done.returncode == 0, done.stderr
    (key,) = get(live_server, f"/smartlock/{lock['smartlockId']}/auth")
    assert key["syncState"] == "applied" and key["enabled"] is True

    done = run("keys", "edit", "--lock", "Front Door", "Guest", "--name", "Guest (January)")
    assert done.returncode == 0, done.stderr
    (key,) = get(live_server, f"/smartlock/{lock['smartlockId']}/auth")
    assert key["name"] == "Guest (January)"
    assert (key["allowedWeekDays"], key["allowedFromTime"], key["allowedUntilTime"]) == (
        124,
        480,
        1080,
    )

    done = run("keys", "disable", "--lock", "Front Door", "Guest (January)")
    assert done.returncode == 0, done.stderr
    (key,) = get(live_server, f"/smartlock/{lock['smartlockId']}/auth")
    assert key["enabled"] is False

    done = run("keys", "rm", "--lock", str(lock["smartlockId"]), key["id"])
    assert done.returncode == 0, done.stderr
    assert get(live_server, f"/smartlock/{lock['smartlockId']}/auth") == []

    done = run("users", "rm", "guest@example.com")
    assert done.returncode == 0, done.stderr
    assert get(live_server, "/account/user", email="guest@example.com") == []

    # the invite, then a notice when the key was switched off and when it was removed; none
    # when the user went, as the user's only key was already gone
    messages = smtp_server.mailbox.wait_for(3, timeout=10)
    time.sleep(0.5)
    assert [subject_of(m) for m in smtp_server.mailbox.messages] == [
        "Your key to Front Door: Guest",
        "Your key to Front Door is switched off: Guest (January)",
        "Your key to Front Door was revoked: Guest (January)",
    ]
    assert {m["To"] for m in messages} == {"guest@example.com"}


def test_invite_status_resend_and_the_outbox_from_the_cli(
    live_server: LiveServer, smtp_server: SmtpServer, run
) -> None:
    assert run(*INVITE).returncode == 0
    smtp_server.mailbox.wait_for(1)
    done = run("keys", "invites", "--json")
    assert done.returncode == 0, done.stderr
    (invite,) = json.loads(done.stdout)
    assert invite["email"] == "guest@example.com" and invite["status"] == "sent"

    done = run("keys", "resend", "--lock", "Front Door", "Guest")
    assert done.returncode == 0, done.stderr
    assert "guest@example.com" in done.stdout
    assert len(smtp_server.mailbox.wait_for(2)) == 2

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keyhouse",
            "--data",
            str(live_server.data),
            "admin",
            "mail",
            "list",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("guest@example.com") == 2
