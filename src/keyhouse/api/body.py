"""Request bodies: JSON read with errors that say where and why, then checked against a shape."""

from __future__ import annotations

import functools
import json
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from keyhouse.api.edge import check_json, parse_int
from keyhouse.errors import MalformedBody, Problem, ValidationFailed
from keyhouse.rules.violations import RuleViolation
from keyhouse.schemas.base import RequestShape

M = TypeVar("M", bound=BaseModel)

CONTINUATION_HINT = (
    "the body contains a backslash at the end of a line: that is a shell line continuation "
    "inside single quotes, which the shell passes on literally. Remove the backslashes from "
    "the JSON (a line break inside single quotes needs none)"
)
SHELL_CONTINUATIONS_WARNING = (
    '299 keyhouse "The JSON body contained shell line continuations (a backslash at the end of '
    "a line, passed on literally inside single quotes); Keyhouse read them as line breaks. "
    'Remove the backslashes: inside single quotes a line break needs none."'
)


def strip_shell_continuations(text: str) -> str | None:
    """Remove backslash-newline pairs that stand outside JSON strings; None if there are none.

    A backslash outside a string is never valid JSON, so this changes nothing that was valid.
    """
    out: list[str] = []
    in_string = False
    escaped = False
    found = False
    i = 0
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            i += 1
            continue
        if char == '"':
            in_string = True
        elif char == "\\":
            j = i + 1
            while j < len(text) and text[j] in " \t\r":
                j += 1
            if j < len(text) and text[j] == "\n":
                found = True
                out.append("\n")
                i = j + 1
                continue
        out.append(char)
        i += 1
    return "".join(out) if found else None


def _where(text: str, error: json.JSONDecodeError) -> str:
    line = text.splitlines()[error.lineno - 1] if text.splitlines() else ""
    if len(line) > 80:
        start = max(0, error.colno - 40)
        line = line[start : start + 80]
    return f"line {error.lineno}, column {error.colno}: {error.msg} (near {line.strip()!r})"


def parse_json(raw: bytes) -> tuple[Any, bool]:
    """The parsed body, and whether shell line continuations had to be read as line breaks.

    What can't go further (a NUL, a lone surrogate, a number beyond 64 bits, an array beyond
    the bulk limit) is refused here with its field: see :mod:`keyhouse.api.edge`.
    """
    data, repaired = _parse_json(raw)
    check_json(data)
    return data, repaired


def _loads(text: str) -> Any:
    return json.loads(text, parse_int=parse_int)


def _parse_json(raw: bytes) -> tuple[Any, bool]:
    if not raw.strip():
        raise MalformedBody(
            "the request has no body: send a JSON document with Content-Type: application/json",
            rule="json",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(
            f"the body is not UTF-8 text (byte {exc.start}): send JSON encoded as UTF-8",
            rule="json",
        ) from None
    try:
        return _loads(text), False
    except RecursionError:
        raise MalformedBody(
            "the body nests arrays or objects too deeply to be read: send a flatter JSON document",
            rule="json",
        ) from None
    except json.JSONDecodeError as error:
        repaired = strip_shell_continuations(text)
        if repaired is not None:
            try:
                return _loads(repaired), True
            except json.JSONDecodeError:
                pass
        message = f"the body is not valid JSON at {_where(text, error)}"
        if "\\\n" in text or "\\\r\n" in text:
            message += f"; {CONTINUATION_HINT}"
        if any(q in text for q in "‘’“”"):
            message += (
                "; the body contains typographic quotes (‘ ’ “ ”): JSON needs straight "
                'double quotes (")'
            )
        raise MalformedBody(message, rule="json") from None


def _field_of(location: tuple[int | str, ...]) -> str | None:
    parts = [str(p) if isinstance(p, int) else p for p in location if p not in ("body",)]
    return ".".join(parts) if parts else None


_RANGE_KINDS = ("greater_than_equal", "less_than_equal", "greater_than", "less_than")


def problems_of(error: ValidationError) -> list[Problem]:
    """Pydantic's errors as our problems: camelCase field, a rule code and a sentence."""
    found: list[Problem] = []
    for item in error.errors():
        location = tuple(item["loc"])
        field = _field_of(location)
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, RuleViolation):
            found.append(Problem(cause.field, cause.rule, cause.message))
            continue
        kind = item["type"]
        value = item.get("input")
        name = field or "the body"
        if kind == "missing":
            message = f"{name} is required"
            rule = "required"
        elif kind == "extra_forbidden":
            message = f"{name} is not a field of this request: remove it, or check its spelling"
            rule = "unknown_field"
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            message = f"{name} must be a JSON object, not {json.dumps(value)[:60]}"
            rule = "type"
        elif kind == "list_type":
            message = f"{name} must be a JSON array, not {json.dumps(value)[:60]}"
            rule = "type"
        elif kind in _RANGE_KINDS:
            context = item.get("ctx") or {}
            bound = next(iter(context.values()), "?")
            side = "at least" if kind.startswith("greater") else "at most"
            message = f"{name} {json.dumps(value)[:60]} is out of range: it must be {side} {bound}"
            rule = "range"
        else:
            shown = json.dumps(value)[:60] if value is not None or kind != "none_required" else ""
            detail = item["msg"].removeprefix("Value error, ")
            message = f"the supplied value {shown} for parameter '{name}' is not valid: {detail}"
            rule = kind
        found.append(Problem(field, rule, message))
    return found


@functools.cache
def _adapter(shape: Any) -> TypeAdapter[Any]:
    return TypeAdapter(shape)


def validate(raw: Any, shape: type[M] | Any) -> Any:
    """Check parsed JSON against a shape (a model or a type such as ``list[Model]``)."""
    adapter = _adapter(shape)
    try:
        return adapter.validate_python(raw, by_alias=True)
    except ValidationError as error:
        problems = problems_of(error)
        if isinstance(shape, type) and issubclass(shape, RequestShape) and isinstance(raw, dict):
            named = {problem.field for problem in problems}
            problems += [p for p in shape.value_problems(raw) if p.field not in named]
        raise ValidationFailed.of(sorted(problems, key=_usefulness)) from None


def _usefulness(problem: Problem) -> int:
    """The order problems are reported in: a bad value first (the caller wrote it), then an
    unknown field (a misspelling, which often explains a missing one), then missing fields."""
    return {"unknown_field": 1, "required": 2}.get(problem.rule, 0)
