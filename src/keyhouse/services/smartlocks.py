"""Smartlocks: the account's locks with their live state."""

from __future__ import annotations

from sqlalchemy.orm import Session

from keyhouse.rules.dates import utcnow
from keyhouse.rules.paging import encode_cursor, split_page
from keyhouse.services.caller import Caller
from keyhouse.services.lookup import lock_not_found
from keyhouse.services.present import Shape, smartlock_shape
from keyhouse.store import repo, upstream
from keyhouse.store.models import SimulatedLock, UpstreamLock


def list_smartlocks(
    session: Session,
    caller: Caller,
    *,
    auth_id: int | None,
    type_: int | None,
    after: tuple[int] | None = None,
    limit: int | None = None,
) -> tuple[list[Shape], str | None]:
    """A page of the account's locks by id, and the cursor of the next (None: the last)."""
    rows = repo.list_locks(
        session,
        caller.account_id,
        auth_id=auth_id,
        type_=type_,
        after=after[0] if after else None,
        limit=None if limit is None else limit + 1,
    )
    page, more = split_page(rows, limit) if limit is not None else (rows, False)
    cursor = encode_cursor("lock", (page[-1][0].id,)) if more else None
    now = utcnow()
    shapes = [smartlock_shape(lock, device, now) for lock, device in page]
    imported = [lock.id for lock, _device in page if not lock.virtual]  # from Nuki's cloud
    if imported:
        found = upstream.upstream_of(session, imported)
        shapes = [_as_upstream_says(shape, found.get(shape["smartlockId"])) for shape in shapes]
    return shapes, cursor


def get_smartlock(session: Session, caller: Caller, smartlock_id: int) -> Shape:
    row = repo.lock(session, caller.account_id, smartlock_id)
    if row is None:
        raise lock_not_found(smartlock_id, status=404)
    shape = smartlock_shape(row, session.get(SimulatedLock, smartlock_id))
    if row.link != "virtual":
        shape = _as_upstream_says(shape, upstream.upstream_of(session, [row.id]).get(row.id))
    return shape


def _as_upstream_says(shape: Shape, row: UpstreamLock | None) -> Shape:
    """A lock imported from Nuki's cloud: its config, state and serverState as the upstream
    last reported them (Keyhouse's own fields kept)."""
    if row is None:
        return shape
    shape = dict(shape)
    if row.config:
        shape["config"] = {**row.config, "timezone": shape["config"].get("timezone")}
    if row.state:
        shape["state"] = dict(row.state)
    shape["serverState"] = row.server_state
    return shape
