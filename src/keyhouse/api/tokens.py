"""/keyhouse/tokens: the account owner's API tokens (Keyhouse's own, beside the Nuki paths)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from keyhouse.api.body import validate
from keyhouse.api.body_dependency import body_doc, json_body
from keyhouse.api.edge import ID32
from keyhouse.api.idempotency import answer_json, idempotent, respond
from keyhouse.api.responses import json_response
from keyhouse.api.security import runtime_of, scoped
from keyhouse.schemas.token import NewToken, TokenCreate, TokenInfo
from keyhouse.services import idempotency, tokens
from keyhouse.services.caller import Caller
from keyhouse.services.idempotency import NO_CONTENT, Answer, IdempotentRequest
from keyhouse.services.present import to_json

router = APIRouter(prefix="/keyhouse", tags=["Tokens (Keyhouse)"])
account_scope = scoped("account")


@router.get(
    "/tokens",
    summary="The account's API tokens (never their secrets)",
    responses={200: {"model": list[TokenInfo]}},
    description="Scope: account. Revoked and expired tokens are listed with their status.",
)
def list_tokens(request: Request, caller: Caller = Depends(account_scope)) -> Response:
    with runtime_of(request).db.read() as session:
        found = tokens.list_own(session, caller)
    return json_response(found)


@router.put(
    "/tokens",
    summary="Create an API token",
    responses={200: {"model": NewToken}},
    openapi_extra=body_doc("TokenCreate", description="The new token's name, scopes, expiry"),
    description="Scope: account. The answer holds the secret, shown only this once (a retry "
    "under the same Idempotency-Key gets the token without it: revoke that one and make "
    "another). The new token's scopes must be among the calling token's, and it can't outlive "
    "it.",
)
def create_token(
    request: Request,
    caller: Caller = Depends(account_scope),
    body: Any = Depends(json_body),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    data = validate(body, TokenCreate)

    def kept(shape: dict[str, Any]) -> Answer:
        # What a retry under the same Idempotency-Key gets: the token, not its secret (a
        # secret is never stored); the client may revoke it and make another.
        return answer_json(to_json({k: v for k, v in shape.items() if k != "token"}))

    made, answer = idempotency.once(
        runtime_of(request).db, key, lambda session: tokens.create_own(session, caller, data), kept
    )
    return json_response(made) if made is not None else respond(answer)


@router.delete(
    "/tokens/{id}",
    summary="Revoke an API token",
    status_code=204,
    description="Scope: account. At once: every request with it then gets 401 saying it was "
    "revoked (in every process: tokens are looked up in the store on each request).",
)
def revoke_token(
    request: Request,
    id: int = Path(description="The token's id", **ID32),
    caller: Caller = Depends(account_scope),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    _done, answer = idempotency.once(
        runtime_of(request).db,
        key,
        lambda session: tokens.revoke_own(session, caller, id),
        lambda _shape: NO_CONTENT,
    )
    return respond(answer)
