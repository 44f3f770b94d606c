"""The ``Idempotency-Key`` header of writes: read and checked at the edge, answers replayed."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Header, Request
from fastapi.responses import Response

from keyhouse.api.responses import JSON
from keyhouse.api.security import current_caller
from keyhouse.errors import ValidationFailed
from keyhouse.rules.idempotency import HEADER, KEY_MAX, REPLAYED_HEADER, Fingerprint, body_hash
from keyhouse.rules.idempotency import key_problem as _key_problem
from keyhouse.services.caller import Caller
from keyhouse.services.idempotency import Answer, IdempotentRequest, run_once
from keyhouse.store.database import Database

HEADER_DOC = (
    "Makes a retry of this write safe: the same key (1 to 255 printable ASCII characters, e.g. "
    "a UUID) with the same method, path and body within 24 h is done once; a retry gets the "
    "first answer again, with Idempotent-Replayed: true. The same key with a different request "
    "answers 422; while the first is still running, 409 with Retry-After. Only successful "
    "answers are kept: after an error the corrected request may reuse the key."
)
HEADER_SCHEMA = {"minLength": 1, "maxLength": KEY_MAX, "pattern": "^[ -~]+$"}


async def idempotent(
    request: Request,
    caller: Caller = Depends(current_caller),
    key: str | None = Header(
        None, alias=HEADER, description=HEADER_DOC, json_schema_extra=HEADER_SCHEMA
    ),
) -> IdempotentRequest | None:
    """The write's idempotency key and fingerprint, or None when no key was sent."""
    if key is None:
        return None
    problem = _key_problem(key)
    if problem is not None:
        raise ValidationFailed(problem, field=HEADER, rule="idempotency_key")
    fingerprint = Fingerprint(request.method, request.url.path, body_hash(await request.body()))
    return IdempotentRequest(caller.token_id, key, fingerprint)


def answer_json(body: bytes) -> Answer:
    return Answer(200, body, JSON)


def once_response(
    db: Database, key: IdempotentRequest | None, make: Callable[[], Response]
) -> Response:
    """``make()`` at most once per idempotency key, for writes that are not one transaction
    (a lock moves, a virtual lock is changed): see ``idempotency.run_once``."""

    def attempt() -> Answer:
        made = make()
        return Answer(made.status_code, bytes(made.body) or None, made.media_type)

    return respond(run_once(db, key, attempt))


def respond(answer: Answer) -> Response:
    """The answer as given the first time; a replay says so in ``Idempotent-Replayed``."""
    headers = {REPLAYED_HEADER: "true"} if answer.replayed else None
    return Response(
        content=answer.body or b"",
        status_code=answer.status,
        media_type=answer.content_type,
        headers=headers,
    )
