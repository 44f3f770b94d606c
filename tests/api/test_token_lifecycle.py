"""Tokens that expire and can be revoked, listed without their secrets; the owner's own token
API; when a token was last used."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from conftest import Tenant
from keyhouse.rules.dates import utcnow
from keyhouse.services import admin
from keyhouse.store.models import ApiToken, IdempotencyRecord

NOT_AUTHORIZED = "Your access token is not authorized"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_revoked_token_gets_401_saying_it_was_revoked(store_tenant: Tenant) -> None:
    tenant = store_tenant
    with tenant.runtime.db.session() as session:
        secret = admin.create_token(session, account_id=tenant.account_id, name="laptop")
    assert tenant.client.get("/smartlock", headers=bearer(secret)).status_code == 200
    (laptop,) = [t for t in tenant.get("/keyhouse/tokens").json() if t["name"] == "laptop"]
    assert tenant.delete(f"/keyhouse/tokens/{laptop['id']}").status_code == 204
    for path in ("/smartlock", f"/smartlock/{tenant.plain_lock}/auth", "/account/user"):
        answer = tenant.client.get(path, headers=bearer(secret))
        assert answer.status_code == 401, answer.text
        message = answer.json()["detailMessage"]
        assert message.startswith(NOT_AUTHORIZED)
        assert "'laptop' was revoked at" in message, message
    (listed,) = [t for t in tenant.get("/keyhouse/tokens").json() if t["id"] == laptop["id"]]
    assert listed["status"] == "revoked" and listed["revokedDate"]
    # Revoking again changes nothing and is no error.
    assert tenant.delete(f"/keyhouse/tokens/{laptop['id']}").status_code == 204
    again = [t for t in tenant.get("/keyhouse/tokens").json() if t["id"] == laptop["id"]]
    assert again[0]["revokedDate"] == listed["revokedDate"]


def test_an_expired_token_gets_401_saying_when_it_expired(store_tenant: Tenant) -> None:
    tenant = store_tenant
    soon = utcnow() + timedelta(hours=1)
    with tenant.runtime.db.session() as session:
        secret = admin.create_token(
            session, account_id=tenant.account_id, name="short", expires_at=soon
        )
    assert tenant.client.get("/smartlock", headers=bearer(secret)).status_code == 200
    with tenant.runtime.db.session() as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.name == "short")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    for path in ("/smartlock", f"/smartlock/{tenant.plain_lock}/auth"):
        answer = tenant.client.get(path, headers=bearer(secret))
        assert answer.status_code == 401, answer.text
        assert "'short' expired at" in answer.json()["detailMessage"]
    (listed,) = [t for t in tenant.get("/keyhouse/tokens").json() if t["name"] == "short"]
    assert listed["status"] == "expired"


def test_listing_never_shows_a_secret_or_its_hash(tenant: Tenant) -> None:
    answer = tenant.get("/keyhouse/tokens")
    assert answer.status_code == 200
    with tenant.runtime.db.read() as session:
        hashes = list(session.scalars(select(ApiToken.token_hash)))
    assert tenant.token not in answer.text
    assert not any(h in answer.text for h in hashes)
    (only,) = answer.json()
    assert set(only) >= {"id", "name", "scopes", "status", "creationDate"}
    assert "token" not in only


def test_the_owner_creates_tokens_no_stronger_and_no_longer_lived_than_their_own(
    tenant: Tenant,
) -> None:
    narrow = tenant.token_with("account", "smartlock")
    made = tenant.client.put(
        "/keyhouse/tokens",
        headers=bearer(narrow),
        json={"name": "reader", "scopes": ["smartlock"]},
    )
    assert made.status_code == 200, made.text
    new = made.json()
    assert new["scopes"] == ["smartlock"] and new["token"].startswith("kh_")
    assert tenant.client.get("/smartlock", headers=bearer(new["token"])).status_code == 200
    assert tenant.client.get("/smartlock/auth", headers=bearer(new["token"])).status_code == 403

    stronger = tenant.client.put(
        "/keyhouse/tokens",
        headers=bearer(narrow),
        json={"name": "escalate", "scopes": ["smartlock.auth"]},
    )
    assert stronger.status_code == 403, stronger.text
    assert stronger.json()["detailMessage"].startswith("the new token can't have scope(s)")
    # Without scopes: the maker's own (never all).
    default = tenant.client.put("/keyhouse/tokens", headers=bearer(narrow), json={"name": "d"})
    assert default.json()["scopes"] == ["account", "smartlock"]

    with tenant.runtime.db.session() as session:
        mortal = admin.create_token(
            session,
            account_id=tenant.account_id,
            name="mortal",
            expires_at=utcnow() + timedelta(days=1),
        )
    forever = tenant.client.put("/keyhouse/tokens", headers=bearer(mortal), json={"name": "f"})
    assert forever.status_code == 400
    assert "no later than your own token's expiry" in forever.json()["detailMessage"]
    later = (utcnow() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    too_late = tenant.client.put(
        "/keyhouse/tokens", headers=bearer(mortal), json={"name": "f", "expiryDate": later}
    )
    assert too_late.status_code == 400
    sooner = (utcnow() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    fine = tenant.client.put(
        "/keyhouse/tokens", headers=bearer(mortal), json={"name": "f", "expiryDate": sooner}
    )
    assert fine.status_code == 200, fine.text
    assert fine.json()["expiryDate"].startswith(sooner[:16])


def test_tokens_of_another_account_can_be_neither_seen_nor_revoked(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    (theirs,) = other_tenant.get("/keyhouse/tokens").json()
    assert [t["id"] for t in tenant.get("/keyhouse/tokens").json()] != [theirs["id"]]
    answer = tenant.delete(f"/keyhouse/tokens/{theirs['id']}")
    assert answer.status_code == 404
    assert other_tenant.get("/smartlock").status_code == 200


def test_the_token_api_needs_the_account_scope(tenant: Tenant) -> None:
    keys_only = tenant.token_with("smartlock.auth")
    answer = tenant.client.get("/keyhouse/tokens", headers=bearer(keys_only))
    assert answer.status_code == 403
    assert "'account'" in answer.json()["detailMessage"]


def test_last_use_is_recorded_but_at_most_once_a_minute(tenant: Tenant) -> None:
    def last_used():
        with tenant.runtime.db.read() as session:
            return session.scalar(
                select(ApiToken.last_used_at).where(ApiToken.account_id == tenant.account_id)
            )

    assert last_used() is None
    assert tenant.get("/smartlock").status_code == 200
    first = last_used()
    assert first is not None and utcnow() - first < timedelta(seconds=30)
    for _ in range(10):
        tenant.get("/smartlock")
        tenant.get(f"/smartlock/{tenant.plain_lock}/auth")
    assert last_used() == first
    # A minute later (moved back by hand, in a new process's memory), it moves again.
    with tenant.runtime.db.session() as session:
        session.execute(update(ApiToken).values(last_used_at=first - timedelta(minutes=2)))
    tenant.runtime.token_uses._tried.clear()
    tenant.get("/smartlock")
    assert last_used() > first


def test_a_retried_token_create_makes_one_token_and_never_stores_its_secret(
    tenant: Tenant,
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "make-ci-token-1"}
    first = tenant.client.put("/keyhouse/tokens", headers=headers, json={"name": "ci"})
    assert first.status_code == 200, first.text
    secret = first.json()["token"]
    again = tenant.client.put("/keyhouse/tokens", headers=headers, json={"name": "ci"})
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and "token" not in again.json()
    assert [t["name"] for t in tenant.get("/keyhouse/tokens").json()].count("ci") == 1
    with tenant.runtime.db.read() as session:
        stored = b"".join(r.body or b"" for r in session.scalars(select(IdempotencyRecord)))
    assert secret.encode() not in stored


def test_an_expiry_that_is_no_date_is_a_400_naming_it_and_makes_no_token(
    store_tenant: Tenant,
) -> None:
    """Found by the fuzz run on PostgreSQL: the date rule's verdict escaped as a 500."""
    tenant = store_tenant
    before = tenant.get("/keyhouse/tokens").json()
    for expiry in ("000000000000000000000000000000000000000", "tomorrow", "2026-13-45T00:00:00Z"):
        answer = tenant.put("/keyhouse/tokens", json={"name": "bad", "expiryDate": expiry})
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == "expiryDate", answer.json()
    assert tenant.get("/keyhouse/tokens").json() == before
