"""/smartlock/{smartlockId}/auth and /smartlock/auth: keys, on one lock or across locks."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import Row
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from keyhouse.api.body import validate
from keyhouse.api.body_dependency import body_doc, json_body
from keyhouse.api.edge import INT32, LOCK_ID, ascii_int, echo
from keyhouse.api.idempotency import idempotent, respond
from keyhouse.api.paging import (
    PAGED_HEADERS_DOC,
    after_query,
    checked_cursor,
    checked_limit,
    limit_query,
    list_cap,
    page_response,
)
from keyhouse.api.responses import json_response
from keyhouse.api.security import (
    authenticated,
    caller_in,
    caller_of,
    client_address,
    require_scope,
    runtime_of,
    scoped,
)
from keyhouse.errors import ValidationFailed
from keyhouse.rules.paging import encode_cursor, split_page
from keyhouse.runtime import Runtime
from keyhouse.schemas.auth import (
    SmartlockAuth,
    SmartlockAuthCreate,
    SmartlockAuthMultiUpdate,
    SmartlockAuthUpdate,
    SmartlocksAuthCreate,
)
from keyhouse.services import auths, idempotency, lookup
from keyhouse.services.auths import Outcome
from keyhouse.services.caller import Caller
from keyhouse.services.idempotency import NO_CONTENT, IdempotentRequest
from keyhouse.services.present import Shape, auth_shape, to_json
from keyhouse.store import repo
from keyhouse.store.repo import ApiTokenRow

router = APIRouter(tags=["SmartlockAuth"])
AUTH_SCOPES = ("smartlock.auth",)
auth_scope = scoped(*AUTH_SCOPES)

TYPES_DOC = "Filter for types, comma-separated, e.g. 0,2,13"
TYPES_PATTERN = r"^\s*(-?[0-9]{1,10}\s*(,\s*-?[0-9]{1,10}\s*)*)?$"
_TYPE = re.compile(r"-?[0-9]{1,10}")
ASYNC_NOTE = (
    " Answers 204 once the change is stored and queued for the lock; the key shows "
    "syncState 'pending' and an operationId until the lock confirms, then 'applied' with its "
    "authId, or 'failed' with the lock's reason in error."
)


def parse_types(types: str | None) -> list[int] | None:
    if types is None or not types.strip():
        return None
    parts = types.split(",")
    if len(parts) > 100:
        raise ValidationFailed(
            f"types lists {len(parts)} values: at most 100", field="types", rule="max_items"
        )
    found = []
    for part in parts:
        if not _TYPE.fullmatch(part.strip()):
            raise ValidationFailed(
                f"types {echo(types)} is not a comma-separated list of numbers in ASCII "
                "digits: use e.g. 0,2,13",
                field="types",
                rule="format",
            )
        found.append(ascii_int(part, "types"))
    return found


async def _write(
    request: Request, key: IdempotentRequest | None, work: Callable[[Session], Outcome]
) -> Response:
    """Store the change (in a thread), then wait a moment for its locks without one. Under an
    idempotency key already used, nothing is stored (nor waited for): the first 204 again."""
    runtime = runtime_of(request)
    outcome, answer = await run_in_threadpool(
        idempotency.once, runtime.db, key, work, lambda _outcome: NO_CONTENT
    )
    if outcome is not None:
        await runtime.after_commit_async(outcome.lock_ids, outcome.mails)
    return respond(answer)


@router.get(
    "/smartlock/auth",
    summary="Get a list of smartlock authorizations for your smartlocks",
    operation_id="SmartlocksAuthsResource_get_get",
    responses={200: {"model": list[SmartlockAuth], "headers": PAGED_HEADERS_DOC}},
)
async def list_all_keys(
    request: Request,
    accountUserId: int | None = Query(
        None,
        description="A positive id filters for that user; a negative one for keys without",
        **INT32,
    ),
    types: str | None = Query(
        None, description=TYPES_DOC, json_schema_extra={"pattern": TYPES_PATTERN}
    ),
    limit: int | None = limit_query(),
    after: str | None = after_query(),
) -> Response:
    """Scope: smartlock.auth. By lock, then creation; paged by Keyhouse's limit and after."""
    return await all_keys_answer(request, accountUserId, types, limit, after)


async def all_keys_answer(
    request: Request,
    account_user_id: int | None,
    types: str | None,
    limit: int | None,
    after: str | None,
) -> Response:
    """The answer of ``GET /smartlock/auth`` (also run by ``api.fast_path``): the token and
    the listing in one trip to the thread pool and one session."""
    runtime = runtime_of(request)
    found, cursor, page_size = await run_in_threadpool(
        _all_keys_page, runtime, request, account_user_id, types, limit, after
    )
    return page_response(request, found, cursor, page_size)


def _all_keys_page(
    runtime: Runtime,
    request: Request,
    account_user_id: int | None,
    types: str | None,
    limit: int | None,
    after: str | None,
) -> tuple[list[Shape], str | None, int]:
    with runtime.db.read_connection() as session:
        caller = caller_in(session, request, AUTH_SCOPES)
        wanted = parse_types(types)
        page_size = checked_limit(limit, list_cap(request))
        start = checked_cursor(after, "auth")
        rows = repo.list_auth_rows(
            session,
            caller.account_id,
            types=wanted,
            account_user_id=account_user_id if account_user_id and account_user_id > 0 else None,
            without_user=account_user_id is not None and account_user_id < 0,
            after=start,
            limit=page_size + 1,
        )
        page, cursor = _auth_page(rows, page_size)
        return [auth_shape(row) for row in page], cursor, page_size


def _auth_page(rows: Sequence[Row[Any]], page_size: int) -> tuple[Sequence[Row[Any]], str | None]:
    """The page of keys read as ``page_size + 1``, and the cursor of the next (None: none)."""
    page, more = split_page(rows, page_size)
    return page, encode_cursor("auth", repo.auth_sort_key(page[-1])) if more else None


@router.put(
    "/smartlock/auth",
    summary="Creates asynchronous smartlock authorizations",
    operation_id="SmartlocksAuthsResource_put_put",
    status_code=204,
    openapi_extra=body_doc("SmartlocksAuthCreate", description="The key, and smartlockIds"),
    description="Scope: smartlock.auth. Creates the same key on every lock in smartlockIds; "
    "all or nothing." + ASYNC_NOTE,
)
async def create_keys(
    request: Request,
    caller: Caller = Depends(auth_scope),
    body: Any = Depends(json_body),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    data = validate(body, SmartlocksAuthCreate)
    return await _write(
        request,
        key,
        lambda session: auths.create_keys(
            session, caller, data.smartlock_ids, data, ids_from_body=True
        ),
    )


@router.post(
    "/smartlock/auth",
    summary="Updates smartlock authorizations asynchronously",
    operation_id="SmartlocksAuthsResource_post_post",
    status_code=204,
    openapi_extra=body_doc("SmartlockAuthMultiUpdate", array=True),
    description="Scope: smartlock.auth. Each update names its key by id and is partial; if any "
    "is refused, none is made." + ASYNC_NOTE,
)
async def update_keys(
    request: Request,
    caller: Caller = Depends(auth_scope),
    body: Any = Depends(json_body),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    updates = validate(body, list[SmartlockAuthMultiUpdate])
    return await _write(
        request,
        key,
        lambda session: auths.update_keys(session, caller, [(u.id, u) for u in updates]),
    )


@router.delete(
    "/smartlock/auth",
    summary="Deletes smartlock authorizations asynchronously",
    operation_id="SmartlocksAuthsResource_delete_delete",
    status_code=204,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The ids of the keys to delete",
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": {"type": "string"}},
                    "example": ["65219648fe57075d71a6cb01"],
                }
            },
        }
    },
    description="Scope: smartlock.auth. If any id is unknown, nothing is deleted." + ASYNC_NOTE,
)
async def delete_keys(
    request: Request,
    caller: Caller = Depends(auth_scope),
    body: Any = Depends(json_body),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    ids = validate(body, list[str])
    return await _write(request, key, lambda session: auths.delete_keys(session, caller, ids))


@router.get(
    "/smartlock/{smartlockId}/auth",
    summary="Get a list of smartlock authorizations",
    operation_id="SmartlockAuthsResource_get_get",
    responses={200: {"model": list[SmartlockAuth], "headers": PAGED_HEADERS_DOC}},
    description="Scope: smartlock.auth. The listing clients poll: it is served from a cache "
    "that every change to the lock's keys invalidates. By creation; paged by Keyhouse's "
    "limit and after (a lock holds far fewer keys than the cap).",
)
async def list_lock_keys(
    request: Request,
    smartlockId: int = Path(description="The smartlock id", **LOCK_ID),
    types: str | None = Query(
        None, description=TYPES_DOC, json_schema_extra={"pattern": TYPES_PATTERN}
    ),
    limit: int | None = limit_query(),
    after: str | None = after_query(),
) -> Response:
    return await lock_keys_answer(request, smartlockId, types, limit, after)


async def lock_keys_answer(
    request: Request, smartlock_id: int, types: str | None, limit: int | None, after: str | None
) -> Response:
    """The answer of ``GET /smartlock/{smartlockId}/auth`` (also run by ``api.fast_path``)."""
    # The hot path: token, scope and listing in one trip to the thread pool and one session.
    wanted = parse_types(types)
    page_size = checked_limit(limit, list_cap(request))
    start = checked_cursor(after, "auth")
    runtime = runtime_of(request)
    body, cursor = await run_in_threadpool(
        _lock_keys_json, runtime, request, smartlock_id, wanted, page_size, start
    )
    return page_response(request, body, cursor, page_size)


def _lock_keys_json(
    runtime: Runtime,
    request: Request,
    smartlock_id: int,
    wanted: list[int] | None,
    page_size: int,
    start: tuple[Any, ...] | None,
) -> tuple[bytes, str | None]:
    with runtime.db.read_connection() as session:
        # Token and the lock's listing version in one query; the version is read before the
        # rows, so rows read after it are at least as new as it says.
        def token_and_version(token_hash: str) -> tuple[ApiTokenRow | None, int | None]:
            found = repo.token_with_keys_version(session, token_hash, smartlock_id)
            return (found[0], found[1]) if found else (None, None)

        address = client_address(request)
        header = request.headers.get("authorization")
        row, version = authenticated(runtime, header, address, token_and_version)
        caller = require_scope(caller_of(row, address), AUTH_SCOPES)
        if version is None:
            raise lookup.lock_not_found(smartlock_id)
        cache_key = (smartlock_id, version, tuple(wanted or ()), page_size, start)
        listing = runtime.key_listings.get(cache_key)
        if listing is None:
            rows = repo.list_auth_rows(
                session,
                caller.account_id,
                smartlock_id=smartlock_id,
                types=wanted,
                after=start,
                limit=page_size + 1,
            )
            page, cursor = _auth_page(rows, page_size)
            listing = (to_json([auth_shape(row) for row in page]), cursor)
            runtime.key_listings.put(cache_key, listing)
    runtime.token_uses.record(row)
    return listing


@router.put(
    "/smartlock/{smartlockId}/auth",
    summary="Creates asynchronous a smartlock authorization",
    operation_id="SmartlockAuthsResource_put_put",
    status_code=204,
    openapi_extra=body_doc("SmartlockAuthCreate", description="The key to create"),
    description="Scope: smartlock.auth. An app key (type 0) sends its user an invite e-mail."
    + ASYNC_NOTE,
)
async def create_key(
    request: Request,
    smartlockId: int = Path(description="The smartlock id", **LOCK_ID),
    caller: Caller = Depends(auth_scope),
    body: Any = Depends(json_body),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    data = validate(body, SmartlockAuthCreate)
    return await _write(
        request, key, lambda session: auths.create_keys(session, caller, [smartlockId], data)
    )


@router.get(
    "/smartlock/{smartlockId}/auth/{id}",
    summary="Get a smartlock authorization",
    operation_id="SmartlockAuthResource_get_get",
    responses={200: {"model": SmartlockAuth}},
)
def get_key(
    request: Request,
    smartlockId: int = Path(description="The smartlock id", **LOCK_ID),
    id: str = Path(description="The key's unique id (24 hex digits)"),
    caller: Caller = Depends(auth_scope),
) -> Response:
    """Scope: smartlock.auth."""
    with runtime_of(request).db.read() as session:
        shape = auth_shape(lookup.key_on_lock(session, caller, smartlockId, id))
    return json_response(shape)


@router.post(
    "/smartlock/{smartlockId}/auth/{id}",
    summary="Updates asynchronous a smartlock authorization",
    operation_id="SmartlockAuthResource_post_post",
    status_code=204,
    openapi_extra=body_doc("SmartlockAuthUpdate", description="Only the fields to change"),
    description="Scope: smartlock.auth. Partial: an omitted field keeps its value, an explicit "
    "null clears it (a rename keeps the time window)." + ASYNC_NOTE,
)
async def update_key(
    request: Request,
    smartlockId: int = Path(description="The smartlock id", **LOCK_ID),
    id: str = Path(description="The key's unique id (24 hex digits)"),
    caller: Caller = Depends(auth_scope),
    body: Any = Depends(json_body),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    data = validate(body, SmartlockAuthUpdate)
    return await _write(
        request, key, lambda session: auths.update_key(session, caller, smartlockId, id, data)
    )


@router.delete(
    "/smartlock/{smartlockId}/auth/{id}",
    summary="Deletes asynchronous a smartlock authorization",
    operation_id="SmartlockAuthResource_delete_delete",
    status_code=204,
    description="Scope: smartlock.auth. The key shows syncState 'deleting' until the lock "
    "confirms, then it is gone.",
)
async def delete_key(
    request: Request,
    smartlockId: int = Path(description="The smartlock id", **LOCK_ID),
    id: str = Path(description="The key's unique id (24 hex digits)"),
    caller: Caller = Depends(auth_scope),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    return await _write(
        request, key, lambda session: auths.delete_key(session, caller, smartlockId, id)
    )
