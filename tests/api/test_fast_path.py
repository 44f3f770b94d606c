"""The listings clients poll (GET /smartlock/{id}/auth, GET /smartlock/auth with or without
?accountUserId=N, GET /smartlock) are answered past FastAPI's routing (keyhouse.api.fast_path):
they must answer exactly as their routes do."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from tests.conftest import Tenant, tenant_with

from keyhouse.app import create_app


def _same(fast: httpx.Response, routed: httpx.Response) -> None:
    assert fast.status_code == routed.status_code, (fast.text, routed.text)
    for header in ("content-type", "www-authenticate", "retry-after", "x-has-more", "link"):
        assert fast.headers.get(header) == routed.headers.get(header), header
    fast_body, routed_body = fast.json(), routed.json()
    if isinstance(fast_body, dict):  # an error: the same but for its own request id
        fast_body.pop("requestId", None)
        routed_body.pop("requestId", None)
    assert fast_body == routed_body
    assert fast.headers["x-request-id"]  # the request-id middleware still wraps it


def test_the_fast_path_answers_as_the_route_does(tenant: Tenant, other_tenant: Tenant) -> None:
    cap = tenant.runtime.settings.list_max_items
    lock = tenant.keypad_lock
    tenant.create_key(lock, name="Cleaner", type=13, code=246813, remoteAllowed=False)
    tenant.create_key(
        lock, name="Guest", type=13, code=357924, remoteAllowed=False, allowedWeekDays=31
    )
    user = tenant.create_user()
    tenant.create_key(lock, name="Anna", accountUserId=user, remoteAllowed=True)
    narrow = tenant.token_with("smartlock")  # lacks smartlock.auth
    keyless = tenant.token_with("smartlock.auth")  # lacks smartlock and smartlock.readOnly

    cases = [
        ("/smartlock", tenant.headers),
        ("/smartlock", {"Authorization": f"Bearer {keyless}"}),  # scope: 403
        ("/smartlock", {"Authorization": "Bearer nope"}),  # 401
        ("/smartlock/auth", tenant.headers),
        (f"/smartlock/auth?accountUserId={user}", tenant.headers),
        ("/smartlock/auth?accountUserId=-1", tenant.headers),  # keys without a user
        ("/smartlock/auth?accountUserId=0", tenant.headers),
        ("/smartlock/auth?accountUserId=2147483647", tenant.headers),  # nobody's
        (f"/smartlock/auth?accountUserId={user}", {"Authorization": f"Bearer {narrow}"}),
        (f"/smartlock/{lock}/auth", tenant.headers),  # the keys
        (f"/smartlock/{tenant.plain_lock}/auth", tenant.headers),  # none
        (f"/smartlock/{other_tenant.keypad_lock}/auth", tenant.headers),  # not yours: 404
        ("/smartlock/987654321/auth", tenant.headers),  # no such lock: 404
        (f"/smartlock/{lock}/auth", {"Authorization": "Bearer nope"}),  # unknown token: 401
        (f"/smartlock/{lock}/auth", {"Authorization": "Basic x"}),  # not Bearer: 401
        (f"/smartlock/{lock}/auth", {"Authorization": f"Bearer {narrow}"}),  # scope: 403
    ]
    for path, headers in cases:
        fast = tenant.client.get(path, headers=headers)
        routed = tenant.client.get(
            f"{path}{'&' if '?' in path else '?'}limit={cap}", headers=headers
        )
        _same(fast, routed)
    assert [k["name"] for k in tenant.get(f"/smartlock/auth?accountUserId={user}").json()] == [
        "Anna"
    ]
    no_header = tenant.client.get(f"/smartlock/{lock}/auth")
    _same(no_header, tenant.client.get(f"/smartlock/{lock}/auth?limit={cap}"))
    assert no_header.status_code == 401


def test_the_fast_path_is_taken_and_leaves_everything_else_to_the_routes(tmp_path: Path) -> None:
    # Proof that it answers at all: an app whose routes are gone still lists a lock's keys
    # without a query, and nothing else.
    with tenant_with(tmp_path) as tenant:
        app = create_app(runtime=tenant.runtime)
        app.router.routes.clear()
        with TestClient(app, raise_server_exceptions=False) as bare:
            lock = tenant.keypad_lock
            for path in (
                f"/smartlock/{lock}/auth",
                "/smartlock",
                "/smartlock/auth",
                "/smartlock/auth?accountUserId=5",
                "/smartlock/auth?accountUserId=-1",
            ):
                assert bare.get(path, headers=tenant.headers).status_code == 200, path
            for path in (
                f"/smartlock/{lock}/auth?types=13",  # a query
                "/smartlock?type=4",
                "/smartlock/auth?types=13",
                "/smartlock/auth?accountUserId=5&types=13",
                "/smartlock/auth?accountUserId=05",  # not plain digits
                "/smartlock/auth?accountUserId=2147483648",  # beyond 32 bits
                "/smartlock/auth?accountuserid=5",  # not the parameter's name
                f"/smartlock/{lock}",
                f"/smartlock/0{lock}/auth",  # not the plain digits of an id
                f"/smartlock/{lock}/auth/",  # another path
                "/smartlock/99999999999999999999/auth",  # beyond 64 bits
            ):
                assert bare.get(path, headers=tenant.headers).status_code == 404, path
            answer = bare.post(f"/smartlock/{lock}/auth", headers=tenant.headers, json={})
            assert answer.status_code in (404, 405)


def test_the_fast_path_counts_against_the_rate_limit(tmp_path: Path) -> None:
    with tenant_with(tmp_path, rate_limit="3/minute") as tenant:
        path = f"/smartlock/{tenant.keypad_lock}/auth"
        statuses = [tenant.get(path).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        limited = tenant.get(path)
        assert limited.headers["retry-after"]
        assert limited.json()["error"]  # the one error shape
