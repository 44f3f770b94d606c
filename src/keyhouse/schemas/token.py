"""Keyhouse's own shapes beside the Nuki paths: an API token as listed, and a new one."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from keyhouse.schemas.base import ApiDateTime, RequestShape, ResponseShape


class TokenInfo(ResponseShape):
    """A token as listed: never its secret (only a hash of it is stored)."""

    id: int
    name: str
    scopes: list[str]
    status: str = Field(description="active, expired or revoked")
    creation_date: ApiDateTime
    last_used_date: ApiDateTime | None = Field(
        None, description="Recorded at most once a minute; absent if never used"
    )
    expiry_date: ApiDateTime | None = Field(None, description="Absent: it never expires")
    revoked_date: ApiDateTime | None = None

    @classmethod
    def of(cls, token: Any, now: Any) -> TokenInfo:
        """From a ``services.admin.TokenSummary``."""
        return cls(
            id=token.id,
            name=token.name,
            scopes=list(token.scopes),
            status=token.status(now),
            creation_date=token.created_at,
            last_used_date=token.last_used_at,
            expiry_date=token.expires_at,
            revoked_date=token.revoked_at,
        )


class NewToken(TokenInfo):
    token: str | None = Field(
        None,
        description="The secret: shown only in this answer, keep it (absent when the answer is "
        "a replay under the same Idempotency-Key: the secret is stored nowhere)",
    )


class TokenCreate(RequestShape):
    name: str = Field(min_length=1, max_length=200, description="What the token is for")
    scopes: list[str] | None = Field(
        None,
        max_length=20,
        description="Scopes of the new token: a subset of the calling token's (default: all "
        "of the calling token's scopes)",
    )
    expiry_date: str | None = Field(
        None,
        max_length=40,
        description="When it stops working (ISO date-time); no later than the calling "
        "token's own expiry",
    )
    example: ClassVar[dict[str, Any]] = {
        "name": "cleaning schedule script",
        "scopes": ["smartlock", "smartlock.auth"],
        "expiryDate": "2027-06-30T23:59:59.000Z",
    }
