"""An account owner's own tokens through the API: list, create (never more than the calling
token may do), revoke."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from keyhouse.errors import MissingScope, ValidationFailed
from keyhouse.rules.dates import parse_api_datetime, utcnow
from keyhouse.schemas.token import NewToken, TokenCreate, TokenInfo
from keyhouse.services import admin
from keyhouse.services.caller import Caller
from keyhouse.store.models import ApiToken

Shape = dict[str, Any]


def _shape(model: TokenInfo) -> Shape:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def list_own(session: Session, caller: Caller) -> list[Shape]:
    now = utcnow()
    return [_shape(TokenInfo.of(t, now)) for t in admin.list_tokens(session, caller.account_id)]


def create_own(session: Session, caller: Caller, data: TokenCreate) -> Shape:
    """A new token of the caller's account: its scopes a subset of the caller's, its expiry
    no later than the caller's own (a token can't mint a stronger or longer-lived one)."""
    scopes = data.scopes if data.scopes is not None else sorted(caller.scopes)
    beyond = sorted(set(scopes) - caller.scopes)
    if beyond:
        raise MissingScope(
            f"the new token can't have scope(s) {', '.join(beyond)}: your token lacks them "
            f"(it has {', '.join(sorted(caller.scopes))})",
            field="scopes",
            rule="subset",
        )
    if not scopes:
        raise ValidationFailed(
            "scopes is empty: give at least one scope, or leave it out for all of yours",
            field="scopes",
            rule="min_items",
        )
    own = session.get(ApiToken, caller.token_id)
    limit = own.expires_at if own is not None else None
    # A date that is no date: the rule's RuleViolation, a 400 naming expiryDate (api/errors).
    expires_at = parse_api_datetime(data.expiry_date, "expiryDate") if data.expiry_date else None
    if limit is not None and (expires_at is None or expires_at > limit):
        raise ValidationFailed(
            f"expiryDate must be no later than your own token's expiry "
            f"({limit.strftime('%Y-%m-%dT%H:%M:%SZ')}): a token can't outlive its maker",
            field="expiryDate",
            rule="maximum",
        )
    secret = admin.create_token(
        session,
        account_id=caller.account_id,
        scopes=scopes,
        name=data.name,
        expires_at=expires_at,
        who=caller,
    )
    created = admin.list_tokens(session, caller.account_id)[-1]
    info = TokenInfo.of(created, utcnow())
    return _shape(NewToken(**info.model_dump(), token=secret))


def revoke_own(session: Session, caller: Caller, token_id: int) -> Shape:
    return _shape(
        TokenInfo.of(admin.revoke_token(session, token_id, caller.account_id, who=caller), utcnow())
    )
