"""AccountUser and its create/update bodies."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field

from keyhouse.schemas.base import ApiDateTime, Int, RequestShape, ResponseShape


class Language(StrEnum):
    en = "en"
    de = "de"
    es = "es"
    fr = "fr"
    it = "it"
    nl = "nl"
    cs = "cs"
    sk = "sk"


USER_NAME_MAX = 200
_EMAIL: dict[str, Any] = {"format": "email", "maxLength": 320}


class AccountUser(ResponseShape):
    account_user_id: int
    account_id: int
    type: int | None = Field(None, description="0 user, 1 company")
    email: str
    name: str
    language: str | None = None
    operation_id: str | None = None
    creation_date: ApiDateTime
    update_date: ApiDateTime


_USER_READ_ONLY = frozenset(
    {"accountUserId", "accountId", "operationId", "creationDate", "updateDate"}
)


class AccountUserCreate(RequestShape):
    ignored_fields: ClassVar[frozenset[str]] = _USER_READ_ONLY

    email: str = Field(
        description="A valid e-mail address, unique in the account; the part before the @ in "
        "ASCII (a domain in another script is stored in its xn-- form)",
        json_schema_extra=_EMAIL,
    )
    name: str = Field(min_length=1, max_length=USER_NAME_MAX)
    type: Int | None = Field(None, ge=0, le=1, description="0 user, 1 company")
    language: Language | None = None

    example: ClassVar[dict[str, Any]] = {
        "email": "guest@example.com",
        "name": "Guest",
        "language": "en",
    }


class AccountUserUpdate(RequestShape):
    ignored_fields: ClassVar[frozenset[str]] = _USER_READ_ONLY | {"type"}

    email: str | None = Field(None, json_schema_extra=_EMAIL)
    name: str | None = Field(None, min_length=1, max_length=USER_NAME_MAX)
    language: Language | None = None

    example: ClassVar[dict[str, Any]] = {"name": "Guest (flat 2)", "language": "de"}
