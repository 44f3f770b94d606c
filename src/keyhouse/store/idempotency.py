"""The idempotency_keys table: a token's key to the first answer of its request."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from keyhouse.rules.dates import utcnow
from keyhouse.rules.idempotency import KEEP_FOR
from keyhouse.store.database import Database
from keyhouse.store.models import IdempotencyRecord

log = logging.getLogger(__name__)


def find_record(session: Session, token_id: int, key: str) -> IdempotencyRecord | None:
    return session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.token_id == token_id, IdempotencyRecord.key == key
        )
    )


def prune_records(session: Session, before: datetime) -> int:
    """Delete the records made before ``before``; how many went."""
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class Pruner:
    """Deletes records older than ``KEEP_FOR``, at most once per ``every`` seconds (from a
    worker's periodic scan: one indexed delete, in its own short transaction)."""

    def __init__(self, db: Database, every: float = 600.0) -> None:
        self.db = db
        self.every = every
        self._last = -1e18
        self._guard = threading.Lock()

    def maybe(self) -> None:
        with self._guard:
            clock = time.monotonic()
            if clock - self._last < self.every:
                return
            self._last = clock
        try:
            with self.db.session() as session:
                gone = prune_records(session, utcnow() - KEEP_FOR)
        except SQLAlchemyError as error:  # a busy store: next time
            log.warning("could not prune idempotency keys: %s", error)
            return
        if gone:
            log.info("pruned %d idempotency keys older than 24 h", gone)
