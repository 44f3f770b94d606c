"""The cloud link's pure parts: what a create and a whole update send, how a created key is
recognised, and how the upstream's failures are classified (answers a real Nuki front end
gives, which the stand-in can't: 402, 409, 426, 5xx; served by an httpx transport)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from keyhouse.devices import nuki_api
from keyhouse.devices.nuki_cloud import (
    BROKEN_MARK,
    create_body,
    fingerprint,
    is_broken,
    matches,
    same,
    update_body,
)
from official_schemas import official_errors

TOKEN = "kh_secret_token_never_shown"

DATA = {
    "type": 13,
    "name": "Cleaner",
    "enabled": True,
    "remoteAllowed": False,
    "code": 345678,
    "allowedFromDate": "2026-12-01T08:00:00.000Z",
    "allowedUntilDate": None,
    "allowedWeekDays": 124,
    "allowedFromTime": 480,
    "allowedUntilTime": 1020,
}


def test_create_and_update_bodies_are_official_and_whole() -> None:
    created = create_body(DATA)
    assert official_errors("SmartlockAuthCreate", created, request=True) == []
    assert "allowedUntilDate" not in created  # no value: left out, never null
    upstream = {
        "id": "a" * 24,
        "accountUserId": 77,
        "fingerprints": {"x": "y"},
        "appId": 5,
        "name": "Old",
        "allowedWeekDays": 1,
    }
    body = update_body(upstream, {**DATA, "name": "Maid"})
    assert official_errors("SmartlockAuthUpdate", body, request=True) == []
    assert body["name"] == "Maid" and body["accountUserId"] == 77
    # The whole window, every time (Nuki wipes a window field an update leaves out).
    for name in ("allowedFromDate", "allowedWeekDays", "allowedFromTime", "allowedUntilTime"):
        assert body[name] == DATA[name]
    assert "fingerprints" not in body and "appId" not in body  # not in the update: Nuki keeps


def test_a_created_key_is_recognised_by_its_fingerprint_whatever_the_date_spelling() -> None:
    print_ = fingerprint(DATA)
    theirs: dict[str, Any] = {
        "id": "b" * 24,
        "smartlockId": 1,
        "type": 13,
        "name": "Cleaner",
        "code": 345678,
        "enabled": True,
        "remoteAllowed": False,
        "allowedFromDate": "2026-12-01T08:00:00Z",
        "allowedWeekDays": 124,
        "allowedFromTime": 480,
        "allowedUntilTime": 1020,
    }
    assert matches(theirs, print_)
    assert same(theirs, DATA)
    for change in ({"code": 345679}, {"allowedWeekDays": 0}, {"name": "X"}, {"accountUserId": 3}):
        assert not matches({**theirs, **change}, print_), change
    assert not matches({k: v for k, v in theirs.items() if k != "allowedFromTime"}, print_)
    assert not same({**theirs, "enabled": False}, DATA)


def _api(
    status: int, body: bytes = b"", content_type: str = "application/json"
) -> nuki_api.NukiApi:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    return nuki_api.NukiApi("https://nuki.test", TOKEN, transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(
    ("status", "body", "kind", "words"),
    [
        (401, b"", nuki_api.LinkBroken, "link again"),
        (403, b"", nuki_api.LinkBroken, "scope"),
        (402, b'{"detailMessage": "plan"}', nuki_api.UpstreamRefused, "402 Payment Required"),
        (426, b"", nuki_api.UpstreamRefused, "firmware"),
        (409, b'{"detailMessage": "code exists"}', nuki_api.UpstreamRefused, "code exists"),
        (423, b"", nuki_api.UpstreamBusy, "423 Locked"),
        (429, b"<html>429</html>", nuki_api.UpstreamThrottled, "429 Too Many Requests"),
        (503, b"<html>down</html>", nuki_api.UpstreamDown, "failed (503)"),
    ],
)
def test_failures_are_classified_with_words_and_never_the_token(
    status: int, body: bytes, kind: type, words: str
) -> None:
    with _api(status, body) as api, pytest.raises(kind) as caught:
        api.create_key(1, create_body(DATA))
    assert words in caught.value.message
    assert TOKEN not in caught.value.message
    assert api.calls == 1
    # Only the link's own record of its token's refusal breaks the link (not a failed relink).
    assert not is_broken(caught.value.message)
    assert is_broken(BROKEN_MARK + caught.value.message)


def test_no_connection_means_not_sent_and_a_timeout_may_have_been() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    for handler, sent in ((refuse, False), (hang, True)):
        api = nuki_api.NukiApi("https://nuki.test", TOKEN, transport=httpx.MockTransport(handler))
        with api, pytest.raises(nuki_api.UpstreamDown) as caught:
            api.create_key(1, create_body(DATA))
        assert caught.value.sent is sent
        assert TOKEN not in caught.value.message
