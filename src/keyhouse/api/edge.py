"""The edge: what any request may carry, checked once before it reaches a rule or the store.

* Strings (body values and keys, query and path parameters): no NUL character and no lone
  UTF-16 surrogate; neither can be stored (PostgreSQL refuses NUL in text, no driver can encode
  a lone surrogate) and neither belongs in a name, an id or an address.
* Integers: each bounded to the column it goes into (``INT32`` for the ``integer`` columns,
  ``INT64`` for smartlock ids), with the range in the error; an integer literal of more than
  ``MAX_INT_DIGITS`` digits is refused before Python converts it.
* Digits are ASCII only (``types=³`` or ``types=٣`` are not numbers).
* Arrays: at most ``MAX_ITEMS`` elements (ids in one bulk request); the store chunks its
  ``IN`` lists below what either database takes (:data:`keyhouse.store.repo.IN_CHUNK`).
* Error answers quote at most ``ECHO_MAX`` characters of a value.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request

from keyhouse.errors import Problem, ValidationFailed, echo

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# A 64-bit integer has at most 19 digits; a longer literal is refused as it is read.
MAX_INT_DIGITS = 20
# Ids (or updates) in one bulk request: far below what a single statement may bind.
MAX_ITEMS = 10_000

# FastAPI parameter bounds (they also appear in the OpenAPI document as minimum/maximum).
INT32: dict[str, Any] = {"ge": INT32_MIN, "le": INT32_MAX}
ID32: dict[str, Any] = {"ge": 0, "le": INT32_MAX}
LOCK_ID: dict[str, Any] = {"ge": 0, "le": INT64_MAX}

_SURROGATE = re.compile("[\ud800-\udfff]")
_ASCII_INT = re.compile(r"-?[0-9]{1,10}")


def text_problem(value: str) -> tuple[str, str] | None:
    """(rule, what is wrong) for a string that can't be stored; None if it is fine."""
    if "\x00" in value:
        return "nul_character", "contains a NUL character (\\u0000)"
    found = _SURROGATE.search(value)
    if found is not None:
        return (
            "lone_surrogate",
            f"contains a lone UTF-16 surrogate (\\u{ord(found.group()):04x} at "
            f"position {found.start()}), which is not a character",
        )
    return None


def check_text(value: str, field: str, kind: str = "field") -> None:
    problem = text_problem(value)
    if problem is not None:
        rule, what = problem
        raise ValidationFailed(
            f"the {kind} {field} {what}: send text without it", field=field, rule=rule
        )


def range_message(field: str, value: object, low: int, high: int) -> str:
    return f"{field} {echo(value)} is out of range: it must be between {low} and {high}"


class HugeInt(str):
    """An integer literal too long to convert: reported with its field by :func:`check_json`."""


def parse_int(literal: str) -> int | HugeInt:
    """``json.loads(parse_int=…)``: refuse absurd literals before ``int()`` works on them."""
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        return HugeInt(literal)
    return int(literal)


def check_json(value: Any, path: str = "") -> None:
    """Walk a parsed body; what can't go further raises, naming its field.

    Iterative, so a body nested as deeply as the JSON parser allows can't exhaust the stack.
    """
    problems: list[Problem] = []
    pending: list[tuple[Any, str]] = [(value, path)]
    while pending and len(problems) < 20:
        item, where = pending.pop()
        problem = _problem_of(item, where)
        if problem is not None:
            problems.append(problem)
        elif isinstance(item, list):
            pending.extend(
                reversed([(c, f"{where}.{i}" if where else str(i)) for i, c in enumerate(item)])
            )
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                bad = text_problem(key)
                if bad is not None:
                    name = where or "the body"
                    problems.append(Problem(None, bad[0], f"a field name in {name} {bad[1]}"))
                    continue
                children.append((child, f"{where}.{key}" if where else key))
            pending.extend(reversed(children))
    if problems:
        raise ValidationFailed.of(problems)


def _problem_of(value: Any, path: str) -> Problem | None:
    """What is wrong with this value itself (not its elements); None if nothing."""
    name = path or "the body"
    field = path or None
    if isinstance(value, HugeInt):
        digits = len(value.lstrip("-"))
        return Problem(
            field,
            "range",
            f"{name} is a number of {digits} digits: no id or number here has more than 19 "
            f"(at most {INT64_MAX})",
        )
    if isinstance(value, str):
        problem = text_problem(value)
        return None if problem is None else Problem(field, problem[0], f"{name} {problem[1]}")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return Problem(field, "range", range_message(name, value, INT64_MIN, INT64_MAX))
    if isinstance(value, list) and len(value) > MAX_ITEMS:
        return Problem(
            field,
            "max_items",
            f"{name} has {len(value)} elements: at most {MAX_ITEMS} go in one request; split it "
            "into several",
        )
    return None


def ascii_int(text: str, field: str, low: int = INT32_MIN, high: int = INT32_MAX) -> int:
    """An integer written in ASCII digits, within [low, high]; anything else is a 400."""
    text = text.strip()
    if not _ASCII_INT.fullmatch(text):
        raise ValidationFailed(
            f"{field} {echo(text)} is not a number: use ASCII digits 0-9, e.g. 13",
            field=field,
            rule="format",
        )
    number = int(text)
    if not low <= number <= high:
        raise ValidationFailed(range_message(field, number, low, high), field=field, rule="range")
    return number


async def check_parameters(request: Request) -> None:
    """An app-wide dependency: every query and path parameter is text that can be stored."""
    for name, value in request.path_params.items():
        if isinstance(value, str):
            check_text(value, name, "path parameter")
    for name, value in request.query_params.multi_items():
        check_text(name, echo(name), "query parameter name")
        check_text(value, name, "query parameter")
