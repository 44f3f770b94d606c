"""Delivers outbox e-mail: over SMTP to KEYHOUSE_SMTP_URL, or as .eml files in the data folder."""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from io import BytesIO
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select, update

from keyhouse.mail.render import render_mail
from keyhouse.outbox.smtp_url import SmtpTarget, parse_smtp_url
from keyhouse.rules.dates import utcnow
from keyhouse.settings import Settings
from keyhouse.store.database import Database
from keyhouse.store.files import private_folder, write_private
from keyhouse.store.models import OutboxMessage

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300
GUEST_PATH = "/guest/"


class PermanentFailure(Exception):
    """The mail server refused the message for good (5xx)."""


class HandedOverUnconfirmed(Exception):
    """The connection broke after the message was handed over, before the server's answer."""


def build_message(row: OutboxMessage, sender: str, public_url: str) -> EmailMessage:
    """The mail as it goes out: text and HTML rendered now, with the row's secrets.

    The Message-ID and Date come from the row, so every attempt sends the same message.
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row.recipient
    message["Message-ID"] = row.message_id
    message["Date"] = format_datetime(row.created_at)
    if row.context is None:  # a mail queued before templates: its text as stored
        message["Subject"] = row.subject
        message.set_content(row.body)
        return message
    values = {**row.context, **(row.secrets or {})}
    if "link_secret" in values:
        values["guest_url"] = public_url.rstrip("/") + GUEST_PATH + values["link_secret"]
    rendered = render_mail(row.kind, row.language, values)
    message["Subject"] = rendered.subject
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    message["Content-Language"] = row.language  # after the parts: set_content clears Content-*
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


UNCONFIRMED = (
    "Keyhouse lost the mail server while it was taking this message (the sender stopped or "
    "the connection broke after the message was handed over), so it may have arrived; it is "
    "not sent again by itself, to never send it twice. Resend the invite if it did not arrive."
)


class MailSender:
    """Sends the outbox: each message at most once, retried while the server is unreachable.

    A message goes pending -> sending (claimed) -> sent | failed | unconfirmed. Just before
    the message's content is handed to the mail server (SMTP DATA), the row records
    ``handed_over_at``. If the sender dies before that, the claim times out and the message is
    sent again, safely; if it dies after, nobody can know whether the server kept it, so the
    message becomes "unconfirmed" instead of risking a second copy.
    """

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

    def _abandoned(self) -> tuple[Any, ...]:
        """Claims older than the claim timeout: their sender died."""
        stale = utcnow() - timedelta(seconds=self.settings.mail_claim_timeout_seconds)
        return (OutboxMessage.status == "sending", OutboxMessage.claimed_at < stale)

    def has_due(self) -> bool:
        """Whether a message is due now, or a dead sender's claim waits to be released."""
        with self.db.session() as session:
            if session.scalars(self._due_query().limit(1)).first() is not None:
                return True
            abandoned = select(OutboxMessage.id).where(*self._abandoned()).limit(1)
            return session.scalars(abandoned).first() is not None

    def release_stale_claims(self) -> None:
        """Claims older than the claim timeout belong to a sender that died: a message it never
        handed over is due again; one it handed over becomes unconfirmed."""
        abandoned = self._abandoned()
        with self.db.session() as session:
            if session.scalars(select(OutboxMessage.id).where(*abandoned).limit(1)).first() is None:
                return
            limit = self.settings.mail_max_attempts
            session.execute(
                update(OutboxMessage)
                .where(
                    *abandoned,
                    OutboxMessage.handed_over_at.is_(None),
                    OutboxMessage.attempts >= limit,
                )
                .values(
                    status="failed",
                    secrets=None,
                    last_error=f"the sender stopped during each of {limit} attempts to send "
                    "this message, before handing it over; it is not tried again. Last error: "
                    + func.coalesce(OutboxMessage.last_error, "none recorded"),
                )
            )
            session.execute(
                update(OutboxMessage)
                .where(*abandoned, OutboxMessage.handed_over_at.is_(None))
                .values(status="pending", next_attempt_at=None)
            )
            session.execute(
                update(OutboxMessage)
                .where(*abandoned, OutboxMessage.handed_over_at.is_not(None))
                .values(status="unconfirmed", last_error=UNCONFIRMED, secrets=None)
            )

    def _claim(self) -> OutboxMessage | None:
        """Take the oldest due message for this sender; None when nothing is due.

        The claim is a conditional UPDATE (pending -> sending), so two senders, in one process
        or several, never both take a message, on SQLite as on PostgreSQL.
        """
        while True:
            with self.db.session() as session:
                row = session.scalars(self._due_query().limit(1)).first()
                if row is None:
                    return None
                claimed = session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row.id, OutboxMessage.status == "pending")
                    .values(
                        status="sending",
                        claimed_at=utcnow(),
                        handed_over_at=None,
                        attempts=OutboxMessage.attempts + 1,
                    )
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    session.refresh(row)
                    session.expunge(row)
                    return row

    def deliver_due(self) -> int:
        """Send every due message once; return how many went out. SMTP runs outside any
        transaction, between the claim and the record of its outcome."""
        self.release_stale_claims()
        sent = 0
        while (row := self._claim()) is not None:
            outcome: dict[str, object]
            try:
                self._send(row)
            except PermanentFailure as exc:
                log.warning("mail %s failed for good: %s", row.message_id, exc)
                outcome = {"status": "failed", "last_error": str(exc), "secrets": None}
            except HandedOverUnconfirmed as exc:
                log.warning("mail %s unconfirmed: %s", row.message_id, exc)
                outcome = {
                    "status": "unconfirmed",
                    "last_error": f"{UNCONFIRMED} ({exc})",
                    "secrets": None,
                }
            except (OSError, smtplib.SMTPException) as exc:
                delay = self.retry_delay(row.attempts)
                log.info("mail %s not sent (%s); retry in %ss", row.message_id, exc, delay)
                outcome = {
                    "status": "pending",
                    "last_error": f"{type(exc).__name__}: {exc}",
                    "next_attempt_at": utcnow() + timedelta(seconds=delay),
                    "handed_over_at": None,
                }
                self._record(row.id, outcome)
                return sent
            except Exception as exc:  # a bug, or data no mail server can take
                log.exception("mail %s: unexpected error", row.message_id)
                outcome = self._after_unexpected(row, exc)
            else:
                outcome = {
                    "status": "sent",
                    "sent_at": utcnow(),
                    "last_error": None,
                    "secrets": None,
                }
                sent += 1
            self._record(row.id, outcome)
        return sent

    def _after_unexpected(self, row: OutboxMessage, exc: Exception) -> dict[str, object]:
        """After the hand-over mark: unconfirmed (never a resend). Before it: retried with
        backoff, and failed with the error once ``mail_max_attempts`` attempts are spent."""
        error = f"{type(exc).__name__}: {exc}"[:1000]
        with self.db.read() as session:
            handed_over = session.scalar(
                select(OutboxMessage.handed_over_at).where(OutboxMessage.id == row.id)
            )
        if handed_over is not None:
            return {
                "status": "unconfirmed",
                "last_error": f"{UNCONFIRMED} ({error})",
                "secrets": None,
            }
        if row.attempts >= self.settings.mail_max_attempts:
            return {
                "status": "failed",
                "secrets": None,
                "last_error": f"Keyhouse could not send this message ({error}); it gave up after "
                f"{row.attempts} attempts",
            }
        return {
            "status": "pending",
            "last_error": error,
            "next_attempt_at": utcnow() + timedelta(seconds=self.retry_delay(row.attempts)),
        }

    def retry_delay(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` failed ones: doubling, capped."""
        base = self.settings.mail_retry_seconds
        return float(min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))

    def _record(self, message_id: int, outcome: dict[str, object]) -> None:
        with self.db.session() as session:
            session.execute(
                update(OutboxMessage).where(OutboxMessage.id == message_id).values(**outcome)
            )

    def _send(self, row: OutboxMessage) -> None:
        message = build_message(row, self.settings.mail_from, self.settings.guest_base_url)
        if not self.settings.smtp_url:
            self._write_eml(row, message)
            return
        target = parse_smtp_url(self.settings.smtp_url)
        try:
            with smtp_connection(target) as smtp:
                self._transfer(smtp, row, message)
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentFailure(
                f"the mail server refused the login of {target.username!r}: {exc.smtp_code} "
                f"{exc.smtp_error.decode(errors='replace')}"
            ) from exc
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise PermanentFailure(f"{exc.smtp_code} {_text(exc.smtp_error)}") from exc
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            if 500 <= code < 600:
                raise PermanentFailure(f"{code} {_text(text)}") from exc
            raise

    def _transfer(self, smtp: smtplib.SMTP, row: OutboxMessage, message: EmailMessage) -> None:
        """MAIL, RCPT, then the hand-over mark, then DATA: the only step whose loss is unclear."""
        smtp.ehlo_or_helo_if_needed()
        envelope_from = parseaddr(self.settings.mail_from)[1]
        code, reply = smtp.mail(envelope_from)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, envelope_from)
        code, reply = smtp.rcpt(row.recipient)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({row.recipient: (code, reply)})
        content = BytesIO()
        BytesGenerator(content, policy=message.policy.clone(linesep="\r\n")).flatten(message)
        self._record(row.id, {"handed_over_at": utcnow()})
        try:
            code, reply = smtp.data(content.getvalue())
        except smtplib.SMTPResponseException:
            raise  # the server answered: it did not take the message
        except (OSError, smtplib.SMTPException) as exc:
            raise HandedOverUnconfirmed(f"{type(exc).__name__}: {exc}") from exc
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)

    def _write_eml(self, row: OutboxMessage, message: EmailMessage) -> Path:
        """Write the mail as a file named after its row: writing it again replaces it."""
        folder = private_folder(self.settings.mail_dir)
        path = folder / f"{row.id:06d}-{row.kind.replace('_', '-')}.eml"
        write_private(path, bytes(message))  # 0600: it holds the guest link or keypad code
        return path


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
