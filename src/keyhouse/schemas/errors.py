"""The one error shape: what Nuki clients parse, plus our own clear fields."""

from __future__ import annotations

from pydantic import BaseModel, Field

# The fields of an error answer that Nuki's own API sends; the others are Keyhouse's.
NUKI_ERROR_FIELDS = ("detailMessage", "stackTrace", "suppressedExceptions")


class FieldProblem(BaseModel):
    field: str | None = Field(None, description="The request field at fault, camelCase")
    rule: str = Field(description="The rule it breaks, e.g. max_length, digits_1_to_9")
    message: str


class ErrorBody(BaseModel):
    """Nuki's ``detailMessage``/``stackTrace``/``suppressedExceptions``, then our fields."""

    detailMessage: str = Field(description="What is wrong and how to fix it")
    stackTrace: list[str] = Field(default_factory=list)
    suppressedExceptions: list[str] = Field(default_factory=list)
    error: str = Field(description="A stable error code, e.g. validation_failed, not_found")
    status: int
    field: str | None = None
    rule: str | None = None
    problems: list[FieldProblem] | None = None
    requestId: str | None = None
