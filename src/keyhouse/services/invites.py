"""The invite e-mail of an app key: written to the outbox in the key's own transaction."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from sqlalchemy.orm import Session

from keyhouse.rules.dates import utcnow
from keyhouse.rules.secrets_ import hash_token, new_invite_code
from keyhouse.rules.windows import describe_validity
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
    session.add(
        Invite(
            account_id=account.id,
            auth_key=key.id,
            account_user_id=user.id,
            code_hash=hash_token(code),
            created_at=now,
            expires_at=now + INVITE_VALID_FOR,
        )
    )
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
    return message
