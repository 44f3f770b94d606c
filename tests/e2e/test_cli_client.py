"""`keyhouse login/locks/users/keys/log/lock/unlock` as subprocesses against a real server."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import LiveServer, start_server, wait_until


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a user with an empty home and config, no token, no colours."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KEYHOUSE_", "NUKI_")) and k != "COLUMNS"
    }
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(
        HOME=str(home),
        KEYHOUSE_CONFIG=str(tmp_path / "config" / "config.toml"),
        NO_COLOR="1",
        COLUMNS="250",
    )
    env.update(extra)
    return env


def kh(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keyhouse", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )


def one_sentence(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def env(tmp_path: Path, live_server: LiveServer) -> dict[str, str]:
    return clean_env(tmp_path, KEYHOUSE_URL=live_server.url, KEYHOUSE_TOKEN=live_server.token)


def lock_id(server: LiveServer, name: str) -> int:
    locks = httpx.get(f"{server.url}/smartlock", headers=server.headers).json()
    return next(lock["smartlockId"] for lock in locks if lock["name"] == name)


def lock_state(server: LiveServer, smartlock_id: int) -> int:
    answer = httpx.get(f"{server.url}/smartlock/{smartlock_id}", headers=server.headers)
    return answer.json()["state"]["state"]


def test_login_saves_a_profile_and_locks_use_it(tmp_path: Path, live_server: LiveServer) -> None:
    env = clean_env(tmp_path)
    done = kh(env, "login", "--url", live_server.url, "--token", live_server.token)
    assert done.returncode == 0, done.stderr
    config = Path(env["KEYHOUSE_CONFIG"])
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "[profiles.default]" in config.read_text()
    assert live_server.token in config.read_text()

    done = kh(env, "locks")
    assert done.returncode == 0, done.stderr
    assert "Front Door" in done.stdout and "Flat 2" in done.stdout
    assert "smartlockId" in done.stdout and "\x1b[" not in done.stdout
    listed = json.loads(kh(env, "locks", "--json").stdout)
    assert sorted(lock["name"] for lock in listed) == ["Flat 2", "Front Door"]

    done = kh(
        env, "--profile", "work", "login", "--url", live_server.url, "--token", live_server.token
    )
    assert done.returncode == 0, done.stderr
    assert "[profiles.work]" in config.read_text()
    assert kh(env, "--profile", "work", "locks").returncode == 0


def test_bad_token_and_no_token_exit_4(tmp_path: Path, live_server: LiveServer) -> None:
    env = clean_env(tmp_path)
    done = kh(env, "login", "--url", live_server.url, "--token", "kh_not_a_real_token")
    assert done.returncode == 4
    one_sentence(done)
    assert not Path(env["KEYHOUSE_CONFIG"]).exists()

    done = kh(env, "locks")
    assert done.returncode == 4
    assert "no API token" in one_sentence(done)

    done = kh({**env, "KEYHOUSE_URL": live_server.url, "KEYHOUSE_TOKEN": "kh_nope"}, "users")
    assert done.returncode == 4
    one_sentence(done)


def test_users_and_keys_from_add_to_rm(env: dict[str, str], live_server: LiveServer) -> None:
    front = lock_id(live_server, "Front Door")
    done = kh(env, "users", "add", "guest@example.com", "--name", "Guest", "--language", "de")
    assert done.returncode == 0, done.stderr
    done = kh(env, "users")
    assert done.returncode == 0 and "guest@example.com" in done.stdout
    (user,) = [u for u in json.loads(kh(env, "users", "--json").stdout) if u["name"] == "Guest"]

    done = kh(
        env,
        "keys", "add", "--lock", "Front Door", "--name", "December guest",
        "--user", "guest@example.com", "--days", "mon-fri", "--time", "08:00-18:00",
        "--from", "2026-12-01", "--until", "2027-01-31", "--wait",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "applied" in done.stdout
    assert "Mon–Fri, 08:00–18:00, 1 Dec 2026 – 31 Jan 2027" in done.stdout

    keys = json.loads(kh(env, "keys", "--json", "--user", "guest@example.com").stdout)
    (key,) = keys
    assert key["accountUserId"] == user["accountUserId"]
    assert key["syncState"] == "applied"
    assert (key["allowedWeekDays"], key["allowedFromTime"], key["allowedUntilTime"]) == (
        124,
        480,
        1080,
    )
    assert key["allowedFromDate"] == "2026-11-30T23:00:00.000Z"
    assert key["allowedUntilDate"] == "2027-01-31T23:00:00.000Z"
    assert key["remoteAllowed"] is False

    listing = kh(env, "keys", "--lock", "Front Door")
    assert listing.returncode == 0 and "December guest" in listing.stdout
    assert "guest@example.com" in listing.stdout

    done = kh(
        env, "keys", "edit", "--lock", "Front Door", "December guest", "--name", "Winter guest"
    )
    assert done.returncode == 0, done.stderr
    after = httpx.get(
        f"{live_server.url}/smartlock/{front}/auth/{key['id']}", headers=live_server.headers
    ).json()
    assert after["name"] == "Winter guest"
    for field in ("allowedFromDate", "allowedUntilDate", "allowedWeekDays", "allowedFromTime"):
        assert after[field] == key[field]

    done = kh(env, "keys", "disable", "--lock", str(front), key["id"], "--wait", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["enabled"] is False
    done = kh(env, "keys", "enable", "--lock", "front door", "Winter guest")
    assert done.returncode == 0, done.stderr

    done = kh(env, "keys", "rm", "--lock", "Front Door", "Winter guest", "--wait")
    assert done.returncode == 0, done.stderr
    gone = httpx.get(
        f"{live_server.url}/smartlock/{front}/auth/{key['id']}", headers=live_server.headers
    )
    assert gone.status_code == 404
    assert json.loads(kh(env, "keys", "--json", "--lock", "Front Door").stdout) == []

    done = kh(env, "users", "rm", "guest@example.com")
    assert done.returncode == 0, done.stderr
    assert "guest@example.com" not in kh(env, "users").stdout


def test_keypad_code_key_and_partial_edit(env: dict[str, str], live_server: LiveServer) -> None:
    done = kh(
        env, "keys", "add", "--lock", "Front Door", "--name", "Cleaner", "--code", "345678",
        "--days", "sat,sun", "--time", "09:00-12:00", "--wait", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (key,) = json.loads(done.stdout)
    assert (key["type"], key["code"], key["allowedWeekDays"]) == (13, 345678, 3)
    done = kh(
        env, "keys", "edit", "--lock", "Front Door", "Cleaner", "--days", "mon,wed-fri", "--json"
    )
    assert done.returncode == 0, done.stderr
    (edited,) = json.loads(done.stdout)
    assert edited["allowedWeekDays"] == 64 + 16 + 8 + 4
    assert (edited["name"], edited["allowedFromTime"], edited["allowedUntilTime"]) == (
        "Cleaner",
        540,
        720,
    )


def test_lock_and_unlock_change_the_state_and_show_in_the_log(
    env: dict[str, str], live_server: LiveServer
) -> None:
    front = lock_id(live_server, "Front Door")
    done = kh(env, "unlock", "Front Door")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: lock_state(live_server, front) == 3, what="unlocked")
    done = kh(env, "lock", str(front))
    assert done.returncode == 0, done.stderr
    wait_until(lambda: lock_state(live_server, front) == 1, what="locked")

    done = kh(env, "log", "--lock", "Front Door", "--limit", "5")
    assert done.returncode == 0, done.stderr
    assert "unlock" in done.stdout and "lock" in done.stdout and "Front Door" in done.stdout
    entries = json.loads(kh(env, "log", "--json", "--limit", "2").stdout)
    assert [entry["action"] for entry in entries] == [2, 1]  # newest first


def test_errors_are_one_sentence_with_exit_codes(env: dict[str, str]) -> None:
    done = kh(env, "keys", "--lock", "Back Door")
    assert done.returncode == 2
    assert "Back Door" in one_sentence(done)

    done = kh(env, "users", "rm", "nobody@example.com")
    assert done.returncode == 2
    one_sentence(done)
    done = kh(env, "keys", "--user", "999")
    assert done.returncode == 2
    assert one_sentence(done) == "error: no user '999': list them with 'keyhouse users'"

    done = kh(env, "keys", "add", "--lock", "Front Door", "--name", "Bad", "--code", "123456")
    assert done.returncode == 2  # checked before anything is sent: a usage error
    assert "must not start with 12" in one_sentence(done)

    done = kh(
        env,
        "keys",
        "add",
        "--lock",
        "Front Door",
        "--name",
        "X",
        "--code",
        "345678",
        "--days",
        "funday",
    )
    assert done.returncode == 2
    assert "--days" in one_sentence(done)

    done = kh(
        env,
        "keys",
        "add",
        "--lock",
        "Front Door",
        "--name",
        "X",
        "--code",
        "345678",
        "--until",
        "soon",
    )
    assert done.returncode == 2
    assert "--until" in one_sentence(done)

    done = kh(env, "keys", "add", "--lock", "Front Door", "--name", "No user")
    assert done.returncode == 2
    one_sentence(done)


@pytest.mark.sqlite_only("it makes a data folder's store anew by deleting its SQLite file")
def test_serve_writes_a_local_profile_on_first_start(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    config = Path(env["KEYHOUSE_CONFIG"])
    process, server = start_server(tmp_path / "data", env)
    try:
        assert config.exists(), "\n".join(server.output)
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert any("profile 'local'" in line for line in server.output)
        done = kh(env, "locks")
        assert done.returncode == 0, done.stderr
        assert "Front Door" in done.stdout and "Flat 2" in done.stdout
    finally:
        process.terminate()
        process.wait(10)

    # A second server (a new data folder) keeps the profile, and says so (issue 15.6).
    before = config.read_text()
    first_url = server.url
    process, other = start_server(tmp_path / "other", env)
    try:
        assert other.token and other.token not in config.read_text()
        assert config.read_text() == before
        (line,) = [line for line in other.output if "profile 'local'" in line.lower()]
        assert line.startswith(f"Profile 'local' kept: it points at {first_url}, data folder ")
        assert f"'keyhouse login --name local --url {other.url} --token {other.token}'" in line
    finally:
        process.terminate()
        process.wait(10)

    # The first data folder, its store made anew: its profile follows the new token.
    (tmp_path / "data" / "keyhouse.db").unlink()
    process, again = start_server(tmp_path / "data", env)
    try:
        assert any(line.startswith("Updated profile 'local'") for line in again.output)
        assert again.token in config.read_text() and again.url in config.read_text()
        done = kh(env, "locks")
        assert done.returncode == 0, done.stderr
    finally:
        process.terminate()
        process.wait(10)

    # A config file with only another profile gets 'local' beside it; the default stays.
    config.write_text('default = "work"\n\n[profiles.work]\nurl = "http://x"\ntoken = "kh_x"\n')
    process, fresh = start_server(tmp_path / "fresh", env)
    try:
        text = config.read_text()
        assert 'default = "work"' in text and fresh.token in text
        assert any("keyhouse --profile local locks" in line for line in fresh.output)
    finally:
        process.terminate()
        process.wait(10)


WINDOW = "Mon–Fri, 08:00–18:00, 1 Dec 2026 – 31 Jan 2027, Europe/Vienna time"


def test_key_tables_show_whole_ids_and_windows_at_any_width(
    env: dict[str, str], live_server: LiveServer
) -> None:
    """Issue 15.10: at 80 columns no id is cut and no window wraps; wider, a table; without a
    terminal (and no COLUMNS), nothing is cut either."""
    done = kh(env, "users", "add", "anna@example.com", "--name", "Anna")
    assert done.returncode == 0, done.stderr
    for name in ("Anna", "Anna 2"):
        done = kh(env, "keys", "add", "--lock", "Front Door", "--name", name,
                  "--user", "anna@example.com", "--from", "2026-12-01", "--until", "2027-01-31",
                  "--days", "mon-fri", "--time", "08:00-18:00")  # fmt: skip
        assert done.returncode == 0, done.stderr
    ids = [key["id"] for key in json.loads(kh(env, "keys", "--json").stdout)]
    assert len(ids) == 2

    narrow = kh({**env, "COLUMNS": "80"}, "keys")
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), narrow.stdout
    for key_id in ids:
        assert any(line.startswith(key_id) for line in lines), narrow.stdout
    assert sum(WINDOW in line for line in lines) == 2, narrow.stdout
    # an id from the table is what the other commands take
    done = kh(env, "keys", "disable", "--lock", "Front Door", ids[0])
    assert done.returncode == 0, done.stderr
    # …and so is a unique start of one (ids of one lock share their first characters)
    prefix = next(ids[1][:n] for n in range(6, 25) if not ids[0].startswith(ids[1][:n]))
    done = kh(env, "keys", "disable", "--lock", "Front Door", prefix)
    assert done.returncode == 0, done.stderr
    assert all(not k["enabled"] for k in json.loads(kh(env, "keys", "--json").stdout))

    wide = kh({**env, "COLUMNS": "200"}, "keys")
    header = wide.stdout.splitlines()[0]
    assert "window" in header and "syncState" in header
    rows = wide.stdout.splitlines()[2:]
    assert len(rows) == 2 and all(WINDOW in row for row in rows)

    piped = {k: v for k, v in env.items() if k != "COLUMNS"}
    done = kh(piped, "keys")
    assert len(done.stdout.splitlines()) == 4 and all(i in done.stdout for i in ids)


def test_small_things(env: dict[str, str], tmp_path: Path) -> None:
    """Issue 15.11: --version, no <bool> after flags, "no entries", and hints that name
    `keyhouse login` and the server's address."""
    done = kh(env, "--version")
    assert done.returncode == 0 and done.stdout.startswith("keyhouse ")
    for command in (["--help"], ["keys", "add", "--help"], ["invite", "--help"]):
        done = kh(env, *command)
        assert done.returncode == 0 and "<bool>" not in done.stdout, command

    done = kh(env, "log")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "no entries\n"
    done = kh(env, "keys")
    assert done.stdout == "no keys\n"

    nobody = clean_env(tmp_path)
    done = kh(nobody, "locks")
    assert done.returncode == 4
    sentence = one_sentence(done)
    assert "keyhouse login --url URL --token TOKEN" in sentence
    assert "save_profile" not in sentence

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    done = kh({**nobody, "KEYHOUSE_URL": url, "KEYHOUSE_TOKEN": "kh_x"}, "locks")
    assert done.returncode == 1
    assert f"is the server running at {url}?" in one_sentence(done)
    done = kh(nobody, "login", "--url", url, "--token", "kh_x")
    assert done.returncode == 1
    assert f"is the server running at {url}?" in one_sentence(done)

    for bad_url in ("notaurl", "http://[::1"):
        done = kh(nobody, "login", "--url", bad_url, "--token", "kh_x")
        assert done.returncode == 2
        assert one_sentence(done).startswith(f"error: --url {bad_url!r} is not a server address")
        done = kh({**nobody, "KEYHOUSE_URL": bad_url, "KEYHOUSE_TOKEN": "kh_x"}, "locks")
        assert done.returncode == 2
        assert f"the server URL {bad_url!r} is not a server address" in one_sentence(done)

    broken = Path(nobody["KEYHOUSE_CONFIG"])
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text("default = [\n")
    done = kh(nobody, "locks")
    assert done.returncode == 1
    assert f"the config file {broken} is not valid TOML" in one_sentence(done)


def test_date_errors_speak_the_users_dates(env: dict[str, str]) -> None:
    """Issue 15.8: the key's other end in the lock's days, not UTC instants."""
    done = kh(env, "keys", "add", "--lock", "Front Door", "--name", "Dates", "--code", "345678",
              "--from", "2026-12-01", "--until", "2027-01-31")  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = kh(env, "keys", "edit", "--lock", "Front Door", "Dates", "--until", "2026-11-01")
    assert done.returncode == 2
    assert one_sentence(done).startswith(
        "error: --until 2026-11-01 is before the key's first day, 2026-12-01 (Europe/Vienna)"
    )
    done = kh(env, "keys", "edit", "--lock", "Front Door", "Dates", "--from", "2027-02-01")
    assert done.returncode == 2
    assert "after the key's last day, 2027-01-31 (Europe/Vienna)" in one_sentence(done)
    done = kh(env, "keys", "add", "--lock", "Front Door", "--name", "Back", "--code", "345679",
              "--from", "2026-12-01", "--until", "2026-11-01")  # fmt: skip
    assert done.returncode == 2
    sentence = one_sentence(done)
    assert sentence.startswith("error: --until 2026-11-01 is before --from 2026-12-01")
    assert "UTC" not in sentence
