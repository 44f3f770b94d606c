"""KEYHOUSE_SMTP_URL options against real aiosmtpd servers: STARTTLS, smtps, login, sender."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from conftest import MailBox, Tenant, free_port, tenant_with, wait_until
from keyhouse.store.models import OutboxMessage

USER, PASSWORD = "keyhouse@example.com", "s3cret:pass"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cafile(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    # handled=False: aiosmtpd answers a refusal with 535 (handled=True would leave it to us)
    return AuthResult(success=ok, handled=False)


@contextmanager
def mail_server(**options: Any) -> Iterator[tuple[MailBox, int]]:
    box = MailBox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def invite(tenant: Tenant) -> None:
    user = tenant.create_user("guest@example.com", "Guest")
    tenant.create_key(tenant.plain_lock, name="Guest", accountUserId=user, remoteAllowed=False)


def outbox(tenant: Tenant) -> OutboxMessage:
    with tenant.runtime.db.session() as session:
        return session.query(OutboxMessage).one()


def quoted(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def test_starttls_and_login_then_the_mail_arrives_from_mail_from(
    ca: trustme.CA, cafile: str, tmp_path: Path
) -> None:
    options = {
        "tls_context": server_context(ca),
        "require_starttls": True,
        "authenticator": authenticator,
        "auth_require_tls": True,
    }
    with mail_server(**options) as (box, port):
        url = (
            f"smtp://{quoted(USER)}:{quoted(PASSWORD)}@127.0.0.1:{port}"
            f"?starttls=required&cafile={cafile}"
        )
        with tenant_with(tmp_path, smtp_url=url, mail_from="Flat 2 <flat2@example.com>") as tenant:
            invite(tenant)
            (message,) = box.wait_for(1)
            assert message["From"] == "Flat 2 <flat2@example.com>"
            assert message["To"] == "guest@example.com"
            assert wait_until(lambda: outbox(tenant).status == "sent", what="sent")


def test_a_wrong_password_fails_the_mail_with_the_servers_535(
    ca: trustme.CA, cafile: str, tmp_path: Path
) -> None:
    options = {"tls_context": server_context(ca), "authenticator": authenticator}
    with mail_server(**options) as (box, port):
        url = f"smtp://{quoted(USER)}:wrong@127.0.0.1:{port}?cafile={cafile}"
        with tenant_with(tmp_path, smtp_url=url) as tenant:
            invite(tenant)
            row = wait_until(
                lambda: (r := outbox(tenant)).status == "failed" and r, what="a failed login"
            )
    assert box.messages == []
    assert row.attempts == 1  # a refused login is not retried
    assert row.last_error is not None
    assert row.last_error.startswith(f"the mail server refused the login of {USER!r}: 535")
    assert "Authentication credentials invalid" in row.last_error


def test_smtps_speaks_tls_from_the_start(ca: trustme.CA, cafile: str, tmp_path: Path) -> None:
    with mail_server(ssl_context=server_context(ca)) as (box, port):
        url = f"smtps://127.0.0.1:{port}?cafile={cafile}"
        with tenant_with(tmp_path, smtp_url=url) as tenant:
            invite(tenant)
            assert len(box.wait_for(1)) == 1


def test_a_server_certificate_that_is_not_trusted_is_refused(
    ca: trustme.CA, tmp_path: Path
) -> None:
    with (
        mail_server(ssl_context=server_context(ca)) as (box, port),
        tenant_with(tmp_path, smtp_url=f"smtps://127.0.0.1:{port}") as tenant,
    ):
        invite(tenant)
        row = wait_until(lambda: outbox(tenant).last_error and outbox(tenant), what="an error")
        assert "CERTIFICATE_VERIFY_FAILED" in row.last_error
        assert row.status == "pending"  # retried: the operator may fix the CA
        assert box.messages == []


def test_required_starttls_that_is_not_offered_fails_with_the_reason(tmp_path: Path) -> None:
    with mail_server() as (box, port):
        url = f"smtp://127.0.0.1:{port}?starttls=required"
        with tenant_with(tmp_path, smtp_url=url) as tenant:
            invite(tenant)
            row = wait_until(
                lambda: outbox(tenant).status == "failed" and outbox(tenant), what="a failure"
            )
            assert "does not offer STARTTLS" in row.last_error
            assert box.messages == []
