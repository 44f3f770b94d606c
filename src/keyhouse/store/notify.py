"""Wake-ups across processes: a committed key change tells every Keyhouse process on the same
PostgreSQL database which lock has work (``LISTEN``/``NOTIFY``), so a separate process starts on
it at once instead of at its next scan. SQLite has one process per file in practice; there the
in-process hand-over (``Runtime.after_commit``) is the wake-up, and the scan the safety net.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
CHANNEL = "keyhouse_locks"
# The payload that says "mail is waiting in the outbox" (a lock's is its id).
MAIL = "mail"
# How long the listener waits for a note before it looks whether it should stop: the most a
# stop (a server's shutdown, each test's app) waits for it. A wait costs no query.
STOP_CHECK_SECONDS = 0.1


def notify_lock(session: Session, smartlock_id: int) -> None:
    """Tell the other processes, when this transaction commits, that the lock has work."""
    _notify(session, str(smartlock_id))


def notify_mail(session: Session) -> None:
    """Tell the other processes, when this transaction commits, that mail waits to be sent."""
    _notify(session, MAIL)


def _notify(session: Session, payload: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": payload},
        )


class LockListener:
    """A thread holding one connection that LISTENs and hands each lock id to ``wake`` (and
    each "mail is waiting" to ``on_mail``)."""

    def __init__(
        self, url: str, wake: Callable[[int], None], on_mail: Callable[[], None] | None = None
    ) -> None:
        self.conninfo = (
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        self.wake = wake
        self.on_mail = on_mail
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="keyhouse-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        import psycopg

        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    while not self._stopping.is_set():
                        for note in connection.notifies(timeout=STOP_CHECK_SECONDS):
                            if note.payload.isdigit():
                                self.wake(int(note.payload))
                            elif note.payload == MAIL and self.on_mail is not None:
                                self.on_mail()
            except Exception as exc:  # the database went away: listen again shortly
                log.warning("listening for lock wake-ups failed (%s); retrying", type(exc).__name__)
                self._stopping.wait(1.0)
