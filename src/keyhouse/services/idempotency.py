"""Safe retries: a write sent with an ``Idempotency-Key`` happens once within 24 h.

The key (per token), with the request's method, path and a hash of its body, is a row written
in the write's own transaction, with the answer the write gives:

* not found: the write runs and the row is inserted before its work (so a second request with
  the same key waits on it in the database, or finds it), then given the answer;
* found, same request: the write does not run again; the first answer is replayed;
* found, different request: 422 ``idempotency_mismatch``;
* found but older than 24 h: as if absent (the old row is replaced).

An error (any 4xx) rolls the transaction back, the row with it: only successful answers are
stored, so a corrected request may be sent again under the same key.

Lock actions are not one database transaction (the lock moves between two of them): their
row is committed first as "in progress" (a concurrent retry answers 409 with Retry-After),
given the answer when the lock has answered, and removed if the action failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from keyhouse.errors import Conflict, IdempotencyMismatch
from keyhouse.rules.dates import utcnow
from keyhouse.rules.idempotency import (
    HEADER,
    IN_PROGRESS,
    Fingerprint,
    abandoned,
    expired,
)
from keyhouse.store.database import Database
from keyhouse.store.idempotency import find_record
from keyhouse.store.models import IdempotencyRecord

T = TypeVar("T")
log = logging.getLogger(__name__)
# How often a request that found its key just taken by a concurrent one looks again.
TAKEN_ATTEMPTS = 3
IN_PROGRESS_RETRY_SECONDS = 1


@dataclass(frozen=True)
class IdempotentRequest:
    """A write sent with an ``Idempotency-Key``: whose, which key, and what was asked."""

    token_id: int
    key: str
    fingerprint: Fingerprint


@dataclass(frozen=True)
class Answer:
    """An answer as it is stored and replayed."""

    status: int
    body: bytes | None = None
    content_type: str | None = None
    replayed: bool = False


NO_CONTENT = Answer(204)


class _Taken(Exception):
    """A concurrent request with the same key inserted its row first."""


def in_progress() -> Conflict:
    return Conflict(
        f"a request with this {HEADER} is in progress: retry in "
        f"{IN_PROGRESS_RETRY_SECONDS} s to get its answer",
        field=HEADER,
        rule="idempotency_in_progress",
        headers={"Retry-After": str(IN_PROGRESS_RETRY_SECONDS)},
    )


def _mismatch(request: IdempotentRequest, record: IdempotencyRecord) -> IdempotencyMismatch:
    first = Fingerprint(record.method, record.path, record.body_hash)
    differences = " and ".join(request.fingerprint.differences(first))
    return IdempotencyMismatch(
        f"this {HEADER} was used with a different request ({differences} differ from "
        f"{record.method} {record.path}, sent first under it): send a new key for a new "
        "request",
        field=HEADER,
        rule="idempotency_mismatch",
    )


def _claim(
    session: Session, request: IdempotentRequest, *, takeover: bool = False
) -> IdempotencyRecord | Answer:
    """The stored answer to replay, or the new row (status ``IN_PROGRESS``) for this request."""
    now = utcnow()
    record = find_record(session, request.token_id, request.key)
    if record is not None and (
        expired(record.created_at, now)
        or (takeover and record.status == IN_PROGRESS and abandoned(record.created_at, now))
    ):
        # A statement, not session.delete: a concurrent request may have deleted it first
        # (its insert then makes ours fail, and we replay its answer).
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record.id))
        session.expunge(record)
        record = None
    if record is not None:
        found = Fingerprint(record.method, record.path, record.body_hash)
        if found != request.fingerprint:
            raise _mismatch(request, record)
        if record.status == IN_PROGRESS:
            raise in_progress()
        return Answer(record.status, record.body, record.content_type, replayed=True)
    fingerprint = request.fingerprint
    record = IdempotencyRecord(
        token_id=request.token_id,
        key=request.key,
        method=fingerprint.method,
        path=fingerprint.path,
        body_hash=fingerprint.body_hash,
        status=IN_PROGRESS,
        created_at=now,
    )
    session.add(record)
    try:
        # PostgreSQL: waits here while a concurrent request holds the same key uncommitted,
        # then fails if it committed. SQLite: writers take turns, so the lookup above saw it.
        session.flush()
    except IntegrityError as exc:
        raise _Taken() from exc
    return record


def _answer_into(record: IdempotencyRecord, answer: Answer) -> None:
    record.status = answer.status
    record.body = answer.body
    record.content_type = answer.content_type


def _taken_again(attempt: Callable[[], T]) -> T:
    """``attempt()``, again while a concurrent request with the same key wins the insert (the
    next look finds its answer to replay)."""
    for _ in range(TAKEN_ATTEMPTS):
        try:
            return attempt()
        except _Taken:
            continue
    raise in_progress()


def once(
    db: Database,
    request: IdempotentRequest | None,
    work: Callable[[Session], T],
    answer: Callable[[T], Answer],
    *,
    what: str = "the change",
) -> tuple[T | None, Answer]:
    """``work`` in a write transaction, at most once per idempotency key.

    Returns the work's result (None on a replay: nothing ran, so nothing is to be done after
    the commit) and the answer to give, computed from the result inside the transaction.
    """
    if request is None:
        result = db.transaction(work, what=what)
        return result, answer(result)

    def guarded(session: Session) -> tuple[T | None, Answer]:
        found = _claim(session, request)
        if isinstance(found, Answer):
            return None, found
        result = work(session)
        given = answer(result)
        _answer_into(found, given)
        return result, given

    return _taken_again(lambda: db.transaction(guarded, what=what))


def run_once(
    db: Database, request: IdempotentRequest | None, action: Callable[[], Answer]
) -> Answer:
    """``action()`` (a lock action: not one transaction) at most once per idempotency key."""
    if request is None:
        return action()

    def begin(session: Session) -> Answer | None:
        found = _claim(session, request, takeover=True)
        return found if isinstance(found, Answer) else None

    stored = _taken_again(lambda: db.transaction(begin, what="the idempotency key"))
    if stored is not None:
        return stored
    try:
        given = action()
    except BaseException:
        try:
            db.transaction(lambda session: _forget(session, request), what="the idempotency key")
        except Exception:  # the action's own error is the answer; the claim expires in 5 min
            log.warning("could not release idempotency key %r", request.key, exc_info=True)
        raise

    def finish(session: Session) -> None:
        record = find_record(session, request.token_id, request.key)
        if record is not None:
            _answer_into(record, given)

    db.transaction(finish, what="the idempotency key")
    return given


def _forget(session: Session, request: IdempotentRequest) -> None:
    session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.token_id == request.token_id,
            IdempotencyRecord.key == request.key,
            IdempotencyRecord.status == IN_PROGRESS,
        )
    )
