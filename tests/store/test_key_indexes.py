"""The key listings' queries use the index made for their filter, on SQLite and PostgreSQL.

The planner's choice is read from ``EXPLAIN`` of the very query the API runs
(``repo.auths_query``), on a table shaped like a large account: many keys, many users, each
user holding a few keys across the locks; once as a store is kept (Keyhouse never gathers
statistics, and SQLite then guesses), once after ``ANALYZE``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from conftest import fresh_postgres_database
from keyhouse.store import repo
from keyhouse.store.database import Database

KEYS = 20_000
USERS = 400
LOCKS = 50


@pytest.fixture(params=["sqlite", "postgres"])
def big_account(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Account 1 with LOCKS locks, USERS users and KEYS keys; account 2 with a few of its own."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'keys.db'}")
        yield from _filled(db)
        return
    with fresh_postgres_database() as url:
        yield from _filled(Database(url))


def _filled(db: Database) -> Iterator[Database]:
    db.migrate()
    now = "2026-11-20 10:00:00"
    with db.engine.begin() as connection:
        for account in (1, 2):
            connection.execute(
                text(
                    "INSERT INTO accounts (id, email, name, created_at) VALUES (:a, 'o', 'o', :n)"
                ),
                {"a": account, "n": now},
            )
        for lock in range(LOCKS + 1):
            connection.execute(
                text(
                    "INSERT INTO smartlocks (id, account_id, type, nuki_id, name, timezone,"
                    " keypad, favorite, auth_id, virtual, link, keys_version, created_at,"
                    " updated_at) VALUES (:id, :a, 4, 'ABCD', :name, 'Europe/Vienna', false,"
                    " false, 1, true, 'virtual', 0, :n, :n)"
                ),
                {"id": 1000 + lock, "a": 1 if lock < LOCKS else 2, "name": f"L{lock}", "n": now},
            )
        connection.execute(
            text(
                "INSERT INTO account_users (id, account_id, email, email_key, name, created_at,"
                " updated_at) VALUES (:id, :a, :e, :e, 'u', :n, :n)"
            ),
            [
                {"id": user, "a": 1 if user <= USERS else 2, "e": f"u{user}@x", "n": now}
                for user in range(1, USERS + 2)
            ],
        )
        connection.execute(
            text(
                "INSERT INTO smartlock_auths (id, account_id, smartlock_id, account_user_id,"
                " type, name, enabled, remote_allowed, smart_actions_enabled, lock_count,"
                " created_at, updated_at, revision, applied_revision, deleting, attempts)"
                " VALUES (:id, :a, :lock, :user, :type, 'k', true, false, false, 0, :n, :n,"
                " 1, 1, false, 0)"
            ),
            [
                {
                    "id": f"{key:024x}",
                    "a": 1,
                    "lock": 1000 + key % LOCKS,
                    "user": 1 + key % USERS,
                    "type": 13 if key % 100 == 0 else 0,
                    "n": now,
                }
                for key in range(KEYS)
            ]
            + [
                {"id": f"{KEYS + k:024x}", "a": 2, "lock": 1000 + LOCKS, "user": USERS + 1}
                | {"type": 0, "n": now}
                for k in range(5)
            ],
        )
    try:
        yield db
    finally:
        db.dispose()


def plans(db: Database, query: Any = None, **filters: object) -> list[str]:
    """The planner's plans for the account's key listing with ``filters`` (or ``query``):
    without statistics and with them."""
    query = query if query is not None else repo.auths_query(1, **filters)  # type: ignore[arg-type]
    sql = str(query.compile(db.engine, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
    found = []
    for statistics in (False, True):
        with db.engine.begin() as connection:
            if statistics:
                connection.execute(text("ANALYZE"))
            rows = connection.execute(text(explain + sql)).all()
        found.append("\n".join(str(row[-1]) for row in rows))
    return found


def test_one_users_keys_are_found_through_the_user_index(big_account: Database) -> None:
    for found in plans(big_account, account_user_id=7):
        assert "ix_auth_user" in found, found
        assert "ix_auth_listing" not in found, found


def test_keys_without_a_user_use_the_user_index_too(big_account: Database) -> None:
    for found in plans(big_account, without_user=True):
        assert "ix_auth_user" in found, found


def test_keys_of_a_type_are_found_through_the_type_index(big_account: Database) -> None:
    for found in plans(big_account, types=[13]):
        assert "ix_auth_account_type" in found, found


def test_the_listing_by_user_returns_the_users_keys_in_order(big_account: Database) -> None:
    with big_account.read() as session:
        rows = repo.list_auths(session, 1, account_user_id=7)
    assert len(rows) == KEYS // USERS
    assert {row.account_user_id for row in rows} == {7}
    order = [(row.smartlock_id, row.created_at, row.id) for row in rows]
    assert order == sorted(order)


def test_an_accounts_locks_are_a_range_of_their_own_index(big_account: Database) -> None:
    """GET /smartlock pages by lock id: not a walk of every account's locks by primary key."""
    if not big_account.is_sqlite:
        pytest.skip(
            "a few hundred locks: PostgreSQL rightly reads the small table whole; its plan on "
            "10,000 locks is in docs/benchmarks.md (bench/explain.py)"
        )
    for found in plans(big_account, repo.locks_query(2, limit=100)):
        assert "ix_lock_account_id" in found, found
