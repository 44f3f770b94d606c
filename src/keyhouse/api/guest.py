"""/guest/{secret}: the page an invite link opens. Server-rendered HTML and one stylesheet,
hidden from the OpenAPI document (it is no part of the Nuki Web API).

The page never names its secret: its form posts back to the page's own address. Every answer
carries the headers in ``SECURITY_HEADERS``; each client address may ask
``KEYHOUSE_GUEST_RATE_LIMIT`` times and look up ``KEYHOUSE_GUEST_UNKNOWN_LIMIT`` unknown links
(see docs/guest-page.md).
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from keyhouse.api.security import client_address, runtime_of
from keyhouse.rules.secrets_ import new_device_secret
from keyhouse.services import guest
from keyhouse.services.guest import GuestKey, GuestRefusal
from keyhouse.web import render, stylesheet
from keyhouse.web.words import browser_language, say, words

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

GUEST_PATH = "/guest/"
STYLESHEET_PATH = "/guest/assets/guest.css"
COOKIE = "keyhouse_device"
COOKIE_MAX_AGE = int(timedelta(days=400).total_seconds())  # the longest browsers keep one
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
TONES = {403: "bad", 404: "bad", 409: "warn", 410: "bad", 429: "warn", 503: "warn"}


def client_ip(request: Request) -> str:
    return client_address(request) or "unknown"


# --- answers ----------------------------------------------------------------------------------


def page(html: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def language_of(request: Request) -> str:
    """The page's language where no invite is known: the browser's choice of de or en."""
    return browser_language(request.headers.get("accept-language"))


def problem_page(refusal: GuestRefusal, *, back: bool = False) -> HTMLResponse:
    html = render(
        "problem.html",
        lang=refusal.language,
        w=words(refusal.language),
        title=refusal.title,
        message=refusal.message,
        code=refusal.code,
        tone=TONES.get(refusal.status, "bad"),
        back=back,
    )
    return page(html, refusal.status, refusal.headers)


def key_page(key: GuestKey, *, opened: bool) -> HTMLResponse:
    html = render(
        "key.html",
        lang=key.language,
        w=words(key.language),
        title=key.lock.name,
        lock_name=key.lock.name,
        key_name=key.key_name,
        validity=key.validity,
        valid_now=key.valid_now,
        now_text=key.now_text,
        can_open=key.can_open,
        note=key.note,
        opened=say(key.language, "opened", lock=key.lock.name) if opened else "",
    )
    return page(html)


def too_many(retry_after: str, language: str) -> HTMLResponse:
    return problem_page(
        GuestRefusal.of(
            429,
            "rate_limited",
            language,
            headers={"Retry-After": retry_after},
            seconds=retry_after,
        )
    )


def set_device_cookie(response: Response, request: Request, device_secret: str) -> None:
    response.set_cookie(
        COOKIE,
        device_secret,
        max_age=COOKIE_MAX_AGE,
        path=GUEST_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


# --- admission --------------------------------------------------------------------------------


def admit(request: Request) -> HTMLResponse | None:
    """None, or the 429 page: too many requests from this IP, or too many unknown links."""
    runtime = runtime_of(request)
    limits, settings = runtime.rate_limits, runtime.settings
    ip = client_ip(request)
    verdict = limits.hit(settings.guest_rate_limit, "guest", ip)
    if verdict.allowed:
        verdict = limits.test(settings.guest_unknown_limit, "guest-unknown", ip)
    if not verdict.allowed:
        return too_many(verdict.retry_after_header, language_of(request))
    return None


def refused(request: Request, refusal: GuestRefusal) -> HTMLResponse:
    if refusal.code == "unknown_link":
        runtime = runtime_of(request)
        runtime.rate_limits.hit(
            runtime.settings.guest_unknown_limit, "guest-unknown", client_ip(request)
        )
    return problem_page(refusal)


def failed(request: Request) -> HTMLResponse:
    # The path holds the link's secret: log the route, never the path.
    log.exception("the guest page failed on %s /guest/{secret}", request.method)
    return problem_page(GuestRefusal.of(500, "internal_error", language_of(request)))


# --- routes -----------------------------------------------------------------------------------


@router.get(STYLESHEET_PATH)
def guest_css() -> Response:
    return Response(
        stylesheet(),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/guest/{secret}")
def guest_page(request: Request, secret: str) -> Response:
    """The key: lock, name, when it works, whether now, and "Open" where it can."""
    try:
        if (limited := admit(request)) is not None:
            return limited
        try:
            key = guest.view(
                runtime_of(request),
                secret,
                request.cookies.get(COOKIE),
                browser_language=language_of(request),
            )
        except GuestRefusal as refusal:
            return refused(request, refusal)
        return key_page(key, opened=request.query_params.get("opened") == "1")
    except Exception:
        return failed(request)


@router.post("/guest/{secret}")
@router.post("/guest/{secret}/open")
def open_door(request: Request, secret: str) -> Response:
    """Open: binds the link to this browser on first use, then asks the lock to unlock."""
    try:
        if (limited := admit(request)) is not None:
            return limited
        cookie = request.cookies.get(COOKIE)
        device_secret = cookie if guest.looks_like_secret(cookie) else new_device_secret()
        runtime = runtime_of(request)
        try:
            key, bound = guest.redeem(
                runtime,
                secret,
                device_secret,
                browser_language=language_of(request),
                source=client_ip(request),
            )
        except GuestRefusal as refusal:
            return refused(request, refusal)
        try:
            guest.open_door(runtime, key)
            response: Response = RedirectResponse(
                f"{GUEST_PATH}{secret}?opened=1", status_code=303, headers=SECURITY_HEADERS
            )
        except GuestRefusal as refusal:
            response = problem_page(refusal, back=not request.url.path.endswith("/open"))
        if bound:
            set_device_cookie(response, request, device_secret)
        return response
    except Exception:
        return failed(request)


# --- installing -------------------------------------------------------------------------------


_GUEST_SECRET_IN_PATH = re.compile(r"(/guest/)(?!assets/)[^/?#\s\"]+")


class HideGuestSecrets(logging.Filter):
    """Replace the secret of /guest/<secret> paths in log records (uvicorn's access log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = hide_secrets(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                hide_secrets(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def hide_secrets(text: str) -> str:
    """``text`` with the secret of every /guest/<secret> path replaced by ``[secret]``."""
    return _GUEST_SECRET_IN_PATH.sub(r"\1[secret]", text)


def install(app: FastAPI) -> None:
    """Add the guest page to ``app``: its routes, its rate limiters, and the log filter."""
    app.include_router(router)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, HideGuestSecrets) for f in access.filters):
        access.addFilter(HideGuestSecrets())
