"""Shared pieces of the shapes: camelCase aliases, API dates, request-body conventions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

from annotated_types import Interval
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, model_validator
from pydantic.alias_generators import to_camel

from keyhouse.errors import Problem
from keyhouse.rules.dates import format_api_datetime


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {str(value).lower()}")
    return value


# An integer in a request: a JSON number or a numeric string ("42", as the real API accepts),
# but not true/false, which Python would otherwise read as 1/0. Bounded to the column it goes
# into: ``Int`` to the 32-bit integer columns, ``Int64`` to the 64-bit ones (smartlock ids).
Int = Annotated[int, BeforeValidator(_no_bool), Interval(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, BeforeValidator(_no_bool), Interval(ge=-(2**63), le=2**63 - 1)]
LockId = Annotated[int, BeforeValidator(_no_bool), Interval(ge=0, le=2**63 - 1)]

ApiDateTime = Annotated[
    datetime,
    PlainSerializer(format_api_datetime, return_type=str, when_used="json"),
]


class ResponseShape(BaseModel):
    """A response body: camelCase on the wire, absent fields omitted (dump with exclude_none)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class RequestShape(BaseModel):
    """A request body: camelCase fields, unknown fields refused with their name.

    Fields that only appear in responses (``id``, ``lockCount``…) are accepted and ignored, so a
    client may send back what it read. ``model_fields_set`` tells an omitted field from a null.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=False, extra="forbid", str_strip_whitespace=False
    )
    ignored_fields: ClassVar[frozenset[str]] = frozenset()
    renamed_fields: ClassVar[dict[str, str]] = {}

    @classmethod
    def value_problems(cls, data: dict[str, Any]) -> list[Problem]:
        """Rules on single values that the shape can check although the body as a whole is
        refused (e.g. a missing field), so one answer names every problem it can."""
        return []

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if k not in cls.ignored_fields}
        for old, new in cls.renamed_fields.items():
            if old in data and new not in data:
                data[new] = data.pop(old)
        return data
