"""Smartlocks: the account's locks with their live state."""

from __future__ import annotations

from sqlalchemy.orm import Session

from keyhouse.services.caller import Caller
from keyhouse.services.lookup import lock_not_found
from keyhouse.services.present import Shape, smartlock_shape
from keyhouse.store import repo
from keyhouse.store.models import SimulatedLock


def list_smartlocks(
    session: Session, caller: Caller, *, auth_id: int | None, type_: int | None
) -> list[Shape]:
    rows = repo.list_locks(session, caller.account_id, auth_id=auth_id, type_=type_)
    return [smartlock_shape(lock, device) for lock, device in rows]


def get_smartlock(session: Session, caller: Caller, smartlock_id: int) -> Shape:
    row = repo.lock(session, caller.account_id, smartlock_id)
    if row is None:
        raise lock_not_found(smartlock_id, status=404)
    return smartlock_shape(row, session.get(SimulatedLock, smartlock_id))
