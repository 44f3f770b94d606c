"""Delivers outbox e-mail: over SMTP to KEYHOUSE_SMTP_URL, or as .eml files in the data folder."""

from __future__ import annotations

import logging
import smtplib
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import or_, select

from keyhouse.rules.dates import utcnow
from keyhouse.settings import Settings
from keyhouse.store.database import Database
from keyhouse.store.models import OutboxMessage

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300


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


def smtp_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "smtp" or not parts.hostname:
        raise ValueError(f"KEYHOUSE_SMTP_URL {url!r} must look like smtp://host:port")
    return parts.hostname, parts.port or 25


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

    def deliver_due(self) -> int:
        """Send every due message once; return how many went out."""
        sent = 0
        while True:
            with self.db.session() as session:
                row = session.scalars(
                    self._due_query().limit(1).with_for_update(skip_locked=True)
                ).first()
                if row is None:
                    return sent
                row.attempts += 1
                try:
                    self._send(row)
                except PermanentFailure as exc:
                    row.status = "failed"
                    row.last_error = str(exc)
                    log.warning("mail %s failed for good: %s", row.message_id, exc)
                except (OSError, smtplib.SMTPException) as exc:
                    row.last_error = f"{type(exc).__name__}: {exc}"
                    delay = min(2**row.attempts, MAX_BACKOFF_SECONDS)
                    row.next_attempt_at = utcnow() + timedelta(seconds=delay)
                    log.info("mail %s not sent (%s); retry in %ss", row.message_id, exc, delay)
                    return sent
                else:
                    row.status = "sent"
                    row.sent_at = utcnow()
                    row.last_error = None
                    sent += 1

    def _send(self, row: OutboxMessage) -> None:
        message = build_message(row, self.settings.mail_from)
        if not self.settings.smtp_url:
            self._write_eml(row, message)
            return
        host, port = smtp_address(self.settings.smtp_url)
        try:
            with smtplib.SMTP(host, port, timeout=10) as smtp:
                smtp.send_message(message)
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
