"""Rate limits that hold: per token, failed authentications per client address, resends per
key; each a 429 with Retry-After and a sentence that says when to try again."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from conftest import SmtpServer, tenant_with, wait_until
from keyhouse.store.models import SmartlockAuth


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_rate_limited(answer, *words: str) -> None:
    assert answer.status_code == 429, answer.text
    error = answer.json()
    assert error["error"] == "rate_limited" and error["status"] == 429
    assert 1 <= int(answer.headers["retry-after"]) <= 60
    assert f"try again in {answer.headers['retry-after']} s" in error["detailMessage"]
    for word in words:
        assert word in error["detailMessage"], error


def test_each_token_has_its_own_limit(tmp_path: Path) -> None:
    with tenant_with(tmp_path, rate_limit="5/minute") as tenant:
        other = tenant.token_with()
        paths = ["/smartlock", f"/smartlock/{tenant.plain_lock}/auth", "/account/user"]
        for n in range(5):
            assert tenant.get(paths[n % 3]).status_code == 200
        for path in paths:  # the hot path (a lock's keys) counts too
            assert_rate_limited(tenant.get(path), "made too many requests", "at most 5 a minute")
        assert tenant.client.get("/smartlock", headers=bearer(other)).status_code == 200


def test_a_refused_write_changes_nothing(tmp_path: Path) -> None:
    with tenant_with(tmp_path, rate_limit="2/minute") as tenant:
        assert tenant.get("/smartlock").status_code == 200
        assert tenant.get("/smartlock").status_code == 200
        answer = tenant.put(
            f"/smartlock/{tenant.plain_lock}/auth", json={"name": "Late", "remoteAllowed": False}
        )
        assert_rate_limited(answer)
        with tenant.runtime.db.read() as session:
            assert session.scalar(select(func.count()).select_from(SmartlockAuth)) == 0


def test_failed_authentications_are_throttled_per_address_even_for_a_good_token(
    tmp_path: Path,
) -> None:
    with tenant_with(tmp_path, auth_failure_limit="20/minute") as tenant:
        for n in range(20):
            answer = tenant.client.get("/smartlock", headers=bearer(f"kh_guess{n}"))
            assert answer.status_code == 401
        # The guesser's address is now refused before any token is looked at.
        for headers in (bearer("kh_guess-more"), tenant.headers, {}):
            assert_rate_limited(
                tenant.client.get("/smartlock", headers=headers),
                "too many failed authentications from testclient",
            )
        assert_rate_limited(tenant.get(f"/smartlock/{tenant.plain_lock}/auth"))


def test_a_thousand_wrong_tokens_meet_a_wall_by_default(tmp_path: Path) -> None:
    with tenant_with(tmp_path) as tenant:
        statuses = [
            tenant.client.get("/smartlock", headers=bearer(f"kh_{n:04d}")).status_code
            for n in range(1000)
        ]
    assert statuses.count(401) == 60  # KEYHOUSE_AUTH_FAILURE_LIMIT: 60 a minute
    assert statuses.count(429) == 940


def test_resends_are_limited_per_key_with_when_the_next_is_allowed(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    with tenant_with(tmp_path, smtp_url=smtp_server.url, resend_limit="2/hour") as tenant:
        user = tenant.create_user("guest@example.com", "Guest")
        key = tenant.create_key(
            tenant.plain_lock, name="Guest", accountUserId=user, remoteAllowed=False
        )
        other = tenant.create_key(
            tenant.plain_lock, name="Other", accountUserId=user, remoteAllowed=False
        )
        resend = f"/keyhouse/smartlock/{tenant.plain_lock}/auth/{key['id']}/invite"
        assert tenant.post(resend).status_code == 200
        assert tenant.post(resend).status_code == 200
        answer = tenant.post(resend)
        assert answer.status_code == 429, answer.text
        assert "at most 2 an hour" in answer.json()["detailMessage"]
        assert 3590 <= int(answer.headers["retry-after"]) <= 3600
        # Two invites and two resends sent; the refused resend sent nothing.
        wait_until(lambda: len(smtp_server.mailbox.messages) >= 4, what="four mails")
        again = f"/keyhouse/smartlock/{tenant.plain_lock}/auth/{other['id']}/invite"
        assert tenant.post(again).status_code == 200  # another key has its own count
        wait_until(lambda: len(smtp_server.mailbox.messages) >= 5, what="five mails")
        assert len(smtp_server.mailbox.messages) == 5
        # An unknown key is a 404 before anything is counted.
        missing = f"/keyhouse/smartlock/{tenant.plain_lock}/auth/{'0' * 24}/invite"
        assert tenant.post(missing).status_code == 404
