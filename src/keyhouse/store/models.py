"""The tables. Every row that belongs to somebody carries its ``account_id``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from keyhouse.rules.dates import utcnow
from keyhouse.rules.sync import sync_state
from keyhouse.store.types import UTCDateTime


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(Text)  # space-separated
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # None: never expires. A token past it gets 401 saying it expired (and when).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set once by a revocation; the row is kept so a 401 can say "revoked" and the audit
    # log keeps its name.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Recorded at most once a minute per token (not a write on every request).
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Smartlock(Base):
    __tablename__ = "smartlocks"
    # The account's locks in the listing's order (by id): a range, not a walk of every
    # account's locks by the primary key.
    __table_args__ = (Index("ix_lock_account_id", "account_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    type: Mapped[int] = mapped_column(Integer)
    nuki_id: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    keypad: Mapped[bool] = mapped_column(Boolean, default=False)
    favorite: Mapped[bool] = mapped_column(Boolean, default=False)
    auth_id: Mapped[int] = mapped_column(Integer, default=1)
    virtual: Mapped[bool] = mapped_column(Boolean, default=True)
    # Which DeviceLink reaches the lock ("virtual": the simulator); see keyhouse.devices.links.
    link: Mapped[str] = mapped_column(String(16), default="virtual", server_default="virtual")
    # When the reconciler last read all the lock holds and compared it with the keys.
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Bumped on every change to the lock's keys: a listing cached under it is current.
    keys_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccountUser(Base):
    __tablename__ = "account_users"
    # AUTOINCREMENT: an id is never given again, so a stale accountUserId never hits a new user.
    __table_args__ = (
        UniqueConstraint("account_id", "email_key", name="uq_account_user_email"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320))  # lower-cased, for uniqueness
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[int | None] = mapped_column(Integer, nullable=True)
    language: Mapped[str | None] = mapped_column(String(2), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# A key is unsynced while it is a tombstone or the lock's copy is behind: the reconciler's work,
# found through a partial index that holds only such keys.
UNSYNCED = "deleting OR applied_revision < revision"


class SmartlockAuth(Base):
    """A key as the server wants the lock to hold it (the desired state).

    Every change bumps ``revision``; ``applied_revision`` is the revision the lock confirmed and
    only grows. A deleted key is a tombstone (``deleting``) until the lock confirms its removal.
    ``sync_state`` is derived from these, never stored.
    """

    __tablename__ = "smartlock_auths"
    __table_args__ = (
        # A keypad code is unique among the lock's live keys; a tombstone frees its code at once
        # (the reconciler removes before it puts).
        Index(
            "uq_auth_keypad_code",
            "smartlock_id",
            "code",
            unique=True,
            sqlite_where=text("NOT deleting"),
            postgresql_where=text("NOT deleting"),
        ),
        # Every key listing's order (see ``repo.list_auths``): pages are ranges of it.
        Index("ix_auth_listing", "account_id", "smartlock_id", "created_at", "id"),
        # One user's keys across the locks (``?accountUserId=``), in the listing's order; its
        # first column also serves the user's removal (ON DELETE SET NULL). Without it the
        # planner walked the account's keys through the listing index.
        Index("ix_auth_user", "account_user_id", "account_id", "smartlock_id", "created_at", "id"),
        # The account's keys of some types (``?types=13``), in the listing's order.
        Index("ix_auth_account_type", "account_id", "type", "smartlock_id", "created_at", "id"),
        Index(
            "ix_auth_unsynced",
            "smartlock_id",
            sqlite_where=text(UNSYNCED),
            postgresql_where=text(UNSYNCED),
        ),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    smartlock_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("smartlocks.id", ondelete="CASCADE")
    )
    account_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("account_users.id", ondelete="SET NULL"), nullable=True
    )
    auth_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    type: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    remote_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    smart_actions_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    allowed_from_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    allowed_until_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    allowed_week_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    allowed_from_time: Mapped[int | None] = mapped_column(Integer, nullable=True)
    allowed_until_time: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lock_count: Mapped[int] = mapped_column(Integer, default=0)
    last_active_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # --- sync with the lock ---
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    applied_revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The revision the lock refused for good (with ``error``): not sent again until it changes.
    failed_revision: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The change that made ``revision`` (official ObjectId shape in answers).
    operation_id: Mapped[str | None] = mapped_column(String(24), nullable=True)
    deleting: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What the lock's link calls this key (a slot, an upstream id): opaque to the server.
    device_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # "Not now" from the lock (busy, unreachable): not tried again before this time.
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the lock last confirmed it holds this key as shown (a put, or a drift check).
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # --- keys of locks driven through Nuki's cloud (issue 13) ---
    # "keyhouse" (made here) or "upstream" (found at the upstream and adopted: never deleted).
    origin: Mapped[str] = mapped_column(String(16), default="keyhouse", server_default="keyhouse")
    # A create sent to the upstream whose key is not found there yet (JSON: the key's
    # fingerprint and when it was sent). Written durably before the call; while it is set no
    # second create is sent.
    create_marker: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The revision the upstream lists as sent ("accepted by Nuki"); ``applied_revision`` is
    # the one on the lock. Links that talk to the lock itself set both at once.
    accepted_revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @property
    def sync_state(self) -> str:
        """deleting, failed (the lock refused this revision), applied, or pending."""
        return sync_state(self.deleting, self.revision, self.applied_revision, self.failed_revision)


class DeviceLease(Base):
    """Who may bring a lock up to date now: one reconciler across all processes.

    ``expires_at`` is in seconds on the database's own clock (see ``store.leases``); ``epoch``
    grows with every grant, and every outcome a reconciler records names the epoch it holds.
    """

    __tablename__ = "device_leases"

    smartlock_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("smartlocks.id", ondelete="CASCADE"), primary_key=True
    )
    owner: Mapped[str] = mapped_column(String(64))
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[float] = mapped_column(Float, default=0.0)


class Invite(Base):
    __tablename__ = "invites"
    __table_args__ = (
        Index("ix_invite_account_id", "account_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    auth_key: Mapped[str] = mapped_column(String(24), index=True)
    account_user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # SHA-256 of the guest link's secret (256 random bits); the secret itself is only mailed.
    link_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Until then the link may be redeemed; a resend ends the earlier invites of the key.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The e-mail that carries it (its delivery status is the invite's).
    outbox_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Redemption: the first browser that uses the link keeps it (SHA-256 of its device secret).
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    device_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class OutboxMessage(Base):
    """A side effect (an e-mail) written in the same transaction as the change causing it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status", "status", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # The template: "invite", "keypad_code", "key_disabled", "key_deleted" (see keyhouse.mail).
    kind: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    # The text part as kept: secrets (link, keypad code) shown as "(sent, not kept)".
    body: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8), default="en")
    # What the template needs, rendered at send time; ``secrets`` is cleared once sent.
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    secrets: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # pending -> sending (claimed by a sender) -> sent | failed | unconfirmed; back to pending
    # to retry. "unconfirmed": a sender died while the mail server was taking the message
    # (``handed_over_at`` set), so it may have arrived; it is not sent again by itself.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SimulatedLock(Base):
    """The virtual device's own state, apart from the server's records."""

    __tablename__ = "sim_locks"

    smartlock_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    online: Mapped[bool] = mapped_column(Boolean, default=True)
    keypad: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[int] = mapped_column(Integer, default=1)
    battery_charge: Mapped[int] = mapped_column(Integer, default=100)
    door_state: Mapped[int] = mapped_column(Integer, default=2)
    last_action: Mapped[int] = mapped_column(Integer, default=0)
    trigger: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    # None, or an injected fault: "busy", "motorBlocked", "codeExists", "full".
    fault: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # The highest lease epoch a key change came with: a change with a lower one is refused
    # (a reconciler that lost its lease while paused can't write stale keys to the lock).
    fence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class SimulatedAuth(Base):
    """An authorization in a virtual lock's own table, in the slot the lock gave it."""

    __tablename__ = "sim_auths"

    smartlock_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    auth_key: Mapped[str] = mapped_column(String(24), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    # How many times a key change was written into this slot (for tests: no doubled writes).
    writes: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class SmartlockLog(Base):
    """What happened at a lock (official SmartlockLog), newest first by ``seq``."""

    __tablename__ = "smartlock_logs"
    __table_args__ = (
        Index("ix_log_lock_seq", "smartlock_id", "seq"),
        Index("ix_log_account_seq", "account_id", "seq"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(24), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    smartlock_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("smartlocks.id", ondelete="CASCADE")
    )
    device_type: Mapped[int] = mapped_column(Integer)
    auth_key: Mapped[str | None] = mapped_column(String(24), nullable=True)
    auth_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    account_user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[int] = mapped_column(Integer)
    state: Mapped[int] = mapped_column(Integer)
    auto_unlock: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[int] = mapped_column(Integer, default=0)
    date: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditEvent(Base):
    """One change to keys, users, tokens, locks or settings: who, when, what, from where.

    Written in the same transaction as the change; ``before``/``after`` never hold secrets
    or keypad codes. Kept for ``KEYHOUSE_AUDIT_RETENTION_DAYS``.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_account_id", "account_id", "id"),
        Index("ix_audit_account_target", "account_id", "target_type", "target_id"),
        Index("ix_audit_at", "at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Who: "token" (with its id and name), "operator" (the CLI on the server), "guest"
    # (a guest page), "system" (the reconciler, drift repair).
    actor: Mapped[str] = mapped_column(String(16))
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    token_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # What: e.g. "key.create", "key.update", "key.delete", "user.delete", "token.revoke".
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    smartlock_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # From where: the client's address (as the trusted-proxy rule sees it), or "cli".
    source: Mapped[str | None] = mapped_column(String(200), nullable=True)


class IdempotencyRecord(Base):
    """A write made under an ``Idempotency-Key``: written in the write's own transaction, so
    a retry finds either nothing (the write did not happen) or the first answer to replay."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("token_id", "key", name="uq_idempotency_token_key"),
        Index("ix_idempotency_created", "created_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    # SHA-256 (hex) of the request body as sent.
    body_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    # The first answer: its content type and body (None for a 204).
    content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UpstreamLink(Base):
    """An account linked to a Nuki Web account (api.nuki.io or a stand-in), by the operator.

    The API token is kept only encrypted (``token_secret``: a Fernet token, see
    ``keyhouse.store.secret_box``); the URL is set by the operator alone, never through the API.
    """

    __tablename__ = "upstream_links"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    url: Mapped[str] = mapped_column(String(500))
    token_secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The last answer the upstream gave (any status), and the last failure, in words.
    last_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # How many requests Keyhouse sent to the upstream for this link (its budget is counted
    # against it).
    calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the next pull of the locks' state and the activity log is due, in seconds on the
    # database's clock (see ``store.leases.db_now``); a process claims a pull by moving it on.
    sync_due_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class UpstreamLock(Base):
    """A lock imported from the upstream account: what the upstream last said of it."""

    __tablename__ = "upstream_locks"

    smartlock_id: Mapped[int] = mapped_column(
        ForeignKey("smartlocks.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    # The upstream's ``config`` and ``state`` objects as it sent them (official shapes).
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    server_state: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when a refresh no longer finds the lock in the upstream account (kept, not deleted);
    # cleared if it comes back.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class NukiEmulation(Base):
    """The stand-in's Nuki-mode switches for one account (KEYHOUSE_NUKI_MODE=1 only)."""

    __tablename__ = "nuki_emulation"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    # The next N requests of the account answer 429 with an HTML page.
    too_many_requests: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Overrides KEYHOUSE_NUKI_KEYS_APPEAR_SECONDS for the account's listings.
    keys_appear_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Keys created since then never appear in listings (until this is cleared).
    hide_keys_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The next N requests of the account answer ``fail_status`` (402, 426, 500, 502, 503, 504).
    fail_next: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    fail_status: Mapped[int] = mapped_column(Integer, default=503, server_default="503")
