"""The SDK's own checks of its arguments raise its own typed errors, before anything is sent
(issue 15.7), and its hints name the CLI's `keyhouse login` (issue 15.11)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx
import pydantic
import pytest

from keyhouse.client import (
    Client,
    InvalidArgument,
    KeyhouseClientError,
    MissingToken,
    ValidationError,
)


def refuse(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"nothing may be sent, but {request.method} {request.url} was")


@pytest.fixture
def client() -> Client:
    return Client(
        token="kh_test", base_url="http://keyhouse.test", transport=httpx.MockTransport(refuse)
    )


def test_a_misspelt_argument_is_the_sdks_validation_error(client: Client) -> None:
    with pytest.raises(ValidationError) as caught:
        client.create_key(1, name="Guest", account_user_id=3, remote_alowed=False)
    error = caught.value
    assert isinstance(error, InvalidArgument) and isinstance(error, ValueError)
    assert not isinstance(error, pydantic.ValidationError)
    assert error.status == 0
    assert (error.field, error.rule) == ("remote_alowed", "extra_forbidden")
    assert error.message.startswith(
        "remote_alowed is not a field of SmartlockAuthCreate: did you mean remote_allowed?"
    )
    assert [problem["field"] for problem in error.problems] == ["remote_alowed", "remote_allowed"]
    assert error.problems[1]["message"] == "remote_allowed is required by SmartlockAuthCreate"


def test_bad_values_and_naive_dates_are_validation_errors(client: Client) -> None:
    with pytest.raises(ValidationError) as caught:
        client.keypad(1, 345678, at="2026-12-07")
    assert caught.value.field == "at" and "2026-12-07" in caught.value.message
    with pytest.raises(ValidationError) as naive:
        client.create_key(1, name="G", remote_allowed=False, allowed_from_date=datetime(2026, 1, 1))
    assert naive.value.field == "allowed_from_date" and "no time zone" in naive.value.message
    with pytest.raises(ValidationError) as wrong_type:
        client.create_key(1, name="G", remote_allowed=False, allowed_week_days="weekdays")
    assert wrong_type.value.field == "allowed_week_days"
    assert wrong_type.value.message.startswith("allowed_week_days 'weekdays' is not valid")


def test_no_token_names_keyhouse_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("KEYHOUSE_TOKEN", "NUKI_API_TOKEN", "KEYHOUSE_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEYHOUSE_CONFIG", str(tmp_path / "config.toml"))
    with pytest.raises(MissingToken) as caught:
        Client(base_url="http://keyhouse.test")
    assert isinstance(caught.value, KeyhouseClientError)
    assert "keyhouse login --url URL --token TOKEN" in str(caught.value)
    assert "save_profile" not in str(caught.value)


@pytest.mark.parametrize("url", ["notaurl", "http://[::1", "ftp://example.com"])
def test_a_base_url_that_is_no_address_is_an_invalid_argument(url: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Client(token="kh_x", base_url=url)
    assert caught.value.field == "base_url"
    assert caught.value.message.startswith(f"base_url {url!r} is not a server address")
