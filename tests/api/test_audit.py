"""Issue 12: the audit log. Every change to keys, users, invites, tokens and locks is an event
written in the change's own transaction (who, when, what, from where; never a code or a
secret), readable by the account owner at GET /keyhouse/audit, and pruned after the retention
time."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from conftest import Tenant, tenant_with, wait_until
from keyhouse.rules.dates import utcnow
from keyhouse.services import admin, auths
from keyhouse.services.caller import ALL_SCOPES, Caller
from keyhouse.settings import Settings
from keyhouse.store import audit as store_audit
from keyhouse.store.models import ApiToken, AuditEvent, Invite, OutboxMessage

WINDOW = {
    "allowedFromDate": "2026-12-01T00:00:00.000Z",
    "allowedUntilDate": "2027-01-31T23:00:00.000Z",
    "allowedWeekDays": 124,
    "allowedFromTime": 480,
    "allowedUntilTime": 1080,
}


GUEST_LINK = re.compile(r"/guest/([A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])")


def mailed_link_secrets(tenant: Tenant, count: int) -> list[str]:
    """The guest-link secrets in the mails written to the data folder (no SMTP server set)."""
    folder = tenant.runtime.settings.mail_dir

    def found() -> list[str]:
        texts = [path.read_bytes().decode() for path in sorted(folder.glob("*.eml"))]
        secrets = list(dict.fromkeys(GUEST_LINK.findall("\n".join(texts).replace("=\n", ""))))
        return secrets if len(secrets) >= count else []

    return wait_until(found, 10, f"{count} guest links in the mail folder")


def events(tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    answer = tenant.get("/keyhouse/audit", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def last_id(tenant: Tenant) -> int:
    with tenant.runtime.db.read() as session:
        return session.scalar(select(func.max(AuditEvent.id))) or 0


def since(tenant: Tenant, start: int) -> list[dict[str, Any]]:
    """The events after ``start``, oldest first."""
    found = [e for e in events(tenant, limit=1000) if e["id"] > start]
    return sorted(found, key=lambda e: e["id"])


def stored_count(tenant: Tenant) -> int:
    with tenant.runtime.db.read() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def token_id(tenant: Tenant) -> int:
    return _caller(tenant).token_id


def _caller(tenant: Tenant) -> Caller:
    from keyhouse.api.security import caller_for

    with tenant.runtime.db.read() as session:
        return caller_for(session, f"Bearer {tenant.token}", "test")


# --- the seed workflow ------------------------------------------------------------------------


def test_the_seed_workflow_is_in_the_log_in_order(store_tenant: Tenant) -> None:
    tenant = store_tenant
    lock = tenant.keypad_lock
    start = last_id(tenant)
    user = tenant.create_user("guest@example.com", "Guest")
    key = tenant.create_key(
        lock, accountUserId=user, name="Guest December", type=13, code=246813,
        remoteAllowed=False, smartActionsEnabled=False, **WINDOW,
    )  # fmt: skip
    path = f"/smartlock/{lock}/auth/{key['id']}"
    assert tenant.post(path, json={"name": "Guest Dec (ext)"}).status_code == 204
    assert tenant.post(path, json={"enable": False}).status_code == 204  # the seed's word
    assert tenant.delete(path).status_code == 204
    assert tenant.delete(f"/account/user/{user}").status_code == 204

    found = since(tenant, start)
    assert [(e["action"], e["targetType"], e["targetId"]) for e in found] == [
        ("user.create", "user", str(user)),
        ("key.create", "key", key["id"]),
        ("key.update", "key", key["id"]),
        ("key.update", "key", key["id"]),
        ("key.delete", "key", key["id"]),
        ("user.delete", "user", str(user)),
    ]
    for event in found:
        assert event["actor"] == "token"
        assert event["tokenId"] == token_id(tenant)
        assert event["tokenName"] == "api token"
        assert event["source"] == "testclient"  # the client's address as the server saw it
        assert event["date"].endswith("Z")
    created, renamed, disabled, deleted = found[1:5]
    assert created["smartlockId"] == lock
    assert created["before"] is None
    assert created["after"] == {
        "id": key["id"],
        "smartlockId": lock,
        "accountUserId": user,
        "type": 13,
        "name": "Guest December",
        "enabled": True,
        "remoteAllowed": False,
        "smartActionsEnabled": False,
        "code": "(set)",
        **WINDOW,
    }
    # an update holds only what changed: a rename keeps the window, and says so by silence
    assert (renamed["before"], renamed["after"]) == (
        {"name": "Guest December"},
        {"name": "Guest Dec (ext)"},
    )
    assert (disabled["before"], disabled["after"]) == ({"enabled": True}, {"enabled": False})
    assert deleted["after"] is None
    assert deleted["before"]["name"] == "Guest Dec (ext)"
    assert deleted["before"]["code"] == "(set)"
    assert found[0]["after"] == {
        "accountUserId": user,
        "email": "guest@example.com",
        "name": "Guest",
    }
    assert found[5]["before"]["email"] == "guest@example.com"


# --- no secrets -------------------------------------------------------------------------------


def test_no_code_token_or_link_secret_is_in_any_event(tenant: Tenant) -> None:
    user = tenant.create_user("coder@example.com", "Coder")
    key = tenant.create_key(
        tenant.keypad_lock, accountUserId=user, name="Code", type=13, code=135792,
        remoteAllowed=False,
    )  # fmt: skip
    app_key = tenant.create_key(tenant.keypad_lock, accountUserId=user, name="App", type=0,
                                remoteAllowed=True)  # fmt: skip
    path = f"/smartlock/{tenant.keypad_lock}/auth/{key['id']}"
    assert tenant.post(path, json={"code": 975312}).status_code == 204
    answer = tenant.post(f"/keyhouse/smartlock/{tenant.keypad_lock}/auth/{app_key['id']}/invite")
    assert answer.status_code == 200, answer.text
    assert tenant.post("/smartlock/auth", json=[{"id": key["id"], "code": 864213}]).status_code == (
        204
    )

    with tenant.runtime.db.read() as session:
        stored = [
            {"before": e.before, "after": e.after, "name": e.token_name, "source": e.source}
            for e in session.scalars(select(AuditEvent))
        ]
        hashes = list(session.scalars(select(ApiToken.token_hash)))
        hashes += list(session.scalars(select(Invite.link_hash)))
        link_secrets = [
            m.secrets["link_secret"]
            for m in session.scalars(select(OutboxMessage))
            if m.secrets and "link_secret" in m.secrets
        ]
    link_secrets += mailed_link_secrets(tenant, 3)  # the invites of both keys and the resend
    # a guest opens their link: the redemption is an event of the guest
    redeemed = tenant.client.post(f"/guest/{link_secrets[-1]}", follow_redirects=False)
    assert redeemed.status_code == 303, redeemed.text
    with tenant.runtime.db.read() as session:
        stored = [
            {"before": e.before, "after": e.after, "name": e.token_name, "source": e.source}
            for e in session.scalars(select(AuditEvent))
        ]
    text = json.dumps(stored) + json.dumps(events(tenant, limit=1000))
    for secret in ["135792", "975312", "864213", tenant.token, *hashes, *link_secrets]:
        assert secret not in text, secret
    assert "kh_" not in text
    updates = events(tenant, action="key.update", targetId=key["id"])
    assert [(e["before"], e["after"]) for e in updates] == [
        ({"code": "(changed)"}, {"code": "(changed)"})
    ] * 2
    (redeem,) = events(tenant, action="invite.redeem")
    assert (redeem["actor"], redeem["source"], redeem["targetType"]) == (
        "guest",
        "testclient",
        "key",
    )
    assert "tokenId" not in redeem
    (resend,) = events(tenant, action="invite.resend")
    assert resend["targetId"] == app_key["id"]
    assert resend["after"]["email"] == "coder@example.com"
    assert set(resend["after"]) == {"id", "authId", "smartlockId", "accountUserId", "email",
                                    "expiryDate"}  # fmt: skip


# --- nothing recorded for what did not happen -------------------------------------------------


def test_a_refused_change_records_nothing(store_tenant: Tenant) -> None:
    tenant = store_tenant
    lock = tenant.keypad_lock
    user = tenant.create_user()
    key = tenant.create_key(lock, accountUserId=user, name="Kept", type=13, code=345678,
                            remoteAllowed=False)  # fmt: skip
    other = tenant.create_key(lock, accountUserId=user, name="Other", type=13, code=234567,
                              remoteAllowed=False)  # fmt: skip
    before = stored_count(tenant)
    refused = [
        tenant.put(f"/smartlock/{lock}/auth", json={"name": "Bad", "type": 13, "code": 12}),
        tenant.put("/account/user", json={"email": "not an address", "name": "X"}),
        tenant.post(f"/smartlock/{lock}/auth/{key['id']}", json={"name": ""}),
        tenant.post(f"/account/user/{user}", json={"email": "guest@example.com", "name": ""}),
        # a bulk update whose first change is fine and second is refused: neither is made
        tenant.post(
            "/smartlock/auth",
            json=[{"id": key["id"], "name": "Renamed"}, {"id": other["id"], "code": 345678}],
        ),
        tenant.delete("/smartlock/auth", json=[key["id"], "0" * 24]),
        tenant.delete("/account/user/999999"),
    ]
    for answer in refused:
        assert 400 <= answer.status_code < 500, answer.text
    assert refused[4].status_code == 409  # the code is held by the other key
    assert stored_count(tenant) == before
    assert tenant.keys(lock)[0]["name"] == "Kept"


def test_a_rolled_back_write_records_nothing(tenant: Tenant) -> None:
    from keyhouse.schemas.auth import SmartlockAuthUpdate

    user = tenant.create_user()
    key = tenant.create_key(tenant.plain_lock, accountUserId=user, name="Key", remoteAllowed=True)
    before = stored_count(tenant)
    caller = _caller(tenant)

    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned), tenant.runtime.db.session() as session:
        auths.update_key(
            session, caller, tenant.plain_lock, key["id"], SmartlockAuthUpdate(name="Renamed")
        )
        session.flush()
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == before + 1
        raise Abandoned
    assert stored_count(tenant) == before
    assert tenant.keys(tenant.plain_lock)[0]["name"] == "Key"


# --- who may read it --------------------------------------------------------------------------


def test_another_account_sees_only_its_own(tenant: Tenant, other_tenant: Tenant) -> None:
    user = tenant.create_user()
    mine = {e["id"] for e in events(tenant)}
    theirs = events(other_tenant, limit=1000)
    assert theirs and not mine & {e["id"] for e in theirs}
    assert all(e["targetId"] != str(user) for e in theirs)
    assert events(other_tenant, targetType="user", targetId=str(user)) == []
    assert events(other_tenant, smartlockId=tenant.keypad_lock) == []


def test_reading_needs_the_account_scope(tenant: Tenant) -> None:
    keys_only = tenant.token_with(*(s for s in ALL_SCOPES if s != "account"))
    answer = tenant.client.get("/keyhouse/audit", headers={"Authorization": f"Bearer {keys_only}"})
    assert answer.status_code == 403, answer.text
    assert "'account'" in answer.json()["detailMessage"]
    assert tenant.client.get("/keyhouse/audit").status_code == 401


# --- paging and filters -----------------------------------------------------------------------


def test_pages_follow_the_link_header_newest_first(tenant: Tenant) -> None:
    for n in range(7):
        tenant.create_user(f"user{n}@example.com", f"User {n}")
    everything = events(tenant, limit=1000)
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    assert "Link" not in tenant.get("/keyhouse/audit", params={"limit": 1000}).headers
    seen: list[int] = []
    url: str | None = "/keyhouse/audit?limit=3&action=user.create"
    pages = 0
    while url is not None:
        answer = tenant.get(url)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page) <= 3
        seen += [e["id"] for e in page]
        pages += 1
        link = answer.headers.get("Link")
        if link is None:
            break
        match = re.fullmatch(r'<(.+)>; rel="next"', link)
        assert match, link
        url = match.group(1)
        assert "action=user.create" in url and f"before={page[-1]['id']}" in url
    assert pages == 3
    assert seen == [e["id"] for e in everything if e["action"] == "user.create"]
    assert len(seen) == 7


def test_filters(tenant: Tenant) -> None:
    user = tenant.create_user()
    key = tenant.create_key(tenant.plain_lock, accountUserId=user, name="A", remoteAllowed=True)
    tenant.post(f"/smartlock/{tenant.plain_lock}/auth/{key['id']}", json={"name": "B"})
    assert {e["action"] for e in events(tenant, action="key")} == {"key.create", "key.update"}
    assert [e["action"] for e in events(tenant, targetType="key", targetId=key["id"])] == [
        "key.update",
        "key.create",
    ]
    on_lock = events(tenant, smartlockId=tenant.plain_lock)
    assert {e["action"] for e in on_lock} == {"lock.add", "key.create", "key.update"}
    today = utcnow().date().isoformat()
    assert len(events(tenant, since=today)) == len(events(tenant))
    assert events(tenant, until="2000-01-01") == []
    assert events(tenant, since=(utcnow() + timedelta(minutes=5)).isoformat()) == []
    assert events(tenant, action="user.delete") == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"action": "Key!"}, "action"),
        ({"action": "key.update.more"}, "action"),
        ({"targetType": "door"}, "targetType"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-02-30"}, "until"),
        ({"since": "2026-01-01T10:00:00"}, "since"),  # no time zone
        ({"since": "2026-02-01", "until": "2026-01-01"}, "since"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"before": -1}, "before"),
        ({"smartlockId": "x"}, "smartlockId"),
        ({"targetId": "x" * 65}, "targetId"),
    ],
)
def test_bad_filters_are_a_400_naming_the_field(
    tenant: Tenant, params: dict[str, Any], field: str
) -> None:
    answer = tenant.get("/keyhouse/audit", params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field, answer.json()


# --- operator and system ----------------------------------------------------------------------


def test_operator_and_system_changes_are_recorded(tmp_path: Path) -> None:
    with tenant_with(tmp_path, drift_check_seconds=0) as tenant:
        first = events(tenant)
        assert {e["action"] for e in first} == {"token.create", "lock.add"}
        assert {(e["actor"], e["source"]) for e in first} == {("operator", "cli")}
        (token,) = [e for e in first if e["action"] == "token.create"]
        assert token["after"]["name"] == "api token" and "scopes" in token["after"]
        lock = tenant.keypad_lock
        with tenant.runtime.db.session() as session:
            admin.rename_lock(session, lock, "Back Door")
        (renamed,) = events(tenant, action="lock.rename")
        assert (renamed["before"], renamed["after"]) == (
            {"name": "Front Door"},
            {"name": "Back Door"},
        )
        # a key removed on the lock behind the server's back: the repair is the system's
        key = tenant.create_key(lock, name="Code", type=13, code=345678, remoteAllowed=False)
        assert key["syncState"] == "applied", key
        tamper = tenant.post(
            f"/emulator/smartlock/{lock}/tamper", json={"authId": key["authId"], "remove": True}
        )
        assert tamper.status_code == 200, tamper.text
        assert tenant.post(f"/smartlock/{lock}/sync").status_code == 204
        (repair,) = wait_until(lambda: events(tenant, action="lock.repair"), 5, "the repair")
        assert (repair["actor"], repair["targetId"], repair["smartlockId"]) == (
            "system",
            str(lock),
            lock,
        )
        assert repair["after"] == {"rewritten": 1, "removed": 0}
        assert "tokenId" not in repair
        # removing the lock with its keys: each key, then the lock
        with tenant.runtime.db.session() as session:
            admin.remove_lock(session, lock, with_keys=True)
        gone = events(tenant, smartlockId=lock, limit=2)
        assert [(e["action"], e["actor"]) for e in gone] == [
            ("lock.remove", "operator"),
            ("key.delete", "operator"),
        ]
        assert gone[1]["targetId"] == key["id"]


# --- retention --------------------------------------------------------------------------------


def _old_events(tenant: Tenant, *ages_in_days: int) -> list[int]:
    with tenant.runtime.db.session() as session:
        rows = []
        for age in ages_in_days:
            row = store_audit.add(
                session,
                account_id=tenant.account_id,
                actor=store_audit.SYSTEM,
                action="lock.repair",
                target_type="lock",
                target_id=str(tenant.plain_lock),
            )
            row.at = utcnow() - timedelta(days=age)
            rows.append(row)
        session.flush()
        return [row.id for row in rows]


def test_retention_prunes_old_events_in_batches(store_tenant: Tenant) -> None:
    tenant = store_tenant
    assert tenant.runtime.settings.audit_retention_days == 365
    # The housekeeping worker prunes once at start, then hourly: let its first run pass, so
    # the batches counted here are this call's alone.
    wait_until(lambda: tenant.runtime._housekeeping_due > 0, what="the first housekeeping")
    old = _old_events(tenant, *([400] * (store_audit.PRUNE_BATCH + 5)))
    kept = _old_events(tenant, 300, 1)
    assert tenant.runtime.prune_audit() == store_audit.PRUNE_BATCH + 5
    left = {e["id"] for e in events(tenant, limit=1000)}
    assert not left & set(old)
    assert set(kept) <= left
    assert tenant.runtime.prune_audit() == 0


def test_the_housekeeping_worker_prunes_with_the_configured_retention(tmp_path: Path) -> None:
    with tenant_with(tmp_path, audit_retention_days=30) as tenant:
        old, recent = _old_events(tenant, 31, 29)
        tenant.runtime.housekeeping_worker.submit(["audit-retention"])
        wait_until(lambda: old not in {e["id"] for e in events(tenant)}, 5, "the pruning")
        assert recent in {e["id"] for e in events(tenant)}


def test_retention_is_at_least_a_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYHOUSE_AUDIT_RETENTION_DAYS", "0")
    with pytest.raises(ValidationError, match="audit_retention_days"):
        Settings(data=tmp_path)
    monkeypatch.setenv("KEYHOUSE_AUDIT_RETENTION_DAYS", "90")
    assert Settings(data=tmp_path).audit_retention_days == 90


# --- the CLI against a real server ------------------------------------------------------------


def test_keyhouse_audit_lists_the_events_of_a_real_server(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import httpx

    from conftest import start_server

    process, server = start_server(tmp_path / "live")
    try:
        api = httpx.Client(base_url=server.url, headers=server.headers, timeout=30)
        user = api.put("/account/user", json={"email": "g@example.com", "name": "G"}).json()
        lock = server.lock_ids[0]  # Front Door, with a keypad
        body = {"name": "Door code", "type": 13, "code": 456789, "remoteAllowed": False}
        assert api.put(f"/smartlock/{lock}/auth", json=body).status_code == 204
        (key,) = api.get(f"/smartlock/{lock}/auth").json()
        renamed = api.post(f"/smartlock/{lock}/auth/{key['id']}", json={"name": "Cleaner"})
        assert renamed.status_code == 204
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("KEYHOUSE_", "NUKI_"))},
            "KEYHOUSE_CONFIG": str(tmp_path / "config.toml"),
            "KEYHOUSE_URL": server.url,
            "KEYHOUSE_TOKEN": server.token,
            "NO_COLOR": "1",
            "COLUMNS": "250",
        }

        def kh(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "keyhouse", "audit", *args],
                capture_output=True, text=True, timeout=60, env=env, check=False,
            )  # fmt: skip

        table = kh()
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert "action" in lines[0] and "who" in lines[0] and "from" in lines[0]
        text = table.stdout
        for action in ("key.update", "key.create", "user.create", "lock.add", "token.create"):
            assert action in text, text
        assert "name: 'Door code' → 'Cleaner'" in text
        assert "demo token" in text and "127.0.0.1" in text and "system" in text
        assert "456789" not in text
        # newest first: the rename before the creation
        assert text.index("key.update") < text.index("key.create") < text.index("user.create")

        by_key = kh("--key", key["id"], "--json")
        assert by_key.returncode == 0, by_key.stderr
        assert [e["action"] for e in json.loads(by_key.stdout)] == ["key.update", "key.create"]
        by_name = kh("--key", "Cleaner", "--lock", "Front Door", "--action", "key.create", "--json")
        assert [e["targetId"] for e in json.loads(by_name.stdout)] == [key["id"]]
        on_lock = json.loads(kh("--lock", "Front Door", "--json").stdout)
        assert {e["action"] for e in on_lock} == {"lock.add", "key.create", "key.update"}
        users = json.loads(kh("--action", "user", "--since", "2020-01-01", "--json").stdout)
        assert [e["targetId"] for e in users] == [str(user["accountUserId"])]
        assert len(json.loads(kh("--limit", "2", "--json").stdout)) == 2

        bad = kh("--since", "last week")
        assert bad.returncode == 1
        assert bad.stderr.startswith("error: since") and "Traceback" not in bad.stderr
        no_lock = kh("--key", "Cleaner")
        assert no_lock.returncode == 2 and "--lock" in no_lock.stderr
    finally:
        process.terminate()
        process.wait(10)
