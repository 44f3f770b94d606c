"""SQLite durability per transaction: what a client is told is stored commits with
``synchronous=FULL``; the reconciler's bookkeeping (``durable=False``) with the level the
``sqlite_reconciler_sync`` setting names, on the same pooled connections, in any order."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from keyhouse.settings import Settings
from keyhouse.store.database import Database

LEVELS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def level(db: Database, *, durable: bool) -> str:
    with db.session(durable=durable) as session:
        found = session.execute(text("PRAGMA synchronous")).scalar_one()
        session.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
        session.execute(text("INSERT INTO t VALUES (1)"))
    return LEVELS[found]


@pytest.mark.parametrize(("setting", "bookkeeping"), [("normal", "NORMAL"), ("full", "FULL")])
def test_each_transaction_commits_at_its_own_level(
    tmp_path: Path, setting: str, bookkeeping: str
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'd.db'}", reconciler_sync=setting)
    try:
        # Alternating, and with several connections in the pool, each transaction gets its
        # own level whichever connection served the one before.
        seen = [(durable, level(db, durable=durable)) for durable in [True, False] * 6]
        for durable, found in seen:
            assert found == ("FULL" if durable else bookkeeping), seen
        with db.read() as session:
            assert session.execute(text("SELECT count(*) FROM t")).scalar_one() == 12
    finally:
        db.dispose()


def test_the_setting_takes_only_the_two_levels() -> None:
    assert Settings(sqlite_reconciler_sync="full").sqlite_reconciler_sync == "full"
    with pytest.raises(ValueError, match="sqlite_reconciler_sync"):
        Settings(sqlite_reconciler_sync="off")
    with pytest.raises(ValueError, match="reconciler_sync"):
        Database("sqlite://", reconciler_sync="off")
