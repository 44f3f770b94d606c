"""Request bodies that are broken in the ways people break them, and the one error shape."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Tenant

ERROR_KEYS = {"detailMessage", "stackTrace", "suppressedExceptions", "error", "status"}
OPTIONAL_ERROR_KEYS = {"field", "rule", "problems", "requestId"}
JSON_HEADERS = {"Content-Type": "application/json"}

# The seed: a curl command whose JSON was split over lines with shell continuations inside
# single quotes, so the backslashes reach the server.
SEED_BODY = '{ \\\n"email": "seed@example.com", \\\n"name": "Seed User" \\\n}'


def send(tenant: Tenant, method: str, path: str, raw: str | bytes):
    return tenant.request(method, path, content=raw, headers=JSON_HEADERS)


def assert_error_shape(answer, status: int) -> dict[str, Any]:
    """The Nuki error body plus our fields, with the request id of the X-Request-Id header."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    error = answer.json()
    assert set(error) >= ERROR_KEYS, error
    assert set(error) <= ERROR_KEYS | OPTIONAL_ERROR_KEYS, error
    assert isinstance(error["detailMessage"], str) and error["detailMessage"]
    assert error["stackTrace"] == []
    assert error["suppressedExceptions"] == []
    assert error["status"] == status
    assert error["requestId"] == answer.headers["X-Request-Id"]
    for value in error.values():
        assert value is not None
    return error


# --- malformed JSON -----------------------------------------------------------------------


def test_malformed_json_is_400_with_line_and_column(tenant: Tenant) -> None:
    answer = send(tenant, "PUT", "/account/user", '{\n  "email": "a@example.com",\n  "name" X\n}')
    error = assert_error_shape(answer, 400)
    assert error["error"] == "malformed_json"
    assert "line 3" in error["detailMessage"]
    assert "column" in error["detailMessage"]
    assert tenant.get("/account/user").json() == []


def test_seed_body_with_shell_line_continuations_is_accepted_with_a_warning(
    tenant: Tenant,
) -> None:
    answer = send(tenant, "PUT", "/account/user", SEED_BODY)
    assert answer.status_code == 200, answer.text
    user = answer.json()
    assert user["email"] == "seed@example.com"
    assert user["name"] == "Seed User"
    warning = answer.headers["Warning"]
    assert warning.startswith("299 ")
    assert "shell line continuations" in warning
    assert tenant.get(f"/account/user/{user['accountUserId']}").status_code == 200


def test_continuations_with_crlf_and_trailing_spaces_are_accepted(tenant: Tenant) -> None:
    body = '{ \\ \r\n"email": "crlf@example.com", \\\t\r\n"name": "CRLF" \\\r\n}'
    answer = send(tenant, "PUT", "/account/user", body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == "CRLF"
    assert "shell line continuations" in answer.headers["Warning"]


def test_backslash_newline_inside_a_string_is_not_rewritten(tenant: Tenant) -> None:
    """Inside a JSON string a backslash before a raw newline stays an error, never altered."""
    body = '{"email": "in-string@example.com", "name": "Two \\\nLines"}'
    answer = send(tenant, "PUT", "/account/user", body)
    assert_error_shape(answer, 400)
    assert tenant.get("/account/user").json() == []


def test_valid_json_gets_no_warning(tenant: Tenant) -> None:
    answer = send(tenant, "PUT", "/account/user", '{\n"email": "ok@example.com",\n"name": "Ok"\n}')
    assert answer.status_code == 200, answer.text
    assert "warning" not in answer.headers


def test_continuations_that_leave_invalid_json_are_explained(tenant: Tenant) -> None:
    body = '{ \\\n"email": "x@example.com", \\\n"name": "N", \\\n}'  # trailing comma
    answer = send(tenant, "PUT", "/account/user", body)
    error = assert_error_shape(answer, 400)
    assert error["error"] == "malformed_json"
    assert "shell line continuation" in error["detailMessage"]
    assert "line" in error["detailMessage"] and "column" in error["detailMessage"]
    assert "warning" not in answer.headers
    assert tenant.get("/account/user").json() == []


def test_typographic_quotes_are_named(tenant: Tenant) -> None:
    answer = send(tenant, "PUT", "/account/user", "{“email”: “x@example.com”, “name”: “N”}")
    error = assert_error_shape(answer, 400)
    assert error["error"] == "malformed_json"
    assert "typographic quotes" in error["detailMessage"]


def test_single_typographic_quotes_are_named(tenant: Tenant) -> None:
    answer = send(tenant, "PUT", "/account/user", "{‘email’: ‘x@example.com’}")
    assert "typographic quotes" in assert_error_shape(answer, 400)["detailMessage"]


@pytest.mark.parametrize("raw", [b"", b"   ", b"\n"])
def test_empty_body_is_400(tenant: Tenant, raw: bytes) -> None:
    answer = send(tenant, "PUT", "/account/user", raw)
    error = assert_error_shape(answer, 400)
    assert error["error"] == "malformed_json"
    assert "no body" in error["detailMessage"]


def test_body_that_is_not_utf8_is_400(tenant: Tenant) -> None:
    answer = send(tenant, "PUT", "/account/user", b'{"name": "\xff\xfe"}')
    error = assert_error_shape(answer, 400)
    assert "UTF-8" in error["detailMessage"]


def test_an_array_where_an_object_is_expected_is_400(tenant: Tenant) -> None:
    answer = tenant.put("/account/user", json=[{"email": "a@example.com", "name": "A"}])
    error = assert_error_shape(answer, 400)
    assert error["rule"] == "type"
    assert "object" in error["detailMessage"]
    assert tenant.get("/account/user").json() == []


def test_an_object_where_an_array_is_expected_is_400(tenant: Tenant) -> None:
    answer = tenant.delete("/smartlock/auth", json={"id": "65219648fe57075d71a6cb01"})
    error = assert_error_shape(answer, 400)
    assert "array" in error["detailMessage"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/account/user"), ("PUT", "/smartlock/auth"), ("POST", "/smartlock/auth")],
)
def test_null_body_is_400(tenant: Tenant, method: str, path: str) -> None:
    answer = send(tenant, method, path, "null")
    error = assert_error_shape(answer, 400)
    assert error["error"] == "validation_failed"


def test_unknown_field_is_400_naming_it(tenant: Tenant) -> None:
    answer = tenant.put("/account/user", json={"emial": "a@example.com", "name": "Typo"})
    error = assert_error_shape(answer, 400)
    problems = {(p.get("field"), p["rule"]) for p in error["problems"]}
    assert ("emial", "unknown_field") in problems
    assert ("email", "required") in problems
    typo = tenant.put(
        "/account/user", json={"email": "a@example.com", "name": "Typo", "emial": "b@example.com"}
    )
    only = assert_error_shape(typo, 400)
    assert only["rule"] == "unknown_field"
    assert only["field"] == "emial"
    assert "emial" in only["detailMessage"]
    assert tenant.get("/account/user").json() == []


def test_read_only_fields_sent_back_are_ignored(tenant: Tenant) -> None:
    """A client may send back what it read; the ids and dates in it are not taken over."""
    answer = tenant.put(
        "/account/user",
        json={
            "email": "echo@example.com",
            "name": "Echo",
            "accountUserId": 999,
            "accountId": 999,
            "creationDate": "2001-01-01T00:00:00.000Z",
        },
    )
    assert answer.status_code == 200, answer.text
    user = answer.json()
    assert user["accountUserId"] != 999
    assert user["accountId"] == tenant.account_id
    assert not user["creationDate"].startswith("2001")


# --- the error shape everywhere -----------------------------------------------------------


def test_unknown_path_is_404_in_the_error_shape(tenant: Tenant) -> None:
    answer = tenant.get("/smartlocks")
    error = assert_error_shape(answer, 404)
    assert error["error"] == "no_such_endpoint"
    assert "/smartlocks" in error["detailMessage"]


def test_unknown_path_without_a_token_is_also_404_in_the_error_shape(tenant: Tenant) -> None:
    assert_error_shape(tenant.client.get("/no/such/thing"), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/smartlock"),
        ("DELETE", "/smartlock"),
        ("PATCH", "/account/user"),
        ("POST", "/account/user"),
    ],
)
def test_wrong_method_is_405_in_the_error_shape(tenant: Tenant, method: str, path: str) -> None:
    answer = tenant.request(method, path)
    error = assert_error_shape(answer, 405)
    assert error["error"] == "method_not_allowed"
    assert method in error["detailMessage"]


def test_every_answer_carries_a_fresh_request_id(tenant: Tenant) -> None:
    ids = set()
    for path in ("/smartlock", "/account/user", "/nope"):
        answer = tenant.get(path)
        request_id = answer.headers["X-Request-Id"]
        assert len(request_id) >= 16
        ids.add(request_id)
    assert len(ids) == 3


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/smartlock/abc", None, 400),
        ("GET", "/account/user/987654", None, 404),
        ("GET", "/account/user?limit=0", None, 400),
        ("PUT", "/account/user", {"email": "bad", "name": "N"}, 400),
        ("GET", "/smartlock/auth?types=a,b", None, 400),
        ("POST", "/smartlock/auth", [{"id": "65219648fe57075d71a6cb01"}], 403),
    ],
)
def test_errors_of_every_kind_share_the_shape(
    tenant: Tenant, method: str, path: str, body: Any, status: int
) -> None:
    kwargs = {} if body is None else {"json": body}
    assert_error_shape(tenant.request(method, path, **kwargs), status)


def test_duplicate_and_scope_errors_share_the_shape(tenant: Tenant) -> None:
    tenant.create_user("twice@example.com", "Twice")
    assert_error_shape(
        tenant.put("/account/user", json={"email": "twice@example.com", "name": "Again"}), 409
    )
    token = tenant.token_with("smartlock.readOnly")
    answer = tenant.client.get("/account/user", headers={"Authorization": f"Bearer {token}"})
    assert_error_shape(answer, 403)
    assert_error_shape(tenant.client.get("/smartlock"), 401)


# --- never a 500 --------------------------------------------------------------------------

HUGE = 10**30


def odd_requests(tenant: Tenant, user_id: int, key_id: str) -> list[tuple[str, str, Any]]:
    lock = tenant.plain_lock
    key = {"name": "Odd", "remoteAllowed": False}
    return [
        ("GET", f"/smartlock/{HUGE}", None),
        ("GET", "/smartlock/-5", None),
        ("GET", f"/smartlock?type={HUGE}", None),
        ("GET", f"/smartlock?authId={HUGE}", None),
        ("GET", "/smartlock?authId=-1", None),
        ("GET", f"/smartlock/{HUGE}/auth", None),
        ("GET", "/smartlock/-1/auth", None),
        ("GET", f"/smartlock/{lock}/auth/{HUGE}", None),
        ("GET", f"/smartlock/auth?accountUserId={HUGE}", None),
        ("GET", f"/smartlock/auth?accountUserId=-{HUGE}", None),
        ("GET", f"/smartlock/auth?types={HUGE}", None),
        ("GET", "/smartlock/auth?types=-1,,2", None),
        ("GET", f"/account/user/{HUGE}", None),
        ("GET", "/account/user/-1", None),
        ("GET", f"/account/user?offset={HUGE}", None),
        ("GET", f"/account/user?limit={HUGE}", None),
        ("GET", "/account/user?limit=ten", None),
        ("POST", f"/account/user/{HUGE}", {"name": "Huge"}),
        ("DELETE", f"/account/user/{HUGE}", None),
        ("DELETE", "/account/user/-7", None),
        ("PUT", "/account/user", {"email": "odd@example.com", "name": "Odd", "type": HUGE}),
        ("PUT", "/account/user", {"email": HUGE, "name": "Odd"}),
        ("PUT", "/account/user", {"email": "odd@example.com", "name": ["Odd"]}),
        ("PUT", "/account/user", {"email": "odd@example.com", "name": "Odd", "type": "zero"}),
        ("PUT", "/account/user", "null"),
        ("PUT", "/account/user", "1e999999"),
        ("PUT", "/account/user", '"just a string"'),
        ("PUT", "/account/user", "[" * 100_000 + "]" * 100_000),
        ("PUT", "/account/user", '{"a":' * 50_000 + "1" + "}" * 50_000),
        ("PUT", f"/smartlock/{HUGE}/auth", {**key, "accountUserId": user_id}),
        ("PUT", f"/smartlock/{lock}/auth", {**key, "accountUserId": HUGE}),
        ("PUT", f"/smartlock/{lock}/auth", {**key, "accountUserId": -HUGE}),
        ("PUT", f"/smartlock/{lock}/auth", {**key, "accountUserId": -1}),
        ("PUT", f"/smartlock/{lock}/auth", {**key, "accountUserId": "one"}),
        ("PUT", f"/smartlock/{lock}/auth", {**key, "accountUserId": 1.5}),
        ("PUT", f"/smartlock/{lock}/auth", {**key, "accountUserId": user_id, "type": HUGE}),
        ("PUT", f"/smartlock/{lock}/auth", {**key, "type": 13, "code": HUGE}),
        ("PUT", f"/smartlock/{lock}/auth", {**key, "accountUserId": user_id, "code": "abc"}),
        (
            "PUT",
            f"/smartlock/{lock}/auth",
            {**key, "accountUserId": user_id, "allowedWeekDays": HUGE},
        ),
        (
            "PUT",
            f"/smartlock/{lock}/auth",
            {**key, "accountUserId": user_id, "allowedFromDate": "9999-12-31T23:59:59-23:59"},
        ),
        ("PUT", f"/smartlock/{lock}/auth", "null"),
        ("PUT", "/smartlock/auth", {**key, "accountUserId": user_id, "smartlockIds": [HUGE]}),
        ("PUT", "/smartlock/auth", {**key, "accountUserId": user_id, "smartlockIds": [-1]}),
        ("PUT", "/smartlock/auth", {**key, "accountUserId": user_id, "smartlockIds": "all"}),
        ("PUT", "/smartlock/auth", {**key, "accountUserId": HUGE, "smartlockIds": [lock]}),
        ("POST", "/smartlock/auth", [{"id": HUGE}]),
        ("POST", "/smartlock/auth", [{"id": key_id, "accountUserId": HUGE}]),
        ("POST", "/smartlock/auth", [{"id": key_id, "code": HUGE}]),
        ("POST", "/smartlock/auth", "null"),
        ("POST", f"/smartlock/{lock}/auth/{key_id}", {"accountUserId": HUGE}),
        ("POST", f"/smartlock/{lock}/auth/{key_id}", {"allowedUntilTime": -HUGE}),
        ("POST", f"/smartlock/{HUGE}/auth/{key_id}", {"name": "x"}),
        ("DELETE", "/smartlock/auth", [HUGE]),
        ("DELETE", "/smartlock/auth", "null"),
        ("DELETE", f"/smartlock/{HUGE}/auth/{key_id}", None),
    ]


def test_odd_inputs_never_cause_a_500(tenant: Tenant) -> None:
    user_id = tenant.create_user()
    key = tenant.create_key(
        tenant.plain_lock, name="Kept", accountUserId=user_id, remoteAllowed=False
    )
    keys_before = tenant.keys()
    failures = []
    for method, path, body in odd_requests(tenant, user_id, key["id"]):
        if isinstance(body, str):
            answer = send(tenant, method, path, body)
        elif body is None:
            answer = tenant.request(method, path)
        else:
            answer = tenant.request(method, path, json=body)
        if answer.status_code >= 500:
            failures.append((method, path[:80], str(body)[:80], answer.status_code))
        elif answer.status_code >= 400:
            assert answer.json()["stackTrace"] == []
    assert failures == []
    # none of it changed the one key there is
    assert tenant.keys() == keys_before
    assert [u["accountUserId"] for u in tenant.get("/account/user").json()] == [user_id]


@pytest.mark.parametrize(
    "path",
    [f"/smartlock/{HUGE}", f"/account/user/{HUGE}", f"/smartlock/{HUGE}/auth"],
)
def test_a_too_large_id_is_a_4xx_in_the_error_shape(tenant: Tenant, path: str) -> None:
    answer = tenant.get(path)
    assert 400 <= answer.status_code < 500, answer.text
    assert_error_shape(answer, answer.status_code)


def test_too_deeply_nested_body_is_400(tenant: Tenant) -> None:
    answer = send(tenant, "PUT", "/account/user", "[" * 100_000 + "]" * 100_000)
    error = assert_error_shape(answer, 400)
    assert error["error"] == "malformed_json"
