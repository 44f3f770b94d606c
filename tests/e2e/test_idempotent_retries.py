"""Issue 12, end to end: the SDK's write times out, the server made it anyway, and the SDK's
retry (same Idempotency-Key) makes no second key. A real `keyhouse serve` process with slow
virtual locks (KEYHOUSE_SIM_LATENCY_MS): a key write answers once the lock confirmed, after the
SDK's short timeout. Then the SDK's retry rules, against a stand-in server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import LiveServer, running_server
from keyhouse.client import AsyncClient, Client, Conflict, ServerError

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEYHOUSE = "http://keyhouse.test"


class Recording(httpx.HTTPTransport):
    """The real transport, remembering each request's Idempotency-Key and what came back."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str | None, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get(HEADER)
        try:
            response = super().handle_request(request)
        except httpx.TimeoutException:
            self.seen.append((request.method, key, "timeout"))
            raise
        outcome = "replayed" if response.headers.get(REPLAYED) == "true" else "answered"
        self.seen.append((request.method, key, outcome))
        return response


class AsyncRecording(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str | None, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get(HEADER)
        try:
            response = await super().handle_async_request(request)
        except httpx.TimeoutException:
            self.seen.append((request.method, key, "timeout"))
            raise
        outcome = "replayed" if response.headers.get(REPLAYED) == "true" else "answered"
        self.seen.append((request.method, key, outcome))
        return response


@pytest.fixture
def slow_server(tmp_path: Path) -> Iterator[LiveServer]:
    """Locks that take 1.5 s to answer; a key write waits up to 5 s for its lock."""
    with running_server(
        tmp_path / "slow",
        {"KEYHOUSE_SIM_LATENCY_MS": "1500", "KEYHOUSE_CONFIRM_WAIT_SECONDS": "5"},
    ) as server:
        yield server


def keys_on(server: LiveServer, lock: int) -> list[dict]:
    answer = httpx.get(f"{server.url}/smartlock/{lock}/auth", headers=server.headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def puts(seen: list[tuple[str, str | None, str]]) -> list[tuple[str | None, str]]:
    return [(key, outcome) for method, key, outcome in seen if method == "PUT"]


def test_a_create_retried_after_a_timeout_makes_exactly_one_key(slow_server: LiveServer) -> None:
    lock = slow_server.lock_ids[0]
    transport = Recording()
    with Client(
        slow_server.token, slow_server.url, timeout=0.5, retry_backoff=0.05, transport=transport
    ) as sdk:
        key = sdk.create_key(lock, name="Cleaner", type=13, code=345678, remote_allowed=False)
    attempts = puts(transport.seen)
    assert len(attempts) >= 2, transport.seen
    assert attempts[0][1] == "timeout" and attempts[-1][1] == "replayed", attempts
    assert len({k for k, _ in attempts}) == 1 and attempts[0][0], attempts  # one key, sent
    listed = keys_on(slow_server, lock)
    assert [k["id"] for k in listed] == [key.id]

    # The async client does the same.
    async def create() -> str:
        async with AsyncClient(
            slow_server.token,
            slow_server.url,
            timeout=0.5,
            retry_backoff=0.05,
            transport=async_transport,
        ) as sdk:
            made = await sdk.create_key(
                lock, name="Gardener", type=13, code=345679, remote_allowed=False
            )
            return made.id

    async_transport = AsyncRecording()
    made_id = asyncio.run(create())
    attempts = puts(async_transport.seen)
    assert attempts[0][1] == "timeout" and attempts[-1][1] == "replayed", attempts
    assert sorted(k["id"] for k in keys_on(slow_server, lock)) == sorted([key.id, made_id])


# --- the SDK's retry rules, against a stand-in ------------------------------------------------


class Answers:
    """Answers the queued responses in order, and records each request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def sdk_of(answers: Answers, url: str = KEYHOUSE, **options: object) -> Client:
    return Client(
        "token", url, transport=httpx.MockTransport(answers), retry_backoff=0.01, **options
    )


def test_writes_are_retried_with_their_key_and_each_write_has_its_own() -> None:
    answers = Answers(
        httpx.ReadTimeout("slow"),
        httpx.Response(503, text="busy"),
        httpx.ConnectError("refused"),
        httpx.Response(204),
        httpx.Response(502, text="bad gateway"),
        httpx.Response(204),
    )
    with sdk_of(answers) as sdk:
        sdk.lock(1)
        sdk.delete_key(1, "a" * 24)
    keys = [request.headers.get(HEADER) for request in answers.requests]
    assert [r.method for r in answers.requests] == ["POST"] * 4 + ["DELETE"] * 2
    assert len(set(keys[:4])) == 1 and len(set(keys[4:])) == 1 and keys[0] != keys[4]
    assert all(len(key or "") == 36 for key in keys)  # a UUID


def test_gets_carry_no_key_and_retries_are_bounded() -> None:
    answers = Answers(httpx.Response(200, json=[]), *[httpx.Response(500)] * 4)
    with sdk_of(answers) as sdk:
        assert sdk.list_smartlocks() == []
        with pytest.raises(ServerError):
            sdk.unlock(1)
    assert HEADER not in answers.requests[0].headers
    assert len(answers.requests) == 1 + 4  # the first try and three retries


def test_in_progress_is_waited_for_other_conflicts_are_not() -> None:
    in_progress = {"detailMessage": "in progress", "rule": "idempotency_in_progress"}
    answers = Answers(
        httpx.Response(409, json=in_progress, headers={"Retry-After": "0"}),
        httpx.Response(204),
        httpx.Response(409, json={"detailMessage": "offline", "error": "lock_offline"}),
    )
    with sdk_of(answers) as sdk:
        sdk.unlock(1)
        with pytest.raises(Conflict):
            sdk.lock(1)
    assert len(answers.requests) == 3


def test_writes_are_not_retried_where_asked_or_against_api_nuki_io() -> None:
    for url, options in ((KEYHOUSE, {"retry_writes": False}), ("https://api.nuki.io", {})):
        answers = Answers(httpx.Response(503, text="busy"))
        with sdk_of(answers, url, **options) as sdk, pytest.raises(ServerError):
            sdk.lock(1)
        assert len(answers.requests) == 1
        assert answers.requests[0].headers.get(HEADER)  # the key is sent all the same


def test_the_async_client_retries_writes_with_their_key() -> None:
    answers = Answers(httpx.ConnectError("refused"), httpx.Response(204))

    async def scenario() -> None:
        transport = httpx.MockTransport(answers)
        async with AsyncClient("t", KEYHOUSE, transport=transport, retry_backoff=0.01) as sdk:
            await sdk.sync(1)

    asyncio.run(scenario())
    keys = [request.headers.get(HEADER) for request in answers.requests]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]
