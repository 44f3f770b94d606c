"""Delivers outbox e-mail: over SMTP to KEYHOUSE_SMTP_URL, or as .eml files in the data folder."""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy import or_, select, update

from keyhouse.outbox.smtp_url import SmtpTarget, parse_smtp_url
from keyhouse.rules.dates import utcnow
from keyhouse.services.invites import redact_invite_code
from keyhouse.settings import Settings
from keyhouse.store.database import Database
from keyhouse.store.models import OutboxMessage

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300
STALE_CLAIM = timedelta(minutes=10)


class PermanentFailure(Exception):
    """The mail server refused the message for good (5xx)."""


def build_message(row: OutboxMessage, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row.recipient
    message["Subject"] = row.subject
    message["Message-ID"] = row.message_id
    message["Date"] = format_datetime(row.created_at)
    message.set_content(row.body)
    return message


def tls_context(target: SmtpTarget) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=target.cafile)
    if not target.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@contextmanager
def smtp_connection(target: SmtpTarget) -> Iterator[smtplib.SMTP]:
    """A connection to the mail server: TLS as the URL asks, logged in if it names a user."""
    if target.implicit_tls:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            target.host, target.port, timeout=10, context=tls_context(target)
        )
    else:
        smtp = smtplib.SMTP(target.host, target.port, timeout=10)
    with smtp:
        if not target.implicit_tls and target.starttls != "no":
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=tls_context(target))
                smtp.ehlo()
            elif target.starttls == "required":
                raise PermanentFailure(
                    f"the mail server {target.host}:{target.port} does not offer STARTTLS, "
                    "which KEYHOUSE_SMTP_URL requires (starttls=required)"
                )
        if target.username:
            smtp.login(target.username, target.password or "")
        yield smtp


class MailSender:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def _due_query(self):  # type: ignore[no-untyped-def]
        now = utcnow()
        return (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == "pending",
                or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now),
            )
            .order_by(OutboxMessage.id)
        )

    def has_due(self) -> bool:
        with self.db.session() as session:
            return session.scalars(self._due_query().limit(1)).first() is not None

    def _claim(self) -> OutboxMessage | None:
        """Take the oldest due message for this sender; None when nothing is due.

        The claim is a conditional UPDATE (pending -> sending), so two senders, in one process
        or several, never both take a message, on SQLite as on PostgreSQL. A claim left behind
        by a sender that died is released after ``STALE_CLAIM``.
        """
        while True:
            with self.db.session() as session:
                session.execute(
                    update(OutboxMessage)
                    .where(
                        OutboxMessage.status == "sending",
                        OutboxMessage.claimed_at < utcnow() - STALE_CLAIM,
                    )
                    .values(status="pending")
                )
                row = session.scalars(self._due_query().limit(1)).first()
                if row is None:
                    return None
                claimed = session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row.id, OutboxMessage.status == "pending")
                    .values(
                        status="sending",
                        claimed_at=utcnow(),
                        attempts=OutboxMessage.attempts + 1,
                    )
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    session.refresh(row)
                    return row

    def deliver_due(self) -> int:
        """Send every due message once; return how many went out. SMTP runs outside any
        transaction, between the claim and the record of its outcome."""
        sent = 0
        while (row := self._claim()) is not None:
            outcome: dict[str, object]
            try:
                self._send(row)
            except PermanentFailure as exc:
                log.warning("mail %s failed for good: %s", row.message_id, exc)
                outcome = {"status": "failed", "last_error": str(exc)}
            except (OSError, smtplib.SMTPException) as exc:
                delay = min(2**row.attempts, MAX_BACKOFF_SECONDS)
                log.info("mail %s not sent (%s); retry in %ss", row.message_id, exc, delay)
                outcome = {
                    "status": "pending",
                    "last_error": f"{type(exc).__name__}: {exc}",
                    "next_attempt_at": utcnow() + timedelta(seconds=delay),
                }
                self._record(row.id, outcome)
                return sent
            else:
                body = redact_invite_code(row.body) if row.kind == "invite_mail" else row.body
                outcome = {"status": "sent", "sent_at": utcnow(), "last_error": None, "body": body}
                sent += 1
            self._record(row.id, outcome)
        return sent

    def _record(self, message_id: int, outcome: dict[str, object]) -> None:
        with self.db.session() as session:
            session.execute(
                update(OutboxMessage).where(OutboxMessage.id == message_id).values(**outcome)
            )

    def _send(self, row: OutboxMessage) -> None:
        message = build_message(row, self.settings.mail_from)
        if not self.settings.smtp_url:
            self._write_eml(row, message)
            return
        target = parse_smtp_url(self.settings.smtp_url)
        try:
            with smtp_connection(target) as smtp:
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentFailure(
                f"the mail server refused the login of {target.username!r}: {exc.smtp_code} "
                f"{exc.smtp_error.decode(errors='replace')}"
            ) from exc
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                text = (
                    exc.smtp_error.decode(errors="replace")
                    if isinstance(exc.smtp_error, bytes)
                    else str(exc.smtp_error)
                )
                raise PermanentFailure(f"{exc.smtp_code} {text}") from exc
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            if 500 <= code < 600:
                raise PermanentFailure(f"{code} {text.decode(errors='replace')}") from exc
            raise

    def _write_eml(self, row: OutboxMessage, message: EmailMessage) -> Path:
        folder = self.settings.mail_dir
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{row.id:06d}-invite.eml"
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(bytes(message))
        temporary.replace(path)
        return path
