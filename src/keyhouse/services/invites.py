"""The invite e-mail of an app key: written to the outbox in the key's own transaction."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from keyhouse.errors import Conflict, ValidationFailed
from keyhouse.rules.dates import utcnow
from keyhouse.rules.secrets_ import hash_token, new_invite_code
from keyhouse.rules.windows import describe_validity
from keyhouse.schemas.invite import InviteStatus
from keyhouse.services.caller import Caller
from keyhouse.services.present import Shape, shape_dict
from keyhouse.store.models import (
    Account,
    AccountUser,
    Invite,
    OutboxMessage,
    Smartlock,
    SmartlockAuth,
)

INVITE_VALID_FOR = timedelta(hours=48)
_CODE_LINE = re.compile(r"(Invite code:\s+)\d{3} \d{3} \d{3}")


def redact_invite_code(body: str) -> str:
    """The invite's body as kept once sent: the code is stored only as its hash."""
    return _CODE_LINE.sub(r"\1(sent, not kept)", body)


def invite_text(
    *, account: Account, lock: Smartlock, key: SmartlockAuth, user: AccountUser, code: str
) -> tuple[str, str]:
    """Subject and plain-text body of the invite."""
    validity = describe_validity(
        allowed_from_date=key.allowed_from_date,
        allowed_until_date=key.allowed_until_date,
        allowed_week_days=key.allowed_week_days,
        allowed_from_time=key.allowed_from_time,
        allowed_until_time=key.allowed_until_time,
        timezone=lock.timezone,
    )
    grouped = f"{code[:3]} {code[3:6]} {code[6:]}"
    remote = "yes, also from afar" if key.remote_allowed else "no, only near the door"
    subject = f"Your key to {lock.name}: {key.name}"
    body = (
        f"Hello {user.name},\n\n"
        f'{account.name} has given you a key to the lock "{lock.name}".\n\n'
        f"  Lock:         {lock.name}\n"
        f"  Key:          {key.name}\n"
        f"  Valid:        {validity}\n"
        f"  Remote use:   {remote}\n"
        f"  Invite code:  {grouped}\n\n"
        f"Enter the invite code in the Nuki app within 48 hours to receive the key.\n"
        f"If you did not expect this e-mail, you can ignore it.\n"
    )
    return subject, body


def queue_invite(
    session: Session, *, account: Account, lock: Smartlock, key: SmartlockAuth, user: AccountUser
) -> OutboxMessage:
    """Create the invite (its code stored only as a hash) and its e-mail in the outbox."""
    code = new_invite_code()
    now = utcnow()
    invite = Invite(
        account_id=account.id,
        auth_key=key.id,
        account_user_id=user.id,
        code_hash=hash_token(code),
        created_at=now,
        expires_at=now + INVITE_VALID_FOR,
    )
    session.add(invite)
    subject, body = invite_text(account=account, lock=lock, key=key, user=user, code=code)
    message = OutboxMessage(
        account_id=account.id,
        kind="invite_mail",
        message_id=f"<invite.{key.id}.{secrets.token_hex(8)}@keyhouse>",
        recipient=user.email,
        subject=subject,
        body=body,
    )
    session.add(message)
    session.flush()
    invite.outbox_id = message.id
    return message


DELIVERY_STATUS = {"pending": "queued", "sending": "queued", "sent": "sent", "failed": "failed"}


def invite_statuses(
    session: Session, caller: Caller, *, auth_key: str | None = None, status: str | None = None
) -> list[Shape]:
    """The account's invites with the delivery of their e-mail, newest first."""
    if status is not None and status not in set(DELIVERY_STATUS.values()):
        raise ValidationFailed(
            f"status {status!r} is not one of queued, sent, failed", field="status", rule="enum"
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
    found = []
    for invite, message, smartlock_id in session.execute(query):
        shown = DELIVERY_STATUS.get(message.status, message.status)
        if status is not None and shown != status:
            continue
        found.append(
            shape_dict(
                InviteStatus,
                id=invite.id,
                auth_id=invite.auth_key,
                smartlock_id=smartlock_id,
                account_user_id=invite.account_user_id,
                email=message.recipient,
                status=shown,
                attempts=message.attempts,
                last_error=message.last_error,
                message_id=message.message_id,
                creation_date=invite.created_at,
                sent_date=message.sent_at,
                expiry_date=invite.expires_at,
            )
        )
    return found


def resend_invite(session: Session, caller: Caller, smartlock_id: int, auth_key: str) -> Shape:
    """A new invite (a new code) for an app key; earlier codes of the key stop working."""
    from keyhouse.services.auths import APP, key_on_lock

    key = key_on_lock(session, caller, smartlock_id, auth_key)
    if key.type != APP or key.account_user_id is None:
        raise Conflict(
            f"key {key.id} ({key.name!r}) is not an app key of an account user: only those "
            "have invites",
            field="id",
            rule="app_key_with_user",
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
    queue_invite(session, account=account, lock=lock, key=key, user=user)
    return invite_statuses(session, caller, auth_key=key.id)[0]
