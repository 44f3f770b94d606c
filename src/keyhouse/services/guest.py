"""The guest page's use cases: what an invite link shows, binding it to a browser, and opening
the door with it.

The link's secret resolves to one invite (by its SHA-256) and so to one account, once, here;
every later query is scoped by that account. A link is alive while its key exists and is
enabled, no newer invite of the key replaced it, and it was redeemed by this browser (or not
redeemed yet and not expired). See docs/guest-page.md.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from keyhouse.devices.link import DeviceRejected, DeviceUnreachable, DoorEvent
from keyhouse.devices.simulator import LOG_BUSY, LOG_REJECTED
from keyhouse.mail.render import mail_language
from keyhouse.rules.access import KeyRules, decide
from keyhouse.rules.dates import utcnow
from keyhouse.rules.keypad import APP_KEY_TYPE, KEYPAD_CODE_TYPE
from keyhouse.rules.secrets_ import hash_token
from keyhouse.rules.windows import describe_validity
from keyhouse.runtime import Runtime
from keyhouse.services import doors
from keyhouse.store import repo
from keyhouse.store.models import Account, AccountUser, Invite, Smartlock, SmartlockAuth

UNLOCK = 1
# What a link secret or a device secret can look like (URL-safe base64); anything else is
# unknown without asking the database.
_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{20,128}")


class GuestRefusal(Exception):
    """Why the guest page can't show the key or open the door: an HTTP status, a short
    title and a sentence for the guest (never a secret)."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.title = title
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class GuestKey:
    """A live invite link and what the page shows about its key."""

    invite_id: int
    redeemed: bool
    account_name: str
    lock: Smartlock
    key_id: str
    key_name: str
    key_type: int
    slot: int | None
    on_lock: bool  # the lock holds the key as the server has it (applied, a slot given)
    language: str
    validity: str  # when the key works, in words, in the lock's time zone
    valid_now: bool  # inside the key's window now (wherever the guest stands)
    now_reason: str  # why not, in words ("" when valid)
    can_open: bool  # the page offers "Open"
    note: str  # why there is no "Open" button ("" when there is one)


# --- secrets ----------------------------------------------------------------------------------


def new_device_secret() -> str:
    """The secret a browser keeps in its cookie once it redeemed a link: 256 random bits."""
    return secrets.token_urlsafe(32)


def looks_like_secret(value: str | None) -> bool:
    return value is not None and _SECRET_SHAPE.fullmatch(value) is not None


# --- refusals ---------------------------------------------------------------------------------


def unknown_link() -> GuestRefusal:
    return GuestRefusal(
        404,
        "unknown_link",
        "Unknown key link",
        "This key link is not known. Check that you opened the whole link from your e-mail.",
    )


def taken(account_name: str) -> GuestRefusal:
    return GuestRefusal(
        403,
        "taken",
        "Link already in use",
        "This key link was already taken on another device; ask "
        f"{account_name or 'the person who invited you'} to resend the invite.",
    )


def _dead(code: str, title: str, message: str) -> GuestRefusal:
    return GuestRefusal(410, code, title, message)


def _rules(key: SmartlockAuth) -> KeyRules:
    return KeyRules(
        enabled=bool(key.enabled),
        remote_allowed=bool(key.remote_allowed),
        allowed_from_date=key.allowed_from_date,
        allowed_until_date=key.allowed_until_date,
        allowed_week_days=key.allowed_week_days,
        allowed_from_time=key.allowed_from_time,
        allowed_until_time=key.allowed_until_time,
    )


def _in_words(reason: str) -> str:
    """A decision's reason without its ``refused:`` prefix."""
    return reason.removeprefix("refused: ").removeprefix("opened: ")


def explain(
    *, key_type: int, remote_allowed: bool, on_lock: bool, valid_now: bool, validity: str
) -> tuple[bool, str]:
    """Whether the page offers "Open", and if not, why (one sentence for the guest)."""
    if key_type == KEYPAD_CODE_TYPE:
        return False, (
            "This key is a keypad code: type your code at the keypad by the door "
            "(it is in your e-mail; it is not shown here)."
        )
    if key_type != APP_KEY_TYPE:
        return False, "This key can't open the door from a browser."
    if not remote_allowed:
        return False, "This key only works near the door with the app."
    if not valid_now:
        return False, f"You can open the door from here while the key is valid: {validity}."
    if not on_lock:
        return False, "The key is not on the lock yet; reload this page in a moment."
    return True, ""


# --- resolving a link -------------------------------------------------------------------------


def _resolve(
    session: Session, secret: str, device_hash: str | None, now: datetime
) -> tuple[Invite, GuestKey]:
    """The invite of ``secret`` and its key as the page shows it, or the refusal that says
    why the link does not work."""
    if not looks_like_secret(secret):
        raise unknown_link()
    invite = session.scalars(select(Invite).where(Invite.link_hash == hash_token(secret))).first()
    if invite is None:
        raise unknown_link()
    account = session.get(Account, invite.account_id)
    account_name = account.name if account is not None else ""
    if invite.redeemed_at is not None and not (
        device_hash is not None
        and invite.device_hash is not None
        and hmac.compare_digest(device_hash, invite.device_hash)
    ):
        raise taken(account_name)
    key = repo.auth(session, invite.account_id, invite.auth_key)
    lock = repo.lock(session, invite.account_id, key.smartlock_id) if key is not None else None
    if key is None or key.deleting or lock is None:
        raise _dead("key_deleted", "Key deleted", "This key no longer exists.")
    if not key.enabled:
        raise _dead("key_disabled", "Key switched off", "This key was switched off by its owner.")
    if key.account_user_id != invite.account_user_id:
        raise _dead(
            "key_reassigned",
            "Key given to someone else",
            "This key link no longer works: the key was given to someone else.",
        )
    newer = session.scalars(
        select(Invite.id).where(
            Invite.account_id == invite.account_id,
            Invite.auth_key == invite.auth_key,
            Invite.id > invite.id,
        )
    ).first()
    if newer is not None:
        raise _dead(
            "replaced",
            "Link replaced",
            "This key link was replaced by a newer invite: use the link in the newest e-mail.",
        )
    if invite.redeemed_at is None and invite.expires_at <= now:
        raise _dead(
            "expired",
            "Invite expired",
            f"This invite expired; ask {account_name or 'the person who invited you'} "
            "for a new one.",
        )
    user = (
        session.get(AccountUser, invite.account_user_id)
        if invite.account_user_id is not None
        else None
    )
    language = mail_language(user.language if user is not None else None)
    validity = describe_validity(
        allowed_from_date=key.allowed_from_date,
        allowed_until_date=key.allowed_until_date,
        allowed_week_days=key.allowed_week_days,
        allowed_from_time=key.allowed_from_time,
        allowed_until_time=key.allowed_until_time,
        timezone=lock.timezone,
        language=language,
    )
    here = decide(_rules(key), now, lock.timezone, remote=False)
    on_lock = key.auth_id is not None and key.sync_state == "applied"
    can_open, note = explain(
        key_type=key.type,
        remote_allowed=bool(key.remote_allowed),
        on_lock=on_lock,
        valid_now=here.allowed,
        validity=validity,
    )
    if can_open:  # the same decision the lock makes for a remote opening
        can_open = decide(_rules(key), now, lock.timezone, remote=True).allowed
    shown = GuestKey(
        invite_id=invite.id,
        redeemed=invite.redeemed_at is not None,
        account_name=account_name,
        lock=lock,
        key_id=key.id,
        key_name=key.name,
        key_type=key.type,
        slot=key.auth_id,
        on_lock=on_lock,
        language=language,
        validity=validity,
        valid_now=here.allowed,
        now_reason="" if here.allowed else _in_words(here.reason),
        can_open=can_open,
        note=note,
    )
    return invite, shown


def _device_hash(device_secret: str | None) -> str | None:
    return hash_token(device_secret) if looks_like_secret(device_secret) else None


def view(
    runtime: Runtime, secret: str, device_secret: str | None, now: datetime | None = None
) -> GuestKey:
    """GET: what the link shows. Never redeems (mail scanners fetch links too)."""
    with runtime.db.session() as session:
        return _resolve(session, secret, _device_hash(device_secret), now or utcnow())[1]


def redeem(
    runtime: Runtime, secret: str, device_secret: str, now: datetime | None = None
) -> tuple[GuestKey, bool]:
    """POST: the live link, bound to the browser holding ``device_secret`` if it was not
    bound yet. Returns the key and whether this call bound it (the browser must then keep
    the secret in its cookie). Two browsers racing: one binds, the other gets ``taken``."""
    when = now or utcnow()
    device_hash = hash_token(device_secret)
    with runtime.db.session() as session:
        invite, shown = _resolve(session, secret, device_hash, when)
        if shown.redeemed:
            return shown, False
        bound = session.execute(
            update(Invite)
            .where(Invite.id == invite.id, Invite.redeemed_at.is_(None))
            .values(redeemed_at=when, device_hash=device_hash)
            .execution_options(synchronize_session=False)
        )
        if bound.rowcount != 1:  # another request bound it meanwhile
            holder = session.scalar(select(Invite.device_hash).where(Invite.id == invite.id))
            if holder is None or not hmac.compare_digest(holder, device_hash):
                raise taken(shown.account_name)
            return shown, False
        return shown, True


# --- opening the door -------------------------------------------------------------------------


def open_door(runtime: Runtime, key: GuestKey, now: datetime | None = None) -> DoorEvent:
    """Unlock with the key from the web (trigger 4, remote): the lock decides with its own
    copy of the key; every attempt that reaches it is in the activity log."""
    when = now or utcnow()
    lock = key.lock
    if key.key_type == KEYPAD_CODE_TYPE:
        raise GuestRefusal(
            403,
            "keypad_code",
            "Use the keypad",
            "This key is a keypad code: type your code at the keypad by the door; it can't "
            "open the door from here.",
        )
    if key.key_type != APP_KEY_TYPE:
        raise GuestRefusal(
            403, "not_an_app_key", "Not possible here", "This key can't open the door from here."
        )
    if key.slot is None or not key.on_lock:
        raise GuestRefusal(
            409,
            "not_on_lock",
            "Not on the lock yet",
            "The key is not on the lock yet: the lock has not confirmed it. Try again in a moment.",
            headers={"Retry-After": "10"},
        )
    slot = key.slot
    try:
        event = runtime.link.use_app_key(
            lock.id,
            slot,
            UNLOCK,
            when,
            lock.timezone,
            remote=True,
            device_type=lock.type,
            trigger=doors.TRIGGER_WEB,
        )
    except DeviceUnreachable:
        raise GuestRefusal(
            503,
            "lock_offline",
            "Lock offline",
            f"{lock.name} can't be reached right now (it is offline). Try again later.",
            headers={"Retry-After": "30"},
        ) from None
    except DeviceRejected as exc:
        raise GuestRefusal(
            409, "device_error", "The lock refused", f"{lock.name} refused: {exc.reason}."
        ) from None
    doors.record(runtime, lock, event, when, name=key.key_name)
    if event.state == LOG_BUSY:
        raise GuestRefusal(
            503,
            "lock_busy",
            "Lock busy",
            f"{lock.name} is busy. Try again in a few seconds.",
            headers={"Retry-After": str(doors.BUSY_RETRY_SECONDS)},
        )
    if event.state == LOG_REJECTED:
        raise GuestRefusal(
            403,
            "refused",
            "Not opened",
            f"{lock.name} did not open: {_in_words(event.reason)}. This key works: {key.validity}.",
        )
    if event.error:
        raise GuestRefusal(
            409,
            "device_error",
            "Not opened",
            f"{lock.name} could not open: {event.error}. Try again, or tell the owner.",
        )
    return event
