"""Keys: create (one lock or many), list, update (one or many), delete (one or many)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from keyhouse.errors import Conflict, NotFound, ValidationFailed
from keyhouse.rules.dates import utcnow
from keyhouse.rules.ids import new_object_id
from keyhouse.rules.keypad import (
    APP_KEY_TYPE,
    AUTH_NAME_MAX,
    FOB_TYPE,
    KEYPAD_CODE_TYPE,
    KEYPAD_NAME_MAX,
    MAX_AUTHS_PER_LOCK,
    MAX_KEYPAD_CODES_PER_LOCK,
    check_keypad_code,
)
from keyhouse.rules.windows import check_restrictions
from keyhouse.schemas.auth import SmartlockAuthCreate, SmartlockAuthUpdate
from keyhouse.services import audit
from keyhouse.services.caller import Caller
from keyhouse.services.invites import NOTIFIED_TYPES, queue_invite, queue_notice
from keyhouse.services.lookup import key_on_lock, lock_not_found, serialize_writers
from keyhouse.services.problems import Problems
from keyhouse.store import repo
from keyhouse.store.models import Account, Smartlock, SmartlockAuth

CREATABLE_TYPES = {APP_KEY_TYPE: "app", FOB_TYPE: "fob", KEYPAD_CODE_TYPE: "keypad code"}
TYPE_NAMES = {0: "app", 1: "bridge", 2: "fob", 3: "keypad", 13: "keypad code", 14: "z-key"}

# Fields of a key that a request may set, request name -> column.
EDITABLE = {
    "name": "name",
    "accountUserId": "account_user_id",
    "enabled": "enabled",
    "remoteAllowed": "remote_allowed",
    "smartActionsEnabled": "smart_actions_enabled",
    "code": "code",
    "allowedFromDate": "allowed_from_date",
    "allowedUntilDate": "allowed_until_date",
    "allowedWeekDays": "allowed_week_days",
    "allowedFromTime": "allowed_from_time",
    "allowedUntilTime": "allowed_until_time",
}
NOT_CLEARABLE = {
    "name": "a key always has a name",
    "enabled": "send true or false",
    "remoteAllowed": "send true or false",
    "smartActionsEnabled": "send true or false",
}


@dataclass
class Outcome:
    """What a write did: the keys it touched and the locks that now have work queued."""

    auth_keys: list[str] = field(default_factory=list)
    lock_ids: set[int] = field(default_factory=set)
    mails: int = 0


def _check_key(
    session: Session,
    caller: Caller,
    problems: Problems,
    values: dict[str, Any],
    lock: Smartlock,
) -> None:
    """The rules every key must meet, on its full (merged) set of values."""
    type_ = values["type"]
    name = values["name"]
    limit = KEYPAD_NAME_MAX if type_ == KEYPAD_CODE_TYPE else AUTH_NAME_MAX
    if not isinstance(name, str) or not name.strip():
        problems.add("name", "required", "name must not be empty: give the key a name")
    elif len(name) > limit:
        kind = "a keypad code" if type_ == KEYPAD_CODE_TYPE else "a key"
        problems.add(
            "name",
            "max_length",
            f"name {name!r} has {len(name)} characters: the name of {kind} may have at most "
            f"{limit}",
        )
    code = values.get("code")
    user_id = values.get("account_user_id")
    if type_ == KEYPAD_CODE_TYPE:
        if not lock.keypad:
            problems.add(
                "type",
                "keypad_required",
                f"type 13 (keypad code) needs a keypad, and smartlock {lock.id} "
                f"({lock.name!r}) has none paired: pair a keypad or create an app key (type 0)",
            )
        if code is None:
            problems.add(
                "code", "required", "code is required for a keypad code (type 13): 6 digits 1-9"
            )
        else:
            problems.check(lambda: check_keypad_code(code))
    else:
        if code is not None:
            problems.add(
                "code",
                "forbidden",
                f"code is only for keypad codes (type 13), and this key is of type {type_} "
                f"({TYPE_NAMES.get(type_, 'unknown')}): leave code out",
            )
        if user_id is None:
            problems.add(
                "accountUserId",
                "required",
                f"accountUserId is required for a key of type {type_} "
                f"({TYPE_NAMES.get(type_, 'unknown')}): create the user with PUT /account/user "
                "and use its accountUserId",
            )
    if user_id is not None and repo.user(session, caller.account_id, user_id) is None:
        problems.add(
            "accountUserId",
            "not_found",
            f"accountUserId {user_id} is not a user of your account: list them with "
            "GET /account/user",
        )
    problems.check(
        lambda: check_restrictions(
            allowed_from_date=values.get("allowed_from_date"),
            allowed_until_date=values.get("allowed_until_date"),
            allowed_week_days=values.get("allowed_week_days"),
            allowed_from_time=values.get("allowed_from_time"),
            allowed_until_time=values.get("allowed_until_time"),
        )
    )


def _check_code_free(
    session: Session, caller: Caller, lock: Smartlock, code: int | None, other_than: str | None
) -> None:
    if code is None:
        return
    holder = repo.auth_with_code(session, caller.account_id, lock.id, code, other_than=other_than)
    if holder is not None:
        raise Conflict(
            f"keypad code {code} already exists on smartlock {lock.id} ({lock.name!r}), "
            f"held by key {holder.id} ({holder.name!r}): choose another code",
            field="code",
            rule="unique_on_lock",
        )


def _check_room(session: Session, caller: Caller, lock: Smartlock, type_: int, adding: int) -> None:
    total, keypad = repo.auth_counts(session, caller.account_id, lock.id)
    if total + adding > MAX_AUTHS_PER_LOCK:
        raise Conflict(
            f"smartlock {lock.id} ({lock.name!r}) holds {total} keys, and a lock holds at most "
            f"{MAX_AUTHS_PER_LOCK}: delete keys that are no longer needed",
            field="smartlockId",
            rule="max_auths",
        )
    if type_ == KEYPAD_CODE_TYPE and keypad + adding > MAX_KEYPAD_CODES_PER_LOCK:
        raise Conflict(
            f"the keypad of smartlock {lock.id} ({lock.name!r}) holds {keypad} codes, and a "
            f"keypad holds at most {MAX_KEYPAD_CODES_PER_LOCK}: delete expired codes first",
            field="code",
            rule="max_keypad_codes",
        )


def create_keys(
    session: Session,
    caller: Caller,
    smartlock_ids: Sequence[int],
    body: SmartlockAuthCreate,
    *,
    ids_from_body: bool = False,
) -> Outcome:
    """Create the same key on each lock; all or nothing."""
    problems = Problems()
    if not smartlock_ids:
        problems.add("smartlockIds", "required", "smartlockIds must name at least one smartlock")
        problems.raise_if_any()
    if len(set(smartlock_ids)) != len(smartlock_ids):
        problems.add("smartlockIds", "unique", "smartlockIds names a smartlock more than once")
        problems.raise_if_any()
    locks = repo.locks_by_ids(session, caller.account_id, smartlock_ids)
    serialize_writers(session, locks)
    missing = [sid for sid in smartlock_ids if sid not in locks]
    if missing:
        if ids_from_body:
            raise NotFound(
                f"smartlockIds {missing} do not exist in your account: list your locks with "
                "GET /smartlock",
                field="smartlockIds",
            )
        raise lock_not_found(missing[0])
    if body.type not in CREATABLE_TYPES:
        problems.add(
            "type",
            "creatable_type",
            f"type {body.type} can't be created through the API: use 0 (app, the default), "
            "2 (fob) or 13 (keypad code)",
        )
        problems.raise_if_any()
    values = {
        column: getattr(body, column)
        for column in EDITABLE.values()
        if column in type(body).model_fields
    }
    values["type"] = body.type
    values["enabled"] = True
    values["smart_actions_enabled"] = bool(body.smart_actions_enabled)
    for smartlock_id in smartlock_ids:
        _check_key(session, caller, problems, values, locks[smartlock_id])
    problems.raise_if_any()
    for smartlock_id in smartlock_ids:
        lock = locks[smartlock_id]
        _check_code_free(session, caller, lock, values.get("code"), None)
        _check_room(session, caller, lock, body.type, 1)

    outcome = Outcome()
    # An invite goes to the key's user (if any) for the notified types.
    user = (
        repo.user(session, caller.account_id, body.account_user_id)
        if body.type in NOTIFIED_TYPES and body.account_user_id
        else None
    )
    account = session.get(Account, caller.account_id) if user is not None else None
    now = utcnow()
    for smartlock_id in smartlock_ids:
        row = SmartlockAuth(
            id=new_object_id(),
            account_id=caller.account_id,
            smartlock_id=smartlock_id,
            lock_count=0,
            created_at=now,
            updated_at=now,
            **values,
        )
        repo.mark_changed(session, row)
        session.add(row)
        audit.record(
            session,
            caller,
            "key.create",
            "key",
            row.id,
            after=audit.key_view(row),
            smartlock_id=smartlock_id,
        )
        outcome.auth_keys.append(row.id)
        outcome.lock_ids.add(smartlock_id)
        if user is not None and account is not None:
            queue_invite(session, account=account, lock=locks[smartlock_id], key=row, user=user)
            outcome.mails += 1
    session.flush()
    return outcome


def _changes(body: SmartlockAuthUpdate) -> dict[str, Any]:
    """Only the fields the request sent: omitted keeps, null clears."""
    sent = {}
    for python_name in body.model_fields_set:
        alias = type(body).model_fields[python_name].alias or python_name
        if alias in EDITABLE:
            sent[EDITABLE[alias]] = getattr(body, python_name)
    return sent


def _check_clearing(problems: Problems, changes: dict[str, Any]) -> None:
    for alias, column in EDITABLE.items():
        if column in changes and changes[column] is None and alias in NOT_CLEARABLE:
            problems.add(alias, "not_nullable", f"{alias} can't be null: {NOT_CLEARABLE[alias]}")


def _apply_update(
    session: Session, caller: Caller, row: SmartlockAuth, changes: dict[str, Any], outcome: Outcome
) -> None:
    if row.deleting:
        raise NotFound(
            f"key {row.id} ({row.name!r}) was deleted (it is being removed from its lock): "
            "it can't be changed; create a new key instead",
            field="id",
            rule="deleted",
        )
    lock = session.get(Smartlock, row.smartlock_id)
    assert lock is not None
    problems = Problems()
    _check_clearing(problems, changes)
    problems.raise_if_any()
    current = {column: getattr(row, column) for column in EDITABLE.values()}
    current["type"] = row.type
    merged = {**current, **changes}
    _check_key(session, caller, problems, merged, lock)
    problems.raise_if_any()
    if merged.get("code") != row.code:
        _check_code_free(session, caller, lock, merged.get("code"), row.id)
    if all(merged[column] == current[column] for column in changes):
        return
    holder = row.account_user_id
    before = audit.key_view(row)
    for column, value in changes.items():
        setattr(row, column, value)
    row.updated_at = utcnow()
    repo.mark_changed(session, row)
    old, new = audit.changes(before, audit.key_view(row))
    audit.record(
        session,
        caller,
        "key.update",
        "key",
        row.id,
        before=old,
        after=new,
        smartlock_id=row.smartlock_id,
    )
    outcome.auth_keys.append(row.id)
    outcome.lock_ids.add(row.smartlock_id)
    # Switching a key off tells its holder: their guest link (and keypad code) stops working.
    # Switching it on again sends nothing: the guest page checks ``enabled`` live, so the same
    # link simply works again, and the off-notice already says so.
    if current["enabled"] and not row.enabled:
        _count(outcome, queue_notice(session, "key_disabled", row, account_user_id=holder))


def _count(outcome: Outcome, mail: object | None) -> None:
    """Count a queued mail, so the answer nudges the mail worker."""
    if mail is not None:
        outcome.mails += 1


def update_key(
    session: Session, caller: Caller, smartlock_id: int, auth_key: str, body: SmartlockAuthUpdate
) -> Outcome:
    row = key_on_lock(session, caller, smartlock_id, auth_key, write=True)
    outcome = Outcome()
    _apply_update(session, caller, row, _changes(body), outcome)
    return outcome


def update_keys(
    session: Session, caller: Caller, bodies: Sequence[tuple[str, SmartlockAuthUpdate]]
) -> Outcome:
    """Update several keys; if any update is refused, none is made."""
    ids = [auth_key for auth_key, _ in bodies]
    if len(set(ids)) != len(ids):
        raise ValidationFailed(
            "the list names a key id more than once: merge those updates into one",
            field="id",
            rule="unique",
        )
    rows = _keys_for_write(session, caller, ids)
    missing = [auth_key for auth_key in ids if auth_key not in rows]
    if missing:
        raise NotFound(
            f"no keys with ids {missing} in your account: list the keys with GET /smartlock/auth",
            field="id",
            status=403,
        )
    outcome = Outcome()
    for index, (auth_key, body) in enumerate(bodies):
        try:
            _apply_update(session, caller, rows[auth_key], _changes(body), outcome)
        except ValidationFailed as failed:
            failed.message = f"update [{index}] (id {auth_key}): {failed.message}"
            raise
    return outcome


def _keys_for_write(
    session: Session, caller: Caller, auth_keys: Iterable[str]
) -> dict[str, SmartlockAuth]:
    """The caller's keys by id, read after taking the write locks of their locks."""
    found = repo.auths_by_ids(session, caller.account_id, auth_keys)
    serialize_writers(session, {row.smartlock_id for row in found.values()})
    return repo.auths_by_ids(session, caller.account_id, auth_keys)


def _delete(session: Session, caller: Caller, row: SmartlockAuth, outcome: Outcome) -> None:
    """Make the key a tombstone until its lock confirms the removal, and tell its holder (once:
    a key already deleted is left as it is). A disabled key's holder is told too."""
    if row.deleting:
        return
    row.deleting = True
    row.updated_at = utcnow()
    repo.mark_changed(session, row)
    audit.record_key_deleted(session, caller, row)
    outcome.auth_keys.append(row.id)
    outcome.lock_ids.add(row.smartlock_id)
    _count(outcome, queue_notice(session, "key_deleted", row))


def delete_key(session: Session, caller: Caller, smartlock_id: int, auth_key: str) -> Outcome:
    row = key_on_lock(session, caller, smartlock_id, auth_key, write=True)
    outcome = Outcome()
    _delete(session, caller, row, outcome)
    return outcome


def delete_keys(session: Session, caller: Caller, auth_keys: Sequence[str]) -> Outcome:
    rows = _keys_for_write(session, caller, auth_keys)
    missing = [auth_key for auth_key in auth_keys if auth_key not in rows]
    if missing:
        raise NotFound(
            f"no keys with ids {missing} in your account: nothing was deleted; list the keys "
            "with GET /smartlock/auth",
            field="id",
            status=403,
        )
    outcome = Outcome()
    for auth_key in dict.fromkeys(auth_keys):
        _delete(session, caller, rows[auth_key], outcome)
    return outcome


def delete_keys_of_user(session: Session, caller: Caller, account_user_id: int) -> Outcome:
    """Delete the user's keys, each with its notice: call it before the user row goes, in the
    same transaction (the notices read the user's name and address)."""
    outcome = Outcome()
    keys = repo.list_auths(session, caller.account_id, account_user_id=account_user_id)
    serialize_writers(session, {row.smartlock_id for row in keys})
    for row in repo.list_auths(session, caller.account_id, account_user_id=account_user_id):
        _delete(session, caller, row, outcome)
    return outcome
