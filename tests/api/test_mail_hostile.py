"""Issue 11, mail: an international address is refused at creation with a clear 400 (its
domain may be written in any script: it is kept in its IDNA form); an unexpected error before
the hand-over mark ends, after mail_max_attempts attempts, in 'failed' with lastError; after the
mark it is 'unconfirmed', never a resend. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from conftest import SmtpServer, tenant_with, wait_until
from keyhouse.rules.dates import utcnow
from keyhouse.runtime import Runtime
from keyhouse.services import admin
from keyhouse.settings import Settings
from keyhouse.store.models import AccountUser, OutboxMessage


def invites(tenant: Any, **query: str) -> list[dict]:
    answer = tenant.get("/keyhouse/invites", params=query)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_non_ascii_local_part_is_refused_at_creation(store_tenant: Any) -> None:
    answer = store_tenant.put("/account/user", json={"email": "jörg@exämple.com", "name": "J"})
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert (body["field"], body["rule"]) == ("email", "format")
    assert "ASCII" in body["detailMessage"] and "SMTPUTF8" in body["detailMessage"]
    assert store_tenant.get("/account/user").json() == []
    user = store_tenant.create_user("ok@example.com", "Ok")
    answer = store_tenant.post(f"/account/user/{user}", json={"email": "jörg@example.com"})
    assert answer.status_code == 400 and answer.json()["field"] == "email"


def test_a_domain_in_another_script_is_kept_in_its_idna_form(
    tmp_path: Path, store_url: str | None, smtp_server: SmtpServer
) -> None:
    with tenant_with(tmp_path, database_url=store_url, smtp_url=smtp_server.url) as tenant:
        answer = tenant.put("/account/user", json={"email": "joerg@exämple.com", "name": "J"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["email"] == "joerg@xn--exmple-cua.com"
        user = answer.json()["accountUserId"]
        tenant.create_key(tenant.plain_lock, name="J", accountUserId=user, remoteAllowed=True)
        (message,) = smtp_server.mailbox.wait_for(1)
        assert message["To"] == "joerg@xn--exmple-cua.com"
        wait_until(lambda: invites(tenant, status="sent"), what="the invite to be sent")


def test_an_unexpected_error_before_the_hand_over_ends_in_failed(
    tmp_path: Path, store_url: str | None, smtp_server: SmtpServer
) -> None:
    settings = {"mail_retry_seconds": 0.05, "mail_max_attempts": 3}
    with tenant_with(
        tmp_path, database_url=store_url, smtp_url=smtp_server.url, **settings
    ) as tenant:
        user = tenant.create_user("joerg@example.com", "Jörg")
        # An address stored before addresses were checked: smtplib can't encode it (the
        # UnicodeEncodeError of the report), an error that is neither a refusal nor a network
        # failure.
        with tenant.runtime.db.session() as session:
            session.execute(
                update(AccountUser).where(AccountUser.id == user).values(email="jörg@exämple.com")
            )
        tenant.create_key(tenant.plain_lock, name="J", accountUserId=user, remoteAllowed=True)
        (invite,) = wait_until(lambda: invites(tenant, status="failed"), what="'failed'")
        assert invite["attempts"] == 3
        assert "UnicodeEncodeError" in invite["lastError"]
        assert "gave up after 3 attempts" in invite["lastError"]
        assert smtp_server.mailbox.messages == []


def _stale_claim(runtime: Runtime, account_id: int, *, attempts: int, handed_over: bool) -> int:
    """A row as a sender that died leaves it: claimed an hour ago, never finished."""
    long_ago = utcnow() - timedelta(hours=1)
    with runtime.db.session() as session:
        row = OutboxMessage(
            account_id=account_id,
            kind="invite",
            message_id=f"<stale-{attempts}-{int(handed_over)}@keyhouse.test>",
            recipient="guest@example.com",
            subject="Your key",
            body="(sent, not kept)",
            status="sending",
            attempts=attempts,
            claimed_at=long_ago,
            handed_over_at=long_ago if handed_over else None,
        )
        session.add(row)
        session.flush()
        return row.id


def _status(runtime: Runtime, row_id: int) -> tuple[str, str | None]:
    with runtime.db.read() as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None
        return row.status, row.last_error


def test_a_sender_that_keeps_dying_ends_in_failed_and_a_handed_over_one_in_unconfirmed(
    tmp_path: Path, store_url: str | None
) -> None:
    # The store and the sender without the background workers, so nothing else takes the rows.
    runtime = Runtime(Settings(data=tmp_path / "data", database_url=store_url, mail_max_attempts=2))
    try:
        runtime.db.migrate()
        with runtime.db.session() as session:
            account_id = admin.create_account(session, email="owner@example.com").id
        dead = _stale_claim(runtime, account_id, attempts=2, handed_over=False)
        again = _stale_claim(runtime, account_id, attempts=1, handed_over=False)
        handed = _stale_claim(runtime, account_id, attempts=1, handed_over=True)
        runtime.mail.release_stale_claims()
        status, error = _status(runtime, dead)
        assert status == "failed"
        assert error is not None and "2 attempts" in error
        assert _status(runtime, again)[0] == "pending"  # one attempt left: due again
        status, error = _status(runtime, handed)
        assert status == "unconfirmed"
        assert error is not None and "not sent again" in error
    finally:
        runtime.db.dispose()
