"""The stand-in's Nuki mode (KEYHOUSE_NUKI_MODE=1): a Keyhouse server that answers as
api.nuki.io does where a client of Nuki's cloud must cope with it.

Installed only in Nuki mode, around the Nuki paths (``/smartlock…``, ``/account…``); Keyhouse's
normal mode never passes through here. What it changes:

* answers carry no field outside the official schema: Keyhouse's own fields (those our shapes
  describe as "Keyhouse: …", e.g. ``syncState``, ``verifiedDate``, ``warning``), Keyhouse's
  fields of error bodies, and the ``Warning`` header are left out;
* a new key appears in the listings (and ``GET …/auth/{id}``) only after
  ``KEYHOUSE_NUKI_KEYS_APPEAR_SECONDS`` (per account: ``keysAppearAfterSeconds``), and never
  while ``hideNewKeys`` is on;
* a write to a lock answers ``423`` while an operation runs on it (a reconciler is mid-call);
* ``tooManyRequests: N`` makes the next N requests answer ``429`` with an HTML page and no
  ``Retry-After``, as Nuki's front end may;
* ``failNext: N`` (with ``failStatus``) makes the next N requests answer that status: 402 or
  426 with Nuki's error body, a 5xx with a proxy's HTML page;
* ``POST /smartlock/{id}/auth/{authId}`` is Nuki's partial update: a time-window field the
  body leaves out is cleared (the window is wiped), not kept.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyhouse.rules.dates import parse_api_datetime
from keyhouse.rules.secrets_ import hash_token
from keyhouse.runtime import Runtime
from keyhouse.schemas import account_user, auth, invite, log, smartlock, token
from keyhouse.schemas.base import ResponseShape
from keyhouse.schemas.errors import NUKI_ERROR_FIELDS
from keyhouse.services import nuki_mode

KEYHOUSE_PREFIX = "Keyhouse:"
WINDOW_FIELDS = (
    "allowedFromDate",
    "allowedUntilDate",
    "allowedWeekDays",
    "allowedFromTime",
    "allowedUntilTime",
)
WRITES = frozenset({"PUT", "POST", "DELETE"})
LOCK_PATH = re.compile(r"^/smartlock/(\d+)(/.*)?$")
KEY_LIST = re.compile(r"^/smartlock(/\d+)?/auth$")
ONE_KEY = re.compile(r"^/smartlock/\d+/auth/[^/]+$")
FAILURE_WORDS = {
    402: "Payment required: the subscription of this account does not cover this",
    426: "Upgrade required: this client's API version is no longer supported",
}
PROXY_HTML = (
    "<html>\r\n<head><title>{status} Error</title></head>\r\n<body>\r\n"
    "<center><h1>{status} Error</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
TOO_MANY_HTML = (
    b"<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
    b"<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def _shapes() -> list[type[ResponseShape]]:
    found: list[type[ResponseShape]] = []
    todo: list[type[ResponseShape]] = [ResponseShape]
    while todo:
        shape = todo.pop()
        found.append(shape)
        todo.extend(shape.__subclasses__())
    return found


def keyhouse_fields() -> frozenset[str]:
    """The JSON names of the fields our answers add to Nuki's schemas: the fields our shapes
    describe as "Keyhouse: …" (one definition: the shapes themselves)."""
    assert auth and smartlock and log and account_user and invite and token  # all shapes loaded
    names = set()
    for shape in _shapes():
        for name, field in shape.model_fields.items():
            if (field.description or "").startswith(KEYHOUSE_PREFIX):
                names.add(field.alias or name)
    return frozenset(names)


def is_nuki_path(path: str) -> bool:
    return path.startswith(("/smartlock", "/account"))


def strip(value: Any, extras: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: strip(v, extras) for k, v in value.items() if k not in extras}
    if isinstance(value, list):
        return [strip(item, extras) for item in value]
    return value


def _created(key: Any) -> datetime | None:
    if not isinstance(key, dict) or not isinstance(key.get("creationDate"), str):
        return None
    try:
        return parse_api_datetime(key["creationDate"], "creationDate")
    except Exception:  # a shape we did not write: shown
        return None


def _visible(key: Any, before: datetime, hidden_from: datetime | None) -> bool:
    created = _created(key)
    if created is None:
        return True
    return created <= before and (hidden_from is None or created < hidden_from)


class NukiModeMiddleware:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.extras = keyhouse_fields()

    def _account(self, scope: Scope) -> int | None:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, secret = value.decode("latin-1").strip().partition(" ")
                if scheme.lower() != "bearer" or not secret.strip():
                    return None
                with self.runtime.db.read() as session:
                    return nuki_mode.account_of_token(session, hash_token(secret.strip()))
        return None

    def _before(self, scope: Scope, account_id: int) -> tuple[str | None, nuki_mode.Switches]:
        """("429" / "423" / a failNext status / None, the account's switches). Read first: only
        a "fail next" to spend takes a write transaction."""
        default = self.runtime.settings.nuki_keys_appear_seconds
        match = LOCK_PATH.match(scope["path"])
        with self.runtime.db.read() as session:
            switches = nuki_mode.switches(session, account_id, default)
            running = (
                scope["method"] in WRITES
                and match is not None
                and (match.group(2) or "") != "/sync"
                and nuki_mode.operation_running(session, int(match.group(1)))
            )
        if switches.too_many_requests > 0:
            with self.runtime.db.session() as session:
                if nuki_mode.throttled(session, account_id):
                    return "429", switches
        if switches.fail_next > 0:
            with self.runtime.db.session() as session:
                status = nuki_mode.failing(session, account_id)
            if status is not None:
                return str(status), switches
        return ("423" if running else None), switches

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_nuki_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        account_id = await run_in_threadpool(self._account, scope)
        switches = None
        if account_id is not None:
            verdict, switches = await run_in_threadpool(self._before, scope, account_id)
            if verdict == "429":
                await _answer(send, 429, TOO_MANY_HTML, b"text/html")
                return
            if verdict is not None and verdict != "423":
                await _fail(send, int(verdict))
                return
            if verdict == "423":
                body = orjson.dumps(
                    {
                        "detailMessage": "an operation is running on this smartlock",
                        "stackTrace": [],
                        "suppressedExceptions": [],
                    }
                )
                await _answer(send, 423, body, b"application/json")
                return
        if scope["method"] == "POST" and ONE_KEY.match(scope["path"]):
            receive, length = await _wiping_window(receive)
            scope = {
                **scope,
                "headers": [
                    *((k, v) for k, v in scope.get("headers", []) if k != b"content-length"),
                    (b"content-length", str(length).encode()),
                ],
            }
        await self._rewrite_answer(scope, receive, send, switches)

    async def _rewrite_answer(
        self, scope: Scope, receive: Receive, send: Send, switches: nuki_mode.Switches | None
    ) -> None:
        start: Message | None = None
        chunks: list[bytes] = []

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            assert start is not None
            body = self._body(scope, start, b"".join(chunks), switches)
            headers = [
                (k, v)
                for k, v in start.get("headers", [])
                if k.lower() not in (b"content-length", b"warning", b"etag")
            ]
            headers.append((b"content-length", str(len(body)).encode()))
            scope.setdefault("state", {})["warnings"] = []  # no Warning header either
            await send({**start, "headers": headers, "status": start["status"]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, hold)

    def _body(
        self,
        scope: Scope,
        start: Message,
        body: bytes,
        switches: nuki_mode.Switches | None,
    ) -> bytes:
        content_type = dict(start.get("headers", [])).get(b"content-type", b"")
        if not body or not content_type.startswith(b"application/json"):
            return body
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        status = start["status"]
        if status >= 400 and isinstance(value, dict) and "detailMessage" in value:
            return orjson.dumps({k: value.get(k, []) for k in NUKI_ERROR_FIELDS})
        value = strip(value, self.extras)
        if switches is not None and scope["method"] == "GET" and status == 200:
            before, hidden_from = nuki_mode.hidden_since(switches)
            if KEY_LIST.match(scope["path"]) and isinstance(value, list):
                value = [key for key in value if _visible(key, before, hidden_from)]
            elif ONE_KEY.match(scope["path"]) and not _visible(value, before, hidden_from):
                start["status"] = 404
                value = {
                    "detailMessage": "not found",
                    "stackTrace": [],
                    "suppressedExceptions": [],
                }
        return orjson.dumps(value)


async def _fail(send: Send, status: int) -> None:
    """One of ``failNext``'s answers: Nuki's error body for 402/426, a proxy's page for 5xx."""
    words = FAILURE_WORDS.get(status)
    if words is not None:
        body = orjson.dumps({"detailMessage": words, "stackTrace": [], "suppressedExceptions": []})
        await _answer(send, status, body, b"application/json")
        return
    await _answer(send, status, PROXY_HTML.format(status=status).encode(), b"text/html")


async def _answer(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _wiping_window(receive: Receive) -> tuple[Receive, int]:
    """The request body with every time-window field it leaves out set to null (cleared)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return receive, 0  # the client went away: let the app see it
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        body = orjson.dumps({**{name: None for name in WINDOW_FIELDS}, **value})
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay, len(body)
