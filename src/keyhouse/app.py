"""create_app(settings): the Keyhouse ASGI application.

``app_from_environment`` and ``api_from_environment`` build it from KEYHOUSE_* variables alone,
for process managers that start each worker process from an import string
(``keyhouse serve --workers N``: uvicorn's ``factory=True``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import swagger_ui_bundle
from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from keyhouse import __version__
from keyhouse.api import (
    account_users,
    audit,
    auths,
    doors,
    emulator,
    guest,
    invites,
    logs,
    smartlocks,
    tokens,
)
from keyhouse.api.edge import check_parameters
from keyhouse.api.errors import install_error_handlers
from keyhouse.api.fast_path import FastListings
from keyhouse.api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from keyhouse.api.openapi import build_openapi
from keyhouse.cpu import pin_to_one_cpu
from keyhouse.runtime import Runtime
from keyhouse.settings import Settings

SWAGGER_ASSETS = "/docs/assets"


LOG_FORMAT = "%(levelname)s:     %(name)s: %(message)s"


def configure_logging() -> None:
    """Keyhouse's own log lines at INFO, in uvicorn's layout; Alembic's only when they warn."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _pinned(settings: Settings) -> Settings:
    """One of ``serve --workers N``'s API processes takes a core of its own (keyhouse.cpu)."""
    cpu = pin_to_one_cpu(settings.cpu_pinning, settings.data)
    if cpu is not None:
        logging.getLogger("keyhouse").info(
            "API process %d runs on CPU %d (KEYHOUSE_CPU_PINNING=off to use every CPU)",
            os.getpid(),
            cpu,
        )
    return settings


def app_from_environment() -> FastAPI:
    """The app with its workers (locks, mail), configured by KEYHOUSE_* variables."""
    configure_logging()
    return create_app(runtime=Runtime(_pinned(Settings())))


def api_from_environment() -> FastAPI:
    """The app without workers (``keyhouse serve --no-worker``): ``keyhouse worker`` processes
    bring locks up to date and send mail."""
    configure_logging()
    return create_app(runtime=Runtime(_pinned(Settings()), background=False))


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """The app; it starts its workers on startup and stops them on shutdown."""
    runtime = runtime or Runtime(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(
        title="Keyhouse",
        version=__version__,
        lifespan=lifespan,
        # Every query and path parameter, on every route: text that can be stored.
        dependencies=[Depends(check_parameters)],
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    # /smartlock/auth must be matched before /smartlock/{smartlockId}.
    app.include_router(auths.router)
    app.include_router(logs.router)
    app.include_router(smartlocks.router)
    app.include_router(doors.router)
    app.include_router(emulator.router)
    app.include_router(invites.router)
    app.include_router(tokens.router)
    app.include_router(audit.router)
    app.include_router(account_users.router)
    # The guest page an invite link opens (HTML, and its CSS at /guest/assets/guest.css).
    guest.install(app)
    install_error_handlers(app)
    # Innermost: GET /smartlock/{id}/auth without a query, past FastAPI's routing.
    app.add_middleware(FastListings)
    if runtime.settings.nuki_mode:
        # The stand-in for api.nuki.io (docs/simulator.md); never in Keyhouse's normal mode.
        from keyhouse.api.nuki_mode import NukiModeMiddleware

        app.add_middleware(NukiModeMiddleware, runtime=runtime)
    app.add_middleware(BodyLimitMiddleware, max_bytes=runtime.settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    app.mount(
        SWAGGER_ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger"
    )

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Keyhouse API",
            swagger_js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_ASSETS}/favicon-32x32.png",
            # Not tryItOutEnabled: with it, the first click on "Try it out" turns try-out off
            # and only a second one shows Execute.
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app
