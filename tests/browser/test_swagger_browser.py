"""Swagger UI in real Chromium: Authorize → Try it out (one click) → Execute → 200 with the
account's locks in the answer; optional parameters rendered plainly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import LiveServer, running_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with running_server(tmp_path / "live") as live:
        yield live


@pytest.fixture
def desktop(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def test_try_it_out_needs_one_click_and_execute_answers(server: LiveServer, desktop: Any) -> None:
    page = desktop
    page.goto(f"{server.url}/docs")
    page.get_by_role("button", name="Authorize").first.click()
    page.locator(".modal-ux input[type=text], .modal-ux input[type=password]").first.fill(
        server.token
    )
    page.locator(".modal-ux button.authorize").click()
    page.locator(".modal-ux button.btn-done").click()

    operation = page.locator("#operations-Smartlock-SmartlocksResource_get_get")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    execute = operation.get_by_role("button", name="Execute")
    execute.wait_for(state="visible")
    # optional query parameters show their type, not "integer | (integer | null)"
    parameters = operation.locator(".parameters").inner_text()
    assert "null" not in parameters, parameters
    execute.click()
    response = operation.locator(".responses-wrapper .live-responses-table")
    response.wait_for(state="visible")
    code = operation.locator(
        ".live-responses-table tr.response .response-col_status"
    ).first.inner_text()
    assert code.strip() == "200", code
    body = operation.locator(".live-responses-table .response-col_description pre").first
    assert "Front Door" in body.inner_text()
