"""The drift check of a lock whose keys live in someone else's system too (Nuki's cloud): the
upstream's keys compared with Keyhouse's, the safer state taken (``rules.drift``), and the
owner told.

:func:`settle` runs inside the reconciler's recording transaction, after it locked the lock's
row and checked its lease, so nothing it reads changes before it writes:

* a key is judged only when it is settled (the upstream has its current revision, no create
  under way, not failed, not a tombstone): a key changed in Keyhouse meanwhile is pending and
  left to the reconciler, never overwritten with an older upstream state;
* narrowed at the upstream: Keyhouse's key takes the narrower fields, with a new revision that
  counts as held already (it is what the upstream holds); deleted there: the key goes from
  Keyhouse (never re-created: for an app key that would send Nuki's invite again);
* widened there (or renamed, or another code): Keyhouse's key gets a new revision and goes to
  the upstream again by the usual path (a put);
* a key the upstream lists and Keyhouse does not know, and that is no create of Keyhouse's
  under way (by the create marker's fingerprint), is listed in Keyhouse with origin
  ``upstream``: adopted, never deleted;
* each of these is an audit event of the key (``key.adopt``, ``key.restore``,
  ``key.import``), in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from keyhouse.rules import drift as rule
from keyhouse.rules.dates import format_api_datetime
from keyhouse.rules.ids import new_object_id
from keyhouse.store import audit, repo
from keyhouse.store.models import Smartlock, SmartlockAuth

log = logging.getLogger(__name__)

ORIGIN_UPSTREAM = "upstream"
NAME_MAX = 32
# A keypad code in an audit event (never the code itself).
CODE_SET, CODE_CHANGED = "(set)", "(changed)"
# The model's attribute of each field the merge decides.
COLUMNS = {
    "name": "name",
    "code": "code",
    "enabled": "enabled",
    "remoteAllowed": "remote_allowed",
    "allowedFromDate": "allowed_from_date",
    "allowedUntilDate": "allowed_until_date",
    "allowedWeekDays": "allowed_week_days",
    "allowedFromTime": "allowed_from_time",
    "allowedUntilTime": "allowed_until_time",
}


def settled(key: SmartlockAuth) -> bool:
    """Whether the upstream has the key's current revision, with nothing under way."""
    if key.deleting or key.create_marker is not None:
        return False
    if key.failed_revision is not None and key.failed_revision >= key.revision:
        return False
    return max(key.applied_revision, key.accepted_revision) >= key.revision


def _shown(values: Mapping[str, Any], code_word: str) -> dict[str, Any]:
    """Fields as an audit event shows them: dates as the API writes them, no keypad code."""
    shown: dict[str, Any] = {}
    for name, value in values.items():
        if name == "code" and value is not None:
            value = code_word
        elif isinstance(value, datetime):
            value = format_api_datetime(value)
        shown[name] = value
    return shown


def _record(session: Session, key: SmartlockAuth, action: str, before: Any, after: Any) -> None:
    audit.add(
        session,
        account_id=key.account_id,
        actor=audit.SYSTEM,
        action=action,
        target_type="key",
        target_id=key.id,
        smartlock_id=key.smartlock_id,
        before=before,
        after=after,
    )


def _key_view(key: SmartlockAuth) -> dict[str, Any]:
    view = {"id": key.id, "type": key.type, "origin": key.origin}
    view.update({name: getattr(key, column) for name, column in COLUMNS.items()})
    return {name: value for name, value in _shown(view, CODE_SET).items() if value is not None}


def _set(key: SmartlockAuth, merged: Mapping[str, Any], names: Any) -> None:
    for name in names:
        setattr(key, COLUMNS[name], merged[name])


def _judge(
    session: Session,
    key: SmartlockAuth,
    entry: Mapping[str, Any] | None,
    payload: Callable[[SmartlockAuth], dict[str, Any]],
    now: datetime,
    counts: dict[str, int],
) -> None:
    verdict = rule.decide(payload(key), entry)
    if verdict.kind == "none":
        key.verified_at = now
        return
    if verdict.deleted:
        log.info("key %s of lock %s deleted at the upstream: adopted", key.id, key.smartlock_id)
        _record(session, key, "key.adopt", _key_view(key), None)
        session.delete(key)
        counts["deleted"] += 1
        return
    if verdict.adopted:
        _record(
            session,
            key,
            "key.adopt",
            _shown({n: old for n, (old, _new) in verdict.adopted.items()}, CODE_CHANGED),
            _shown({n: new for n, (_old, new) in verdict.adopted.items()}, CODE_CHANGED),
        )
        counts["adopted"] += 1
    if verdict.put_back:
        before = (
            {"unreadable": verdict.unreadable[:200]}
            if verdict.unreadable
            else _shown({n: up for n, (up, _k) in verdict.put_back.items()}, CODE_CHANGED)
        )
        _record(
            session,
            key,
            "key.restore",
            before,
            _shown({n: k for n, (_up, k) in verdict.put_back.items()}, CODE_CHANGED),
        )
        counts["putBack"] += 1
    _set(key, verdict.merged, verdict.adopted)
    key.updated_at = now
    if verdict.put_back:
        # The merge goes to the upstream: pending until it holds it (the reconciler's put).
        repo.mark_changed(session, key)
        return
    # Adopted only: the upstream holds this state already, so the new revision is held too
    # (on the lock as well when the old one was).
    was_on_lock = key.applied_revision >= key.revision
    key.revision += 1
    key.accepted_revision = key.revision
    if was_on_lock:
        key.applied_revision = key.revision
    key.operation_id = None
    key.error = None
    key.verified_at = now


def _import(
    session: Session,
    lock: Smartlock,
    ref: str,
    entry: Mapping[str, Any],
    codes: set[int],
    now: datetime,
) -> bool:
    """List a key Keyhouse did not create (origin upstream); False when it can't be."""
    try:
        fields = rule.read_fields(entry)
    except rule.BadUpstreamKey as exc:
        log.info("lock %s: upstream key %s not listed: %s", lock.id, ref, exc)
        return False
    kind = entry.get("type")
    if isinstance(kind, bool) or not isinstance(kind, int) or not 0 <= kind <= 255:
        log.info("lock %s: upstream key %s not listed: type %r", lock.id, ref, kind)
        return False
    code = fields["code"]
    if code is not None and code in codes:
        # Keyhouse holds a live key with this code: two keys can't share it here.
        log.info("lock %s: upstream key %s not listed: its code is a Keyhouse key's", lock.id, ref)
        return False
    from_time, until_time = rule.keyhouse_times(
        fields["allowedFromTime"], fields["allowedUntilTime"]
    )
    # The slot: in the entry, or in the upstream's key as it is (a link may keep it whole).
    raw = entry.get("upstream")
    auth_id = entry.get("authId", raw.get("authId") if isinstance(raw, Mapping) else None)
    key = SmartlockAuth(
        id=new_object_id(),
        account_id=lock.account_id,
        smartlock_id=lock.id,
        account_user_id=None,  # the upstream's users are not Keyhouse's
        auth_id=auth_id if isinstance(auth_id, int) and not isinstance(auth_id, bool) else None,
        type=kind,
        name=(fields["name"] or f"Key {ref}")[:NAME_MAX],
        code=code,
        enabled=fields["enabled"],
        remote_allowed=fields["remoteAllowed"],
        allowed_from_date=fields["allowedFromDate"],
        allowed_until_date=fields["allowedUntilDate"],
        allowed_week_days=fields["allowedWeekDays"],
        allowed_from_time=from_time,
        allowed_until_time=until_time,
        created_at=now,
        updated_at=now,
        revision=1,
        applied_revision=1,
        accepted_revision=1,
        device_ref=ref,
        verified_at=now,
        origin=ORIGIN_UPSTREAM,
    )
    session.add(key)
    if code is not None:
        codes.add(code)
    _record(session, key, "key.import", None, _key_view(key))
    return True


def settle(
    session: Session,
    smartlock_id: int,
    held: Mapping[str, Mapping[str, Any]],
    now: datetime,
    payload: Callable[[SmartlockAuth], dict[str, Any]],
) -> dict[str, int]:
    """Judge each of the lock's keys against ``held`` (the upstream's keys by reference, as
    ``DeviceLink.read_all`` gives them), and list the ones Keyhouse does not know. The caller
    holds the lock's row and lease. Returns how many keys were adopted, put back, deleted
    (adopted as deleted) and imported."""
    counts = {"adopted": 0, "putBack": 0, "deleted": 0, "imported": 0}
    lock = session.get(Smartlock, smartlock_id)
    if lock is None:
        return counts
    keys = session.scalars(
        select(SmartlockAuth).where(SmartlockAuth.smartlock_id == smartlock_id)
    ).all()
    by_key = {entry.get("keyId"): ref for ref, entry in held.items() if entry.get("keyId")}
    ids = {key.id for key in keys}
    refs = {key.device_ref for key in keys if key.device_ref is not None}
    under_way: list[tuple[Any, ...]] = []
    unreadable_marker = False
    for key in keys:
        if key.create_marker is not None:
            try:
                under_way.append(rule.marker_fingerprint(key.create_marker))
            except ValueError:
                unreadable_marker = True
    codes = {key.code for key in keys if key.code is not None and not key.deleting}
    for key in keys:
        if not settled(key):
            continue  # the reconciler is on it
        ref = by_key.get(key.id, key.device_ref)
        if ref is None:
            continue  # not found without a reference: left as it is, never sent again
        _judge(session, key, held.get(ref), payload, now, counts)
    for ref, entry in held.items():
        if ref in refs or entry.get("keyId") in ids:
            continue
        if unreadable_marker or any(rule.matches(sent, entry) for sent in under_way):
            continue  # maybe Keyhouse's own create, still landing: never a second key
        if _import(session, lock, ref, entry, codes, now):
            counts["imported"] += 1
    repo.mark_checked(session, smartlock_id, now)
    return counts


def words(counts: Mapping[str, int]) -> list[str]:
    """The activity log's words for a drift check's outcome."""
    said = []
    if counts.get("adopted"):
        said.append(f"{counts['adopted']} key(s) narrowed at the upstream adopted")
    if counts.get("deleted"):
        said.append(f"{counts['deleted']} key(s) deleted at the upstream removed from Keyhouse")
    if counts.get("putBack"):
        said.append(f"{counts['putBack']} key(s) widened or changed at the upstream put back")
    if counts.get("imported"):
        said.append(f"{counts['imported']} key(s) made at the upstream listed (origin upstream)")
    return said
