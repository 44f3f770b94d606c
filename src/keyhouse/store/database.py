"""Engine, sessions and schema migration for SQLite (default) and PostgreSQL.

Two kinds of session:

* ``session()`` writes. On SQLite it begins ``BEGIN IMMEDIATE``, so the write lock is taken
  before the first read: everything a write reads (limits, a key's current state) is still
  true when it commits, and writers of the one file run one after another. On PostgreSQL the
  services lock the smartlock rows they touch first (``repo.lock_smartlocks``).
* ``read()`` only reads. On SQLite a plain (deferred) ``BEGIN``: readers never wait for
  writers (WAL).

Durability on SQLite: a transaction whose commit a client is told of (``durable=True``, the
default) commits with ``synchronous=FULL``: it survives a power cut. The reconciler's own
bookkeeping (leases, the outcomes it records, the virtual lock's table) may commit with
``synchronous=NORMAL`` (``durable=False``; the ``sqlite_reconciler_sync`` setting, "normal" by
default): no fsync per commit. In WAL mode a power cut then loses at most a *suffix* of the
commits since the last fsync (the WAL is written in commit order and a FULL commit syncs all of
it), which leaves the store as a process killed before those commits would: keys pending again,
sent again, which the reconciler is built to survive. A process crash loses nothing either way.
Every acknowledged client change is still FULL, and syncs the bookkeeping before it too.

``transaction(work)`` runs ``work(session)`` in a write session and runs it again when the
database reports a deadlock, a serialization failure or a busy lock; if that keeps happening it
raises :class:`~keyhouse.errors.Locked` (423 with ``Retry-After``), never an internal error.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from keyhouse.errors import Locked
from keyhouse.store.files import secure_sqlite_file

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
T = TypeVar("T")
log = logging.getLogger(__name__)

# How often a transaction that lost a race inside the database is run again.
TRANSACTION_ATTEMPTS = 5
# PostgreSQL: serialization_failure, deadlock_detected, lock_not_available
RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}
WRITE_OPTION = "keyhouse_write"
# SQLite: False for the reconciler's bookkeeping, which may commit with synchronous=NORMAL.
DURABLE_OPTION = "keyhouse_durable"
SYNC_LEVELS = ("full", "normal")


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    # Transactions are begun by us (see _sqlite_begin), not by pysqlite's legacy guesswork.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: a commit (an acknowledged delete or disable) survives a power cut, in WAL mode too.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
    record.info["synchronous"] = "FULL"


def _sqlite_begin(connection: Connection) -> None:
    options = connection.get_execution_options()
    if not options.get(WRITE_OPTION, False):
        connection.exec_driver_sql("BEGIN")
        return
    # The pragma can't change inside a transaction: set it before, only when it differs.
    level = "FULL" if options.get(DURABLE_OPTION, True) else "NORMAL"
    info = connection.connection.info
    if info.get("synchronous") != level:
        connection.exec_driver_sql(f"PRAGMA synchronous={level}")
        info["synchronous"] = level
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_retryable(exc: BaseException) -> bool:
    """A deadlock, serialization failure or busy database: the same work may succeed again."""
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


UPGRADE_COMMAND = "keyhouse admin db upgrade"


def head_revision() -> str:
    """The newest schema revision this Keyhouse knows (its migrations' one head)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None, "the migrations have no head"
    return head


def known_revisions() -> set[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


class SchemaNotCurrent(Exception):
    """The database's schema is not the one this Keyhouse needs; the message says what to do."""

    def __init__(self, current: str | None, head: str) -> None:
        self.current = current
        self.head = head
        if current is None:
            message = (
                "the database at KEYHOUSE_DATABASE_URL holds no Keyhouse tables yet: create "
                f"them with '{UPGRADE_COMMAND}' (same KEYHOUSE_DATABASE_URL), then start again"
            )
        elif current in known_revisions():
            message = (
                f"the database at KEYHOUSE_DATABASE_URL has schema revision {current}, older "
                f"than this Keyhouse needs ({head}): run '{UPGRADE_COMMAND}' (same "
                "KEYHOUSE_DATABASE_URL) once, then start again"
            )
        else:
            message = (
                f"the database at KEYHOUSE_DATABASE_URL has schema revision {current}, which "
                f"this Keyhouse does not know (its newest is {head}): it was upgraded by a "
                "newer Keyhouse; run that version"
            )
        super().__init__(message)
        self.message = message


class Database:
    """One engine and its session factory; ``session()`` commits on success, rolls back on error."""

    def __init__(self, url: str, *, reconciler_sync: str = "normal", pool_size: int = 20) -> None:
        """``reconciler_sync``: SQLite's ``synchronous`` for ``durable=False`` transactions,
        "normal" or "full" (see the module's text); PostgreSQL commits every one durably.
        ``pool_size``: PostgreSQL's connections kept open (as many again for a moment)."""
        if reconciler_sync not in SYNC_LEVELS:
            raise ValueError(f"reconciler_sync must be one of {SYNC_LEVELS}: {reconciler_sync!r}")
        self.url = url
        if url.startswith("sqlite"):
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:" and not path.startswith("file:"):
                secure_sqlite_file(Path(path))  # 0600 before SQLite first opens it
            # A pool as large as the request thread pool: opening a connection (and setting
            # its pragmas) on every request costs more than the query it serves.
            self.engine: Engine = create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": 10},
                pool_size=40,
                max_overflow=10,
                hide_parameters=True,  # no keypad code or secret in a logged error
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            # Kept open for the requests in flight: a connection opened and closed per request
            # costs the server a new process each time (most of a listing's time under load).
            self.engine = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=pool_size,
                max_overflow=pool_size,
                hide_parameters=True,
            )
        # SQLite: this process's writers queue on a lock of our own before BEGIN IMMEDIATE.
        # SQLite's busy handler makes a waiting writer sleep and poll (1, 2, 5 … 100 ms), so
        # under many concurrent writes most time went to sleeping past free moments; a queue
        # hands the file over at once. Other processes still meet SQLite's busy timeout.
        self._write_queue: threading.RLock | None = threading.RLock() if self.is_sqlite else None
        self._writer = self.engine.execution_options(**{WRITE_OPTION: True})
        self._factory = sessionmaker(self._writer, expire_on_commit=False)
        bookkeeper = self.engine.execution_options(
            **{WRITE_OPTION: True, DURABLE_OPTION: reconciler_sync == "full"}
        )
        self._bookkeeping_factory = sessionmaker(bookkeeper, expire_on_commit=False)
        self._read_factory = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self, *, durable: bool = True) -> Iterator[Session]:
        """A write session: commits on success, rolls back on error. ``durable=False``: the
        reconciler's bookkeeping, which a power cut may lose (see the module's text)."""
        factory = self._factory if durable else self._bookkeeping_factory
        if self._write_queue is None:
            with self._open(factory) as session:
                yield session
            return
        with self._write_queue, self._open(factory) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session (never blocks on SQLite's write lock); nothing is committed."""
        with self._open(self._read_factory) as session:
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A read-only transaction on a plain connection, no ORM session: for the listings
        clients poll (a session's set-up and teardown cost as much as their cached answer)."""
        with self.engine.connect() as connection, connection.begin():
            yield connection

    @staticmethod
    @contextmanager
    def _open(factory: sessionmaker[Session]) -> Iterator[Session]:
        session = factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def transaction(
        self, work: Callable[[Session], T], *, what: str = "the change", durable: bool = True
    ) -> T:
        """``work(session)`` in a write session, run again if the database reports a race."""
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                with self.session(durable=durable) as session:
                    return work(session)
            except DBAPIError as exc:
                if not is_retryable(exc):
                    raise
                log.info(
                    "%s lost a race in the database (attempt %d): %s",
                    what,
                    attempt,
                    type(exc.orig).__name__,
                )
                time.sleep(random.uniform(0.005, 0.02) * attempt)
        raise Locked(
            f"{what} could not be stored now: other changes to the same lock are in progress; "
            "try again in a moment",
            rule="contention",
            headers={"Retry-After": "1"},
        )

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema up to ``revision`` (the newest Alembic revision by default)."""
        self._alembic("upgrade", revision)

    def revision(self) -> str | None:
        """The schema's Alembic revision; None for a database without Keyhouse's tables."""
        from alembic.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def ensure_schema(self) -> None:
        """Make the schema usable by this Keyhouse, as the store's owner allows.

        A SQLite file belongs to the one Keyhouse that opens it: it is brought up to date.
        A PostgreSQL database is shared by many processes, perhaps of different versions
        during an update: only ``keyhouse admin db upgrade`` changes it; here a schema that is
        not the newest this Keyhouse knows raises :class:`SchemaNotCurrent`.
        """
        if self.is_sqlite:
            self.migrate()
            return
        head = head_revision()
        current = self.revision()
        if current != head:
            raise SchemaNotCurrent(current, head)

    def downgrade(self, revision: str) -> None:
        """Take the schema back to ``revision`` (for the migrations' own tests)."""
        self._alembic("downgrade", revision)

    def _alembic(self, direction: str, revision: str) -> None:
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection_url"] = self.url
        with self._writer.begin() as connection:
            config.attributes["connection"] = connection
            getattr(command, direction)(config, revision)

    def dispose(self) -> None:
        self.engine.dispose()
