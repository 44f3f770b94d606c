"""Paging at the edge: the ``limit`` and ``after`` query parameters of Keyhouse's own paging,
and the headers that tell a client there is more (``Link: <…>; rel="next"``, ``X-Has-More``,
``X-Page-Size``). A client that sends neither gets the first page up to the cap, and the
headers when the list goes on: never a silent truncation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import Response

from keyhouse.api.edge import INT32_MAX
from keyhouse.api.responses import JSON
from keyhouse.api.security import runtime_of
from keyhouse.errors import ValidationFailed
from keyhouse.rules.paging import CURSOR_MAX_LENGTH, CURSOR_PATTERN, decode_cursor, page_limit
from keyhouse.rules.violations import RuleViolation
from keyhouse.services.present import Shape, to_json

HAS_MORE = "X-Has-More"
PAGE_SIZE = "X-Page-Size"

LIMIT_DOC = (
    "How many items at most (Keyhouse): default and maximum the server's list cap "
    "(KEYHOUSE_LIST_MAX_ITEMS, 10000 unless changed); a larger value is taken as the cap. "
    'When the list goes on, the answer has a Link header with rel="next".'
)
AFTER_DOC = (
    'Where the page starts (Keyhouse): the opaque cursor from the Link header (rel="next") '
    "of the previous page; leave it out for the first page"
)


def limit_query() -> Any:
    return Query(None, description=LIMIT_DOC, ge=1, le=INT32_MAX)


def after_query() -> Any:
    return Query(
        None,
        description=AFTER_DOC,
        json_schema_extra={
            "minLength": 1,
            "maxLength": CURSOR_MAX_LENGTH,
            "pattern": CURSOR_PATTERN,
        },
    )


def list_cap(request: Request) -> int:
    """``KEYHOUSE_LIST_MAX_ITEMS`` of this server."""
    return runtime_of(request).settings.list_max_items


def checked_limit(limit: int | None, cap: int) -> int:
    try:
        return page_limit(limit, cap)
    except RuleViolation as violation:
        raise _refused(violation) from None


def checked_cursor(after: str | None, kind: str) -> tuple[Any, ...] | None:
    """The sort key in ``after`` (None for the first page); 400 naming ``after`` if bad."""
    if after is None:
        return None
    try:
        return decode_cursor(after, kind)
    except RuleViolation as violation:
        raise _refused(violation) from None


def _refused(violation: RuleViolation) -> ValidationFailed:
    return ValidationFailed(violation.message, field=violation.field, rule=violation.rule)


def next_link(
    request: Request, cursor: str, *, param: str = "after", drop: Sequence[str] = ()
) -> str:
    """The URL of the next page (path and query, RFC 3986 relative reference): the request's
    own filters, with ``param`` set to ``cursor`` and the ``drop`` parameters left out."""
    skip = {param, *drop}
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in skip]
    return f"{request.url.path}?{urlencode([*kept, (param, cursor)])}"


def paging_headers(
    request: Request,
    cursor: str | None,
    page_size: int,
    *,
    param: str = "after",
    drop: Sequence[str] = (),
) -> dict[str, str]:
    """``Link``, ``X-Has-More`` and ``X-Page-Size`` when there is a next page; none if not."""
    if cursor is None:
        return {}
    url = next_link(request, cursor, param=param, drop=drop)
    return {"Link": f'<{url}>; rel="next"', HAS_MORE: "true", PAGE_SIZE: str(page_size)}


def page_response(
    request: Request,
    items: Sequence[Shape] | bytes,
    cursor: str | None,
    page_size: int,
    *,
    param: str = "after",
    drop: Sequence[str] = (),
) -> Response:
    """A JSON list answer, with the paging headers when it goes on."""
    body = items if isinstance(items, bytes) else to_json(list(items))
    headers = paging_headers(request, cursor, page_size, param=param, drop=drop)
    return Response(content=body, media_type=JSON, headers=headers)


PAGED_HEADERS_DOC: dict[str, Any] = {
    "Link": {
        "description": 'When the list goes on: <URL of the next page>; rel="next" (RFC 8288)',
        "schema": {"type": "string"},
    },
    HAS_MORE: {
        "description": "true when the list goes on (absent on the last page)",
        "schema": {"type": "string", "enum": ["true"]},
    },
    PAGE_SIZE: {
        "description": "When the list goes on: the most items a page holds (the limit in force)",
        "schema": {"type": "string"},
    },
}
