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
    assert bad_code.returncode == 2 and "must not start with 12" in bad_code.stderr
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
    assert failed[1].startswith("row 31: failed: code '123456' is not valid")
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


def users_called(server: LiveServer, email: str) -> list[dict]:
    return [u for u in get(server, "/account/user") if u["email"] == email]


def test_a_failed_invite_leaves_nothing_behind(
    live_server: LiveServer, run, tmp_path: Path
) -> None:
    """Issue 15.3: local checks come before any request; a later failure removes only what this
    run created, and the error line says so."""
    guest = ["--email", "yara@example.com", "--name", "Yara"]
    bad_code = run("invite", "--lock", "Front Door", *guest, "--code", "123456")
    assert bad_code.returncode == 2, bad_code.stderr
    assert bad_code.stderr.startswith("error: --code '123456' is not valid")
    backwards = run("invite", "--lock", "Front Door", *guest, "--from", "2026-12-01",
                    "--until", "2026-11-01")  # fmt: skip
    assert backwards.returncode == 2, backwards.stderr
    # Issue 15.8: in the dates the user typed, not the UTC instants they became
    assert backwards.stderr.startswith("error: --until 2026-11-01 is before --from 2026-12-01"), (
        backwards.stderr
    )
    assert "23:00" not in backwards.stderr and "UTC" not in backwards.stderr
    zeros = run("invite", "--lock", "Front Door", *guest, "--code", "000000")
    assert zeros.returncode == 2 and "--code '000000' is not valid" in zeros.stderr
    bad_day = run("invite", "--lock", "Front Door", *guest, "--days", "mon-fry")
    assert bad_day.returncode == 2
    assert users_called(live_server, "yara@example.com") == []

    # The server refuses the key (Flat 2 has no keypad) after the user was created.
    refused = run("invite", "--lock", "Flat 2", *guest, "--code", "345678")
    assert refused.returncode == 1, refused.stderr
    assert "has none paired" in refused.stderr
    assert "undid what this run had done: removed user yara@example.com" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert users_called(live_server, "yara@example.com") == []

    # A user that existed before is not this run's to remove.
    assert run("users", "add", "zoe@example.com", "--name", "Zoe").returncode == 0
    refused = run("invite", "--lock", "Flat 2", "--email", "zoe@example.com", "--name", "Zoe",
                  "--code", "345678")  # fmt: skip
    assert refused.returncode == 1 and "nothing was created" in refused.stderr
    assert len(users_called(live_server, "zoe@example.com")) == 1

    # The same for a bad row of a CSV.
    path = tmp_path / "guests.csv"
    path.write_text("email,name,lock,code\nyara@example.com,Yara,Flat 2,345678\n", encoding="utf-8")
    done = run("invite", "--csv", str(path))
    assert done.returncode == 1
    assert done.stdout.startswith("row 2: failed: type 13 (keypad code) needs a keypad")
    assert "removed user yara@example.com" in done.stdout
    assert users_called(live_server, "yara@example.com") == []
    for lock in get(live_server, "/smartlock"):
        assert get(live_server, f"/smartlock/{lock['smartlockId']}/auth") == []


def test_running_a_csv_again_is_safe_and_dry_run_changes_nothing(
    live_server: LiveServer, smtp_server: SmtpServer, run, tmp_path: Path
) -> None:
    """Issue 15.4: a row whose user has a key of that name on that lock is left unchanged, or
    updated where it differs, never doubled; --dry-run shows what would happen."""
    lock = keypad_lock(live_server)
    header = "email,name,lock,from,until,days,time,remote,code\n"
    anna = "anna@example.com,Anna,Front Door,2026-12-01,2027-01-31,mon-fri,08:00-18:00,no,\n"
    ben = "ben@example.com,Ben,Front Door,2026-12-01,2027-01-31,mon-fri,08:00-18:00,no,\n"
    cleaner = 'cleaner@example.com,Cleaner,Front Door,,,"sat,sun",,,34567x\n'
    path = tmp_path / "guests.csv"
    path.write_text(header + anna + ben + cleaner, encoding="utf-8")
    first = run("invite", "--csv", str(path))
    assert first.returncode == 1
    assert first.stdout.splitlines()[2].startswith("row 4: failed: code '34567x' is not valid")
    assert len(get(live_server, f"/smartlock/{lock['smartlockId']}/auth")) == 2
    assert len(smtp_server.mailbox.wait_for(2)) == 2

    # Fix the cleaner's code; Ben's window changes; Anna's row stays as it was.
    ben = ben.replace("08:00-18:00", "09:00-17:00")
    cleaner = cleaner.replace("34567x", "345678")
    path.write_text(header + anna + ben + cleaner, encoding="utf-8")
    dry = run("invite", "--csv", str(path), "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0].startswith("row 2: would leave ") and "'Anna'" in lines[0]
    assert lines[0].endswith("unchanged")
    assert lines[1].startswith("row 3: would update ") and lines[1].endswith("(time)")
    assert lines[2] == (
        "row 4: would create keypad code 'Cleaner' for cleaner@example.com (new user) on Front Door"
    )
    assert "nothing was changed" in dry.stderr
    assert len(get(live_server, f"/smartlock/{lock['smartlockId']}/auth")) == 2
    assert users_called(live_server, "cleaner@example.com") == []

    again = run("invite", "--csv", str(path))
    assert again.returncode == 0, again.stdout + again.stderr
    lines = again.stdout.splitlines()
    assert lines[0].startswith("row 2: unchanged anna@example.com key ")
    assert lines[1].startswith("row 3: updated ben@example.com key ") and "(time)" in lines[1]
    assert lines[2].startswith("row 4: ok cleaner@example.com key ")
    assert "1 of 3 guest(s) invited, 1 updated, 1 unchanged, 0 failed" in again.stderr
    keys = get(live_server, f"/smartlock/{lock['smartlockId']}/auth")
    assert sorted(key["name"] for key in keys) == ["Anna", "Ben", "Cleaner"]
    (ben_key,) = [key for key in keys if key["name"] == "Ben"]
    assert (ben_key["allowedFromTime"], ben_key["allowedUntilTime"]) == (540, 1020)
    smtp_server.mailbox.wait_for(4, timeout=3)
    to = [message["To"] for message in smtp_server.mailbox.messages]
    assert to.count("anna@example.com") == 1 and to.count("cleaner@example.com") == 1

    # The same for one guest: a second identical invite leaves the key alone.
    same = run("invite", "--lock", "Front Door", "--email", "anna@example.com", "--name", "Anna",
               "--from", "2026-12-01", "--until", "2027-01-31", "--days", "mon-fri",
               "--time", "08:00-18:00")  # fmt: skip
    assert same.returncode == 0, same.stderr
    assert "key:   unchanged " in same.stdout
    assert len(get(live_server, f"/smartlock/{lock['smartlockId']}/auth")) == 3


def test_invite_in_the_guests_language(
    live_server: LiveServer, smtp_server: SmtpServer, run, tmp_path: Path
) -> None:
    """Issue 15.13: --language and a language column set the user's language, which the mail
    is written in."""
    bad = run("invite", "--lock", "Front Door", "--email", "dora@example.com", "--name", "Dora",
              "--language", "klingon")  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("error: --language 'klingon'")
    assert users_called(live_server, "dora@example.com") == []

    done = run("invite", "--lock", "Front Door", "--email", "dora@example.com", "--name", "Dora",
               "--language", "de")  # fmt: skip
    assert done.returncode == 0, done.stderr
    (user,) = users_called(live_server, "dora@example.com")
    assert user["language"] == "de"
    (message,) = smtp_server.mailbox.wait_for(1)
    assert subject_of(message) == "Ihr Schlüssel für Front Door: Dora"

    path = tmp_path / "guests.csv"
    path.write_text(
        "email,name,lock,language\n"
        "emil@example.com,Emil,Flat 2,de\n"
        "fay@example.com,Fay,Flat 2,en\n"
        "gus@example.com,Gus,Flat 2,xx\n",
        encoding="utf-8",
    )
    done = run("invite", "--csv", str(path))
    assert done.returncode == 1
    assert done.stdout.splitlines()[2].startswith("row 4: failed: language 'xx' is not valid")
    assert users_called(live_server, "emil@example.com")[0]["language"] == "de"
    assert users_called(live_server, "fay@example.com")[0]["language"] == "en"
    assert users_called(live_server, "gus@example.com") == []
    messages = smtp_server.mailbox.wait_for(3)
    subjects = {message["To"]: subject_of(message) for message in messages}
    assert subjects["emil@example.com"] == "Ihr Schlüssel für Flat 2: Emil"
    assert subjects["fay@example.com"] == "Your key to Flat 2: Fay"


def test_an_app_key_without_remote_use_is_flagged_to_the_owner(
    live_server: LiveServer, run, tmp_path: Path
) -> None:
    """Issue 15.14: Keyhouse has no app, so such a key can't be used from the guest link."""
    done = run("invite", "--lock", "Flat 2", "--email", "ida@example.com", "--name", "Ida")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("warning: 'Ida' is an app key without remote use")
    assert "--remote" in done.stderr and "--code" in done.stderr
    for extra in (["--remote"], ["--code", "345678"]):
        lock = "Flat 2" if extra == ["--remote"] else "Front Door"
        done = run("invite", "--lock", lock, "--email", "jo@example.com", "--name", "Jo", *extra)
        assert done.returncode == 0, done.stderr
        assert "warning" not in done.stderr
    done = run("keys", "add", "--lock", "Front Door", "--name", "Ida 2", "--user",
               "ida@example.com")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("warning: 'Ida 2' is an app key without remote use")

    path = tmp_path / "guests.csv"
    path.write_text(
        "email,name,lock,remote\nkim@example.com,Kim,Flat 2,no\nlea@example.com,Lea,Flat 2,yes\n",
        encoding="utf-8",
    )
    done = run("invite", "--csv", str(path))
    assert done.returncode == 0, done.stderr
    assert "warning: 1 app key(s) without remote use (kim@example.com)" in done.stderr
