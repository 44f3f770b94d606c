"""A real headless Chromium (Debian's /usr/bin/chromium, or KEYHOUSE_CHROMIUM) driven by
Playwright, for the guest page. Missing browser: the tests skip, except in CI (CI set), where
they fail, so CI can't pass by skipping them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str | None:
    """KEYHOUSE_CHROMIUM if set, else Debian's /usr/bin/chromium; None when not executable."""
    wanted = os.environ.get("KEYHOUSE_CHROMIUM") or "/usr/bin/chromium"
    found = shutil.which(wanted)
    return found if found and Path(found).is_file() else None


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One browser per test module. Not per session: while Playwright's sync API runs, its
    event loop counts as running in this thread, and later tests' asyncio.run() would fail."""
    path = chromium_path()
    if path is None:
        wanted = os.environ.get("KEYHOUSE_CHROMIUM") or "/usr/bin/chromium"
        unavailable(
            f"no Chromium at {wanted} (set KEYHOUSE_CHROMIUM, or install Debian's chromium "
            "package: apt-get install chromium) to run the browser tests"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def phone(chromium: Any) -> Iterator[Any]:
    """A fresh phone-sized browser tab (its own cookies), failing fast on a slow page."""
    context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.console_messages = []  # type: ignore[attr-defined]
    page.on("console", lambda message: page.console_messages.append(message.text))
    try:
        yield page
    finally:
        context.close()
