"""Error handlers: every failure leaves in the one error shape, with a 4xx that says why."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from keyhouse.api.body import problems_of
from keyhouse.api.responses import error_body, request_id_of
from keyhouse.errors import KeyhouseError, Problem, ValidationFailed, echo
from keyhouse.rules.violations import RuleViolation

log = logging.getLogger(__name__)


def _answer(request: Request, error: KeyhouseError) -> JSONResponse:
    return JSONResponse(
        error_body(error, request_id_of(request)), status_code=error.status, headers=error.headers
    )


def known_error_answer(request: Request, exc: Exception) -> JSONResponse | None:
    """The answer of the handlers below to a failure they know (ours, a rule's verdict), for
    a route that runs outside FastAPI's routing (``api.fast_path``); None for anything else."""
    if isinstance(exc, KeyhouseError):
        return _answer(request, exc)
    if isinstance(exc, RuleViolation):
        return _answer(request, _violation_error(exc))
    return None


def _violation_error(exc: RuleViolation) -> ValidationFailed:
    # A pure rule's verdict that a service let through: still the caller's input, a 400 that
    # names the field and the rule, never a 500.
    return ValidationFailed(exc.message, field=exc.field, rule=exc.rule)


def _parameter_problems(exc: RequestValidationError) -> list[Problem]:
    found = []
    for item in exc.errors():
        location = [str(part) for part in item.get("loc", ())]
        where, name = (location[0], location[-1]) if location else ("request", "?")
        value = item.get("input")
        expected = item.get("msg", "is not valid")
        kind = {"path": "path parameter", "query": "query parameter"}.get(where, where)
        rule = item.get("type", "invalid")
        if rule in _RANGE_KINDS:
            rule = "range"
        found.append(
            Problem(
                name, rule, f"the {kind} {name} = {echo(value)} is not valid: {expected.lower()}"
            )
        )
    return found


_RANGE_KINDS = (
    "greater_than_equal",
    "less_than_equal",
    "greater_than",
    "less_than",
    "int_parsing_size",
)


def _allowed_methods(request: Request) -> str:
    """Every method some route takes on this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for method in ("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"):
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            methods.add(method)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KeyhouseError)
    async def keyhouse_error(request: Request, exc: KeyhouseError) -> JSONResponse:
        return _answer(request, exc)

    @app.exception_handler(RequestValidationError)
    async def parameter_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = _parameter_problems(exc) or problems_of(exc)  # type: ignore[arg-type]
        return _answer(request, ValidationFailed.of(problems))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = (
                f"there is no endpoint {request.method} {request.url.path}: see /docs for the "
                "endpoints Keyhouse serves"
            )
            error = KeyhouseError(message, status=404)
            error.code = "no_such_endpoint"
        elif exc.status_code == 405:
            error = KeyhouseError(
                f"{request.method} is not allowed on {request.url.path}: see /docs for the "
                "methods it takes",
                status=405,
            )
            error.code = "method_not_allowed"
            error.headers = {"Allow": _allowed_methods(request)}  # RFC 9110, 15.5.6
        else:
            error = KeyhouseError(str(exc.detail), status=exc.status_code)
            error.code = "http_error"
        return _answer(request, error)

    @app.exception_handler(RuleViolation)
    async def rule_violation(request: Request, exc: RuleViolation) -> JSONResponse:
        return _answer(request, _violation_error(exc))

    @app.exception_handler(OverflowError)
    async def number_too_large(request: Request, exc: OverflowError) -> JSONResponse:
        # SQLite refuses to bind an integer beyond 64 bits; such an id or number can't exist.
        error = ValidationFailed(
            "a number in the request is too large: ids and numbers must fit in 64 bits "
            "(at most 9223372036854775807)",
            rule="range",
        )
        return _answer(request, error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        error = KeyhouseError(
            "Keyhouse failed on this request; this is a bug, please report it with the "
            f"requestId {request_id_of(request)}",
            status=500,
        )
        error.code = "internal_error"
        return _answer(request, error)
