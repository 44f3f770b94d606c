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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from keyhouse.devices.link import (
    ActionAccepted,
    DeviceRejected,
    DeviceUnreachable,
    DoorEvent,
)
from keyhouse.devices.simulator import LOG_BUSY, LOG_REJECTED
from keyhouse.mail.render import mail_language
from keyhouse.rules.access import Decision, KeyRules, decide
from keyhouse.rules.dates import format_api_datetime, utcnow
from keyhouse.rules.keypad import APP_KEY_TYPE, KEYPAD_CODE_TYPE
from keyhouse.rules.secrets_ import hash_token
from keyhouse.rules.upstream import SENT_UPSTREAM
from keyhouse.runtime import Runtime
from keyhouse.services import audit, doors
from keyhouse.services.invites import key_validity
from keyhouse.store import repo
from keyhouse.store.models import Account, AccountUser, Invite, Smartlock, SmartlockAuth
from keyhouse.web.words import DEFAULT_LANGUAGE, knows, say

UNLOCK = 1
# What a link secret or a device secret can look like (URL-safe base64); anything else is
# unknown without asking the database.
_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{20,128}")


class GuestRefusal(Exception):
    """Why the guest page can't show the key or open the door: an HTTP status, a short
    title and a sentence for the guest (never a secret), in ``language``."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        language: str = DEFAULT_LANGUAGE,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.title = title
        self.message = message
        self.headers = headers or {}
        self.language = language

    @classmethod
    def of(
        cls,
        status: int,
        code: str,
        language: str,
        *,
        words: str | None = None,
        headers: dict[str, str] | None = None,
        **values: str,
    ) -> GuestRefusal:
        """The refusal ``code`` with its title and message from the page's words
        (``<words>.title``, ``<words>.message``; ``words`` defaults to ``code``)."""
        key = words or code
        return cls(
            status,
            code,
            say(language, f"{key}.title"),
            say(language, f"{key}.message", **values),
            headers=headers,
            language=language,
        )


@dataclass(frozen=True)
class GuestKey:
    """A live invite link and what the page shows about its key."""

    redeemed: bool
    account_name: str
    lock: Smartlock
    key_name: str
    key_type: int
    slot: int | None
    on_lock: bool  # the lock holds the key as the server has it (applied, a slot given)
    language: str  # the page's language: the account user's ("en" or "de")
    remote_allowed: bool
    validity: str  # when the key works, in words, in the lock's time zone
    valid_now: bool  # inside the key's window now (wherever the guest stands)
    now_text: str  # "Valid now", or "Not valid now: …", in the page's language
    can_open: bool  # the page offers "Open"
    note: str  # why there is no "Open" button ("" when there is one)
    key_id: str = ""  # the key's id (an upstream lock's Open is logged as this key's)


# --- secrets ----------------------------------------------------------------------------------


def looks_like_secret(value: str | None) -> bool:
    return value is not None and _SECRET_SHAPE.fullmatch(value) is not None


# --- refusals ---------------------------------------------------------------------------------


def unknown_link(language: str = DEFAULT_LANGUAGE) -> GuestRefusal:
    """No invite has this link: ``language`` is the browser's (no account user is known)."""
    return GuestRefusal.of(404, "unknown_link", language)


def _who(account_name: str, language: str) -> str:
    return account_name or say(language, "someone")


def taken(account_name: str, language: str = DEFAULT_LANGUAGE) -> GuestRefusal:
    return GuestRefusal.of(403, "taken", language, who=_who(account_name, language))


def _dead(code: str, language: str, **values: str) -> GuestRefusal:
    return GuestRefusal.of(410, code, language, **values)


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
    *,
    key_type: int,
    remote_allowed: bool,
    on_lock: bool,
    valid_now: bool,
    validity: str,
    language: str = DEFAULT_LANGUAGE,
) -> tuple[bool, str]:
    """Whether the page offers "Open", and if not, why (one sentence for the guest, in
    ``language``)."""
    if key_type == KEYPAD_CODE_TYPE:
        return False, say(language, "note.keypad_code")
    if key_type != APP_KEY_TYPE:
        return False, say(language, "note.not_an_app_key")
    if not remote_allowed:
        return False, say(language, "note.not_remote")
    if not valid_now:
        return False, say(language, "note.not_valid_now", validity=validity)
    if not on_lock:
        return False, say(language, "note.not_on_lock")
    return True, ""


def now_in_words(decision: Decision, language: str = DEFAULT_LANGUAGE) -> str:
    """The page's "Right now": valid, or why not. English gives the lock's own reason; German
    a sentence per kind of reason (the validity is on the page just above it)."""
    if decision.allowed:
        return say(language, "now.valid")
    key = f"now.not_valid.{decision.code}"
    return say(
        language,
        key if knows(key) else "now.not_valid",
        reason=_in_words(decision.reason),
    )


# --- resolving a link -------------------------------------------------------------------------


def _resolve(
    session: Session,
    secret: str,
    device_hash: str | None,
    now: datetime,
    browser_language: str = DEFAULT_LANGUAGE,
) -> tuple[Invite, GuestKey]:
    """The invite of ``secret`` and its key as the page shows it, or the refusal that says
    why the link does not work: in the invited account user's language, or in
    ``browser_language`` when the link is unknown."""
    if not looks_like_secret(secret):
        raise unknown_link(browser_language)
    invite = session.scalars(select(Invite).where(Invite.link_hash == hash_token(secret))).first()
    if invite is None:
        raise unknown_link(browser_language)
    account = session.get(Account, invite.account_id)
    account_name = account.name if account is not None else ""
    user = (
        session.get(AccountUser, invite.account_user_id)
        if invite.account_user_id is not None
        else None
    )
    language = mail_language(user.language if user is not None else None)
    if invite.redeemed_at is not None and not (
        device_hash is not None
        and invite.device_hash is not None
        and hmac.compare_digest(device_hash, invite.device_hash)
    ):
        raise taken(account_name, language)
    key = repo.auth(session, invite.account_id, invite.auth_key)
    lock = repo.lock(session, invite.account_id, key.smartlock_id) if key is not None else None
    if key is None or key.deleting or lock is None:
        raise _dead("key_deleted", language)
    if not key.enabled:
        raise _dead("key_disabled", language)
    if key.account_user_id != invite.account_user_id:
        raise _dead("key_reassigned", language)
    newer = session.scalars(
        select(Invite.id).where(
            Invite.account_id == invite.account_id,
            Invite.auth_key == invite.auth_key,
            Invite.id > invite.id,
        )
    ).first()
    if newer is not None:
        raise _dead("replaced", language)
    if invite.redeemed_at is None and invite.expires_at <= now:
        raise _dead("expired", language, who=_who(account_name, language))
    validity = key_validity(key, lock.timezone, language)
    # Valid here and now, wherever the guest stands; "Open" also needs remote use (explain).
    here = decide(_rules(key), now, lock.timezone, remote=False)
    on_lock = key.auth_id is not None and key.sync_state == "applied"
    can_open, note = explain(
        key_type=key.type,
        remote_allowed=bool(key.remote_allowed),
        on_lock=on_lock,
        valid_now=here.allowed,
        validity=validity,
        language=language,
    )
    shown = GuestKey(
        redeemed=invite.redeemed_at is not None,
        account_name=account_name,
        lock=lock,
        key_name=key.name,
        key_type=key.type,
        slot=key.auth_id,
        on_lock=on_lock,
        language=language,
        remote_allowed=bool(key.remote_allowed),
        validity=validity,
        valid_now=here.allowed,
        now_text=now_in_words(here, language),
        can_open=can_open,
        note=note,
        key_id=key.id,
    )
    return invite, shown


def _device_hash(device_secret: str | None) -> str | None:
    return hash_token(device_secret) if looks_like_secret(device_secret) else None


def view(
    runtime: Runtime,
    secret: str,
    device_secret: str | None,
    now: datetime | None = None,
    *,
    browser_language: str = DEFAULT_LANGUAGE,
) -> GuestKey:
    """GET: what the link shows. Never redeems (mail scanners fetch links too).
    ``browser_language`` is for an unknown link only; a known one speaks its user's."""
    with runtime.db.read() as session:
        return _resolve(
            session, secret, _device_hash(device_secret), now or utcnow(), browser_language
        )[1]


def redeem(
    runtime: Runtime,
    secret: str,
    device_secret: str,
    now: datetime | None = None,
    *,
    browser_language: str = DEFAULT_LANGUAGE,
    source: str | None = None,
) -> tuple[GuestKey, bool]:
    """POST: the live link, bound to the browser holding ``device_secret`` if it was not
    bound yet. Returns the key and whether this call bound it (the browser must then keep
    the secret in its cookie). Two browsers racing: one binds, the other gets ``taken``."""
    when = now or utcnow()
    device_hash = hash_token(device_secret)
    with runtime.db.session() as session:
        invite, shown = _resolve(session, secret, device_hash, when, browser_language)
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
                raise taken(shown.account_name, shown.language)
            return shown, False
        audit.record(
            session,
            audit.Actor("guest", source=source),
            "invite.redeem",
            "key",
            invite.auth_key,
            after={"id": invite.id, "redeemedDate": format_api_datetime(when)},
            smartlock_id=shown.lock.id,
            account_id=invite.account_id,
        )
        return shown, True


# --- opening the door -------------------------------------------------------------------------


def open_door(runtime: Runtime, key: GuestKey, now: datetime | None = None) -> DoorEvent:
    """Unlock with the key from the web (trigger 4, remote): the lock decides with its own
    copy of the key; every attempt that reaches it is in the activity log."""
    when = now or utcnow()
    lock = key.lock
    language = key.language
    if key.key_type == KEYPAD_CODE_TYPE:
        raise GuestRefusal.of(403, "keypad_code", language)
    if key.key_type != APP_KEY_TYPE:
        raise GuestRefusal.of(403, "not_an_app_key", language)
    if key.slot is None or not key.on_lock:
        raise GuestRefusal.of(409, "not_on_lock", language, headers={"Retry-After": "10"})
    slot = key.slot
    if lock.link != "virtual":
        return _open_upstream(runtime, key, when)
    with _at_the_lock(lock, language), doors.action_slot(runtime, lock):
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
    return _outcome(runtime, key, event, when)


@contextmanager
def _at_the_lock(lock: Smartlock, language: str) -> Iterator[None]:
    """A call to the lock for the guest page: its failures in the guest's words."""
    try:
        yield
    except DeviceUnreachable:
        raise GuestRefusal.of(
            503, "lock_offline", language, headers={"Retry-After": "30"}, lock=lock.name
        ) from None
    except DeviceRejected as exc:
        raise GuestRefusal.of(
            409,
            "device_error",
            language,
            words="lock_rejected",
            lock=lock.name,
            reason=exc.reason,
        ) from None


def _outcome(runtime: Runtime, key: GuestKey, event: DoorEvent, when: datetime) -> DoorEvent:
    """Log what the lock reported, and refuse in the guest's words when it did not open."""
    lock = key.lock
    language = key.language
    doors.record(runtime, lock, event, when, name=key.key_name)
    if event.state == LOG_BUSY:
        raise GuestRefusal.of(
            503,
            "lock_busy",
            language,
            headers={"Retry-After": str(doors.BUSY_RETRY_SECONDS)},
            lock=lock.name,
        )
    if event.state == LOG_REJECTED:
        raise GuestRefusal.of(
            403,
            "refused",
            language,
            words="refused" if key.remote_allowed else "refused_not_remote",
            lock=lock.name,
            reason=_in_words(event.reason),
            validity=key.validity,
        )
    if event.error:
        raise GuestRefusal.of(
            409, "device_error", language, words="lock_fault", lock=lock.name, error=event.error
        )
    return event


# What an upstream lock's Open is logged with (the cloud took the unlock; the lock reports the
# outcome in Nuki's own log, made with the owner's token).


def _open_upstream(runtime: Runtime, key: GuestKey, when: datetime) -> DoorEvent:
    """Open on a lock driven through a cloud (Nuki's): the unlock goes with the owner's token,
    which opens whatever the guest key says, so Keyhouse decides first with the key as it is
    now (enabled, remote use, its window: the access rules the simulated lock uses). A refusal
    is logged as the key's refused attempt and nothing is sent; an accepted unlock is logged as
    the key's, not the owner's."""
    lock = key.lock
    language = key.language
    with runtime.db.read() as session:
        row = repo.auth(session, lock.account_id, key.key_id)
        if row is None or row.deleting:
            raise _dead("key_deleted", language)
        rules, slot, name = _rules(row), row.auth_id, row.name
    decision = decide(rules, when, lock.timezone, remote=True)
    if not decision.allowed:
        refused = DoorEvent(
            action=UNLOCK,
            trigger=doors.TRIGGER_WEB,
            state=LOG_REJECTED,
            opened=False,
            reason=decision.reason,
            auth_key=key.key_id,
            slot=slot,
            name=name,
            error=decision.reason,
        )
        return _outcome(runtime, key, refused, when)
    link = runtime.links.of(lock.id)
    with _at_the_lock(lock, language), doors.action_slot(runtime, lock):
        # Not now at Nuki (busy, throttled, over budget): a DeviceUnreachable, "try again".
        done = link.act(lock.id, UNLOCK, 0, doors.TRIGGER_WEB, lock.type)
    if isinstance(done, ActionAccepted):
        # State 0: Nuki's cloud took the unlock (the key's use is counted); whether the door
        # moved is not known here, and the entry says so in its ``error`` (the log's only free
        # text besides the name, which names the key).
        sent = DoorEvent(
            action=UNLOCK,
            trigger=doors.TRIGGER_WEB,
            state=0,
            opened=False,
            reason=SENT_UPSTREAM,
            auth_key=key.key_id,
            slot=slot,
            name=name,
            error=SENT_UPSTREAM,
        )
        doors.record(runtime, lock, sent, when, name=name)
        doors.pull_after_action(runtime, lock)
        return sent
    return _outcome(runtime, key, replace(done, auth_key=key.key_id, name=name), when)
