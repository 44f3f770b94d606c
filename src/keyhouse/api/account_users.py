"""/account/user: the people keys are given to."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from keyhouse.api.body import validate
from keyhouse.api.body_dependency import body_doc, json_body
from keyhouse.api.edge import ID32, INT32_MAX
from keyhouse.api.idempotency import answer_json, idempotent, respond
from keyhouse.api.paging import (
    PAGED_HEADERS_DOC,
    after_query,
    checked_cursor,
    checked_limit,
    list_cap,
    page_response,
)
from keyhouse.api.responses import json_response
from keyhouse.api.security import runtime_of, scoped, scoped_all
from keyhouse.errors import ValidationFailed
from keyhouse.rules.paging import encode_cursor, split_page
from keyhouse.schemas.account_user import AccountUser, AccountUserCreate, AccountUserUpdate
from keyhouse.services import account_users, idempotency
from keyhouse.services.caller import Caller
from keyhouse.services.idempotency import NO_CONTENT, IdempotentRequest
from keyhouse.services.present import to_json, user_shape

router = APIRouter(tags=["AccountUser"])
user_scope = scoped("account", "smartlock.auth")
# Deleting a user deletes their keys: it needs the key scope as well (as the official
# document's security requirement lists both).
delete_scope = scoped_all(
    "account", "smartlock.auth", why="deleting a user deletes their keys, so it needs both"
)


@router.get(
    "/account/user",
    summary="Get a list of account users",
    operation_id="AccountUsersResource_get_get",
    responses={200: {"model": list[AccountUser], "headers": PAGED_HEADERS_DOC}},
)
def list_users(
    request: Request,
    email: str | None = Query(
        None, description="Filter for email (case-insensitive)", max_length=320
    ),
    offset: int = Query(
        0, description="The offset of the first user to return", ge=0, le=INT32_MAX
    ),
    limit: int | None = Query(
        None,
        description="How many users to return: default and maximum the server's list cap "
        "(KEYHOUSE_LIST_MAX_ITEMS, 10000 unless changed); over it the cap is used. When more "
        'follow, the answer has a Link header (rel="next")',
        ge=1,
        le=INT32_MAX,
    ),
    after: str | None = after_query(),
    caller: Caller = Depends(user_scope),
) -> Response:
    """Scopes: account or smartlock.auth. By id; the Link header's next page starts after the
    last user shown (Keyhouse's after), which no insert or delete in between can shift."""
    if offset < 0:
        raise ValidationFailed(
            f"offset {offset} is negative: use 0 or more", field="offset", rule="minimum"
        )
    page_size = checked_limit(limit, list_cap(request))
    start = checked_cursor(after, "user")
    if start is not None and offset:
        raise ValidationFailed(
            f"offset {offset} and after can't be combined: after already says where the page "
            "starts (follow the Link header's URL as it is)",
            field="offset",
            rule="exclusive",
        )
    with runtime_of(request).db.read() as session:
        rows = account_users.list_users(
            session,
            caller,
            email=email,
            offset=offset,
            limit=page_size + 1,
            after=start[0] if start else None,
        )
        page, more = split_page(rows, page_size)
        found = [user_shape(row) for row in page]
    cursor = encode_cursor("user", (page[-1].id,)) if more else None
    return page_response(request, found, cursor, page_size, drop=("offset",))


@router.put(
    "/account/user",
    summary="Create an account user",
    operation_id="AccountUsersResource_put_put",
    responses={200: {"model": AccountUser}},
    openapi_extra=body_doc("AccountUserCreate", description="Account user create representation"),
)
def create_user(
    request: Request,
    caller: Caller = Depends(user_scope),
    body: Any = Depends(json_body),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    """Scopes: account or smartlock.auth. The e-mail must be unique in the account (409)."""
    data = validate(body, AccountUserCreate)
    _, answer = idempotency.once(
        runtime_of(request).db,
        key,
        lambda session: to_json(user_shape(account_users.create_user(session, caller, data))),
        answer_json,
    )
    return respond(answer)


@router.get(
    "/account/user/{accountUserId}",
    summary="Get an account user",
    operation_id="AccountUserResource_get_get",
    responses={200: {"model": AccountUser}},
)
def get_user(
    request: Request,
    accountUserId: int = Path(description="The account user id", **ID32),
    caller: Caller = Depends(user_scope),
) -> Response:
    """Scopes: account or smartlock.auth."""
    with runtime_of(request).db.read() as session:
        shape = user_shape(account_users.get_user(session, caller, accountUserId))
    return json_response(shape)


@router.post(
    "/account/user/{accountUserId}",
    summary="Update an account user",
    operation_id="AccountUserResource_post_post",
    responses={200: {"model": AccountUser}},
    openapi_extra=body_doc("AccountUserUpdate", description="Account user update representation"),
)
def update_user(
    request: Request,
    accountUserId: int = Path(description="The account user id", **ID32),
    caller: Caller = Depends(user_scope),
    body: Any = Depends(json_body),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    """Scopes: account or smartlock.auth. Partial: omitted fields keep their value."""
    data = validate(body, AccountUserUpdate)
    _, answer = idempotency.once(
        runtime_of(request).db,
        key,
        lambda session: to_json(
            user_shape(account_users.update_user(session, caller, accountUserId, data))
        ),
        answer_json,
    )
    return respond(answer)


@router.delete(
    "/account/user/{accountUserId}",
    summary="Deletes asynchronous an account user",
    operation_id="AccountUserResource_delete_delete",
    status_code=204,
)
def delete_user(
    request: Request,
    accountUserId: int = Path(description="The account user id", **ID32),
    caller: Caller = Depends(delete_scope),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    """Scopes: account and smartlock.auth. The user's keys are removed from their locks."""
    runtime = runtime_of(request)
    outcome, answer = idempotency.once(
        runtime.db,
        key,
        lambda session: account_users.delete_user(session, caller, accountUserId),
        lambda _outcome: NO_CONTENT,
    )
    if outcome is not None:
        runtime.after_commit(outcome.lock_ids, outcome.mails)
    return respond(answer)
