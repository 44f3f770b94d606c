"""Swagger UI in a real browser (issue 15.16): Authorize, expand an operation, press "Try it
out" once, Execute, and see the 200 with the lock; optional parameters shown plainly."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import LiveServer


@pytest.fixture
def desktop(chromium: Any) -> Any:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def test_authorize_try_it_out_once_and_execute(desktop: Any, live_server: LiveServer) -> None:
    page = desktop
    page.goto(f"{live_server.url}/docs")
    page.get_by_role("button", name="Authorize").first.click()
    page.locator(".modal-ux input[type=text], .modal-ux input[type=password]").first.fill(
        live_server.token
    )
    page.locator(".modal-ux button.authorize").click()
    page.locator(".modal-ux button.btn-done").click()

    # GET /smartlock, whatever its tag and operationId
    path = page.locator(".opblock-summary-path[data-path='/smartlock']")
    block = page.locator(".opblock-get").filter(has=path).first
    block.locator(".opblock-summary").first.click()
    block.get_by_role("button", name="Try it out").click()
    execute = block.get_by_role("button", name="Execute")
    execute.wait_for(state="visible")  # after one click, not two
    # optional parameters are shown as their type, not "integer | (integer | null)"
    assert "null" not in block.locator(".parameters").inner_text()
    execute.click()
    answer = block.locator(".live-responses-table tbody .response-col_status")
    answer.first.wait_for(state="visible")
    assert answer.first.inner_text().strip().startswith("200")
    body = block.locator(".responses-wrapper .live-responses-table .microlight").first
    assert "Front Door" in body.inner_text()
