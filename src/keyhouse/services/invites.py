"""The mails about a key to its user: the invite (with the guest link) when the key is made,
and a notice when it is switched off or deleted. Each is written to the outbox in the key's own
transaction."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from keyhouse.errors import Conflict, ValidationFailed
from keyhouse.mail.render import mail_language, render_mail
from keyhouse.rules.dates import utcnow
from keyhouse.rules.keypad import APP_KEY_TYPE, KEYPAD_CODE_TYPE
from keyhouse.rules.paging import encode_cursor, split_page
from keyhouse.rules.secrets_ import hash_token, new_link_secret
from keyhouse.rules.windows import describe_validity
from keyhouse.schemas.invite import InviteStatus
from keyhouse.services import audit
from keyhouse.services.caller import Caller
from keyhouse.services.lookup import key_on_lock
from keyhouse.services.present import Shape, shape_dict
from keyhouse.store import repo
from keyhouse.store.models import (
    Account,
    AccountUser,
    Invite,
    OutboxMessage,
    Smartlock,
    SmartlockAuth,
)
from keyhouse.store.notify import notify_mail

INVITE_VALID_FOR = timedelta(days=30)
NOT_KEPT = "(sent, not kept)"
NOTICE_KINDS = ("key_disabled", "key_deleted")
NOTIFIED_TYPES = (APP_KEY_TYPE, KEYPAD_CODE_TYPE)
"""Keys whose user got an invite (and its guest link), so is told when the key stops working."""


def mail_context(
    *, account: Account, lock: Smartlock, key: SmartlockAuth, user: AccountUser
) -> dict[str, Any]:
    """What every mail about ``key`` may show (no secrets: those go apart, see ``queue_mail``)."""
    language = mail_language(user.language)
    return {
        "user_name": user.name,
        "account_name": account.name,
        "lock_name": lock.name,
        "key_name": key.name,
        "key_type": key.type,
        "remote_allowed": bool(key.remote_allowed),
        "timezone": lock.timezone,
        "validity": key_validity(key, lock.timezone, language),
        # An app key on a lock of Nuki's cloud: Nuki sends its own invite (to the Nuki app).
        "nuki_invite": key.type == APP_KEY_TYPE and lock.link == "nuki",
    }


def key_validity(key: SmartlockAuth, timezone: str, language: str) -> str:
    """When ``key`` works, in words, in the lock's ``timezone`` and in ``language``."""
    return describe_validity(
        allowed_from_date=key.allowed_from_date,
        allowed_until_date=key.allowed_until_date,
        allowed_week_days=key.allowed_week_days,
        allowed_from_time=key.allowed_from_time,
        allowed_until_time=key.allowed_until_time,
        timezone=timezone,
        language=language,
    )


def queue_mail(
    session: Session,
    *,
    account_id: int,
    kind: str,
    user: AccountUser,
    context: dict[str, Any],
    secrets_: dict[str, Any] | None = None,
    reference: str,
) -> OutboxMessage:
    """Put a mail of ``kind`` to ``user`` in the outbox, in the caller's transaction.

    ``secrets_`` (the guest link's secret, a keypad code) is kept only until the mail is sent;
    the body kept for the record shows them as "(sent, not kept)". The Message-ID is fixed
    here, so every attempt to send the mail carries the same one.
    """
    language = mail_language(user.language)
    kept = render_mail(kind, language, {**context, **redacted(secrets_)})
    message = OutboxMessage(
        account_id=account_id,
        kind=kind,
        message_id=f"<{kind}.{reference}.{secrets.token_hex(8)}@keyhouse>",
        recipient=user.email,
        subject=kept.subject,
        body=kept.text,
        language=language,
        context=context,
        secrets=secrets_ or None,
    )
    session.add(message)
    session.flush()
    notify_mail(session)  # a sender in another process starts at once, not at its next scan
    return message


def redacted(secrets_: dict[str, Any] | None) -> dict[str, Any]:
    """The template values that stand in for secrets in the kept copy of a mail."""
    shown = {name: NOT_KEPT for name in (secrets_ or {})}
    if "link_secret" in shown:
        shown["guest_url"] = NOT_KEPT
    return shown


def queue_invite(
    session: Session, *, account: Account, lock: Smartlock, key: SmartlockAuth, user: AccountUser
) -> OutboxMessage:
    """Create the invite (its guest link stored only as a hash) and its mail in the outbox.

    A keypad code key (type 13) sent to a user gets the ``keypad_code`` mail with the code;
    an app key gets the ``invite`` mail. Both carry the guest link.
    """
    link_secret = new_link_secret()
    now = utcnow()
    invite = Invite(
        account_id=account.id,
        auth_key=key.id,
        account_user_id=user.id,
        link_hash=hash_token(link_secret),
        created_at=now,
        expires_at=now + INVITE_VALID_FOR,
    )
    session.add(invite)
    secrets_: dict[str, Any] = {"link_secret": link_secret}
    kind = "invite"
    if key.type == KEYPAD_CODE_TYPE and key.code is not None:
        kind = "keypad_code"
        secrets_["keypad_code"] = key.code
    message = queue_mail(
        session,
        account_id=account.id,
        kind=kind,
        user=user,
        context=mail_context(account=account, lock=lock, key=key, user=user),
        secrets_=secrets_,
        reference=key.id,
    )
    invite.outbox_id = message.id
    return message


def queue_notice(
    session: Session, kind: str, key: SmartlockAuth, *, account_user_id: int | None = None
) -> OutboxMessage | None:
    """Tell the key's user that ``key`` was switched off (``key_disabled``) or deleted
    (``key_deleted``), in the caller's transaction; None when there is nobody to tell.

    Only app keys and keypad codes given to an account user are told (they got an invite); a
    fob or a keypad code without a user is not. ``account_user_id`` names the user who held the
    key when a change also gave it to someone else; by default it is the key's user. The user's
    name and address are read now, so the notice goes out even if the user is deleted next, in
    the same transaction. A notice carries no secrets.
    """
    if kind not in NOTICE_KINDS:
        raise ValueError(f"{kind!r} is not a notice: use one of {', '.join(NOTICE_KINDS)}")
    holder = account_user_id if account_user_id is not None else key.account_user_id
    if key.type not in NOTIFIED_TYPES or holder is None:
        return None
    user = repo.user(session, key.account_id, holder)
    account = session.get(Account, key.account_id)
    lock = session.get(Smartlock, key.smartlock_id)
    if user is None or account is None or lock is None:
        return None
    return queue_mail(
        session,
        account_id=key.account_id,
        kind=kind,
        user=user,
        context=mail_context(account=account, lock=lock, key=key, user=user),
        reference=key.id,
    )


DELIVERY_STATUS = {
    "pending": "queued",
    "sending": "queued",
    "sent": "sent",
    "failed": "failed",
    "unconfirmed": "unconfirmed",
}


def invite_statuses(
    session: Session,
    caller: Caller,
    *,
    auth_key: str | None = None,
    status: str | None = None,
    before: int | None = None,
    limit: int | None = None,
) -> tuple[list[Shape], str | None]:
    """The account's invites with the delivery of their e-mail, newest first: those older
    than the invite ``before`` (an id), at most ``limit``; and the cursor of the next page."""
    shown_statuses = set(DELIVERY_STATUS.values())
    if status is not None and status not in shown_statuses:
        raise ValidationFailed(
            f"status {status!r} is not one of queued, sent, failed, unconfirmed",
            field="status",
            rule="enum",
        )
    query = (
        select(Invite, OutboxMessage, SmartlockAuth.smartlock_id)
        .join(OutboxMessage, OutboxMessage.id == Invite.outbox_id)
        .outerjoin(SmartlockAuth, SmartlockAuth.id == Invite.auth_key)
        .where(Invite.account_id == caller.account_id)
        .order_by(Invite.id.desc())
    )
    if auth_key is not None:
        query = query.where(Invite.auth_key == auth_key)
    if status is not None:
        stored = [raw for raw, shown in DELIVERY_STATUS.items() if shown == status]
        query = query.where(OutboxMessage.status.in_(stored))
    if before is not None:
        query = query.where(Invite.id < before)
    if limit is not None:
        query = query.limit(limit + 1)
    rows = session.execute(query).all()
    page, more = split_page(rows, limit) if limit is not None else (rows, False)
    found = []
    for invite, message, smartlock_id in page:
        found.append(
            shape_dict(
                InviteStatus,
                id=invite.id,
                auth_id=invite.auth_key,
                smartlock_id=smartlock_id,
                account_user_id=invite.account_user_id,
                email=message.recipient,
                status=DELIVERY_STATUS.get(message.status, message.status),
                attempts=message.attempts,
                last_error=message.last_error,
                message_id=message.message_id,
                creation_date=invite.created_at,
                sent_date=message.sent_at,
                expiry_date=invite.expires_at,
                redeemed_date=invite.redeemed_at,
            )
        )
    cursor = encode_cursor("invite", (page[-1][0].id,)) if more else None
    return found, cursor


def resend_invite(session: Session, caller: Caller, smartlock_id: int, auth_key: str) -> Shape:
    """A new invite (a new guest link) for an app key or keypad code of a user; earlier links
    of the key stop working."""

    key = key_on_lock(session, caller, smartlock_id, auth_key)
    if key.type not in NOTIFIED_TYPES or key.account_user_id is None:
        raise Conflict(
            f"key {key.id} ({key.name!r}) is not an app key or keypad code of an account "
            "user: only those have invites",
            field="id",
            rule="key_with_user",
        )
    if key.deleting or not key.enabled:
        state = "being deleted" if key.deleting else "disabled"
        raise Conflict(
            f"key {key.id} ({key.name!r}) is {state}: an invite to it would open nothing",
            field="id",
            rule="usable_key",
        )
    now = utcnow()
    session.execute(
        update(Invite)
        .where(Invite.account_id == caller.account_id, Invite.auth_key == key.id)
        .where(Invite.expires_at > now)
        .values(expires_at=now)
    )
    account = session.get(Account, caller.account_id)
    lock = session.get(Smartlock, key.smartlock_id)
    user = session.get(AccountUser, key.account_user_id)
    assert account is not None and lock is not None and user is not None
    message = queue_invite(session, account=account, lock=lock, key=key, user=user)
    shape = invite_statuses(session, caller, auth_key=key.id, limit=1)[0][0]
    audit.record(
        session,
        caller,
        "invite.resend",
        "key",
        key.id,
        after=shape_dict(
            InviteStatus,
            id=shape["id"],
            auth_id=key.id,
            smartlock_id=key.smartlock_id,
            account_user_id=user.id,
            email=message.recipient,
            expiry_date=shape["expiryDate"],
        ),
        smartlock_id=key.smartlock_id,
    )
    return shape
