"""When each API token was last used, recorded without a write on every request."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from keyhouse.rules.dates import utcnow
from keyhouse.store import repo
from keyhouse.store.database import Database
from keyhouse.store.repo import ApiTokenRow

log = logging.getLogger(__name__)
# "Last used" is recorded at most this often per token, so a read costs no write.
LAST_USED_EVERY = timedelta(minutes=1)


class TokenUses:
    """Records when each token was last used: at most once per ``LAST_USED_EVERY`` per token
    and process (the database update is conditional too, so processes don't pile up)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._tried: dict[int, float] = {}
        self._lock = threading.Lock()

    def due(self, row: ApiTokenRow, now: datetime) -> bool:
        if row.last_used_at is not None and now - row.last_used_at < LAST_USED_EVERY:
            return False
        clock = time.monotonic()
        with self._lock:
            if clock - self._tried.get(row.id, -1e9) < LAST_USED_EVERY.total_seconds():
                return False
            self._tried[row.id] = clock
            if len(self._tried) > 100_000:
                self._tried.clear()
            return True

    def record(self, row: ApiTokenRow) -> None:
        """Call outside any session of this thread (SQLite: no nested writers)."""
        now = utcnow()
        if not self.due(row, now):
            return
        try:
            with self.db.session() as session:
                repo.record_token_use(session, row.id, now, LAST_USED_EVERY)
        except SQLAlchemyError as error:  # a busy store must not fail the request
            log.warning("could not record the use of token %s: %s", row.id, error)
