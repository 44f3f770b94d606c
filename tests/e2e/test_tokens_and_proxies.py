"""Real processes: `keyhouse admin token create/list/revoke` against a running server's
store (a revocation holds at once), and the trusted-proxy rule for X-Forwarded-For."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from conftest import LiveServer, database_environment, running_server


def keyhouse(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYHOUSE_")}
    env.update(database_environment(data))
    return subprocess.run(
        [sys.executable, "-m", "keyhouse", "--data", str(data), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@contextmanager
def server(tmp_path: Path, env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    with running_server(tmp_path / "data", env) as live:
        yield live


def test_tokens_are_made_listed_and_revoked_from_the_command_line(tmp_path: Path) -> None:
    with server(tmp_path) as live:
        made = keyhouse(
            live.data, "admin", "token", "create", "--account", "1", "--name", "ci",
            "--expires", "30d", "--scope", "smartlock",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert "valid until" in made.stdout
        secret = made.stdout.strip().splitlines()[-1]
        ci = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(f"{live.url}/smartlock", headers=ci).status_code == 200

        listed = keyhouse(live.data, "admin", "token", "list", "--account", "1", "--json")
        assert listed.returncode == 0, listed.stderr
        tokens = json.loads(listed.stdout)
        assert [t["name"] for t in tokens] == ["demo token", "ci"]
        demo, mine = tokens
        assert mine["scopes"] == ["smartlock"] and mine["status"] == "active"
        assert mine["expiryDate"] and "expiryDate" not in demo  # the demo token never expires
        assert mine["lastUsedDate"]  # it was just used
        assert secret not in listed.stdout and live.token not in listed.stdout
        table = keyhouse(live.data, "admin", "token", "list", "--account", "1")
        assert "ci" in table.stdout and "never" in table.stdout  # demo: never expires

        revoked = keyhouse(live.data, "admin", "token", "revoke", str(mine["id"]))
        assert revoked.returncode == 0, revoked.stderr
        assert f"Revoked token {mine['id']} ('ci')" in revoked.stdout
        # The running server holds no cache that outlives it: the next request is refused.
        answer = httpx.get(f"{live.url}/smartlock", headers=ci)
        assert answer.status_code == 401
        assert "'ci' was revoked at" in answer.json()["detailMessage"]
        again = keyhouse(live.data, "admin", "token", "revoke", str(mine["id"]))
        assert "was already revoked" in again.stdout
        assert httpx.get(f"{live.url}/smartlock", headers=live.headers).status_code == 200


@pytest.mark.parametrize(
    ("expires", "says"),
    [
        ("30 days", "neither a duration"),
        ("0d", "at least 1"),
        ("2001-01-01", "in the past"),
    ],
)
def test_a_bad_expiry_is_refused_before_anything_is_made(
    tmp_path: Path, expires: str, says: str
) -> None:
    data = tmp_path / "data"
    assert keyhouse(data, "admin", "account", "create", "--email", "o@example.com").returncode == 0
    done = keyhouse(data, "admin", "token", "create", "--account", "1", "--expires", expires)
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr
    listed = keyhouse(data, "admin", "token", "list", "--account", "1")
    assert "has no tokens" in listed.stdout


def guesses(live: LiveServer, count: int) -> list[int]:
    """Unknown guest links, each from a different X-Forwarded-For address."""
    return [
        httpx.get(
            f"{live.url}/guest/{'A' * 42}{n % 10}",
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        ).status_code
        for n in range(count)
    ]


def test_x_forwarded_for_is_not_believed_by_default(tmp_path: Path) -> None:
    with server(tmp_path) as live:
        assert "X-Forwarded-For is believed from: no proxy" in "\n".join(live.output)
        statuses = guesses(live, 12)
    # The guest page allows 5 unknown links a minute per address: rotating the header
    # changes nothing, every guess comes from 127.0.0.1.
    assert statuses[:5] == [404] * 5
    assert set(statuses[5:]) == {429}


def test_x_forwarded_for_is_believed_from_a_trusted_proxy(tmp_path: Path) -> None:
    with server(tmp_path, {"KEYHOUSE_TRUSTED_PROXIES": "127.0.0.1"}) as live:
        statuses = guesses(live, 12)
        # Each forwarded address counts on its own…
        assert statuses == [404] * 12
        # …and one address still meets its limit.
        same = [
            httpx.get(
                f"{live.url}/guest/{'A' * 43}", headers={"X-Forwarded-For": "198.51.100.7"}
            ).status_code
            for _ in range(7)
        ]
        assert same[:5] == [404] * 5 and same[5:] == [429, 429]


def test_a_bad_trusted_proxy_setting_stops_the_start_with_a_sentence(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYHOUSE_")}
    env["KEYHOUSE_TRUSTED_PROXIES"] = "the load balancer"
    done = subprocess.run(
        [sys.executable, "-m", "keyhouse", "--data", str(tmp_path / "d"), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 2
    assert "'the load balancer' is not an IP address or network" in done.stderr
    assert "Traceback" not in done.stderr
