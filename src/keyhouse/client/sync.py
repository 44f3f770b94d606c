"""The synchronous SDK client, and the request logic it shares with the async one.

Every method is written once, as a generator of *steps* (:class:`Call` = one HTTP request,
:class:`Sleep` = a pause) in :class:`Operations`; :class:`Client` runs the steps with
``httpx.Client`` and ``time.sleep``, :class:`~keyhouse.client.aio.AsyncClient` with
``httpx.AsyncClient`` and ``asyncio.sleep``. Request bodies are built from the request models
of :mod:`keyhouse.schemas` (the server's own definitions), answers validated into its
response models.
"""

from __future__ import annotations

import difflib
import os
import random
import time
import uuid
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar, overload

import httpx
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel

from keyhouse import __version__
from keyhouse.client.config import load_profile
from keyhouse.client.errors import (
    ConnectionFailed,
    InvalidArgument,
    KeyhouseAPIError,
    KeyhouseClientError,
    MissingToken,
    NotFound,
    SyncFailed,
    WaitTimeout,
    error_from_response,
    retry_after_seconds,
)
from keyhouse.schemas.account_user import AccountUser, AccountUserCreate, AccountUserUpdate
from keyhouse.schemas.audit import AuditEvent
from keyhouse.schemas.auth import (
    SmartlockAuth,
    SmartlockAuthCreate,
    SmartlockAuthMultiUpdate,
    SmartlockAuthUpdate,
    SmartlocksAuthCreate,
)
from keyhouse.schemas.invite import InviteStatus
from keyhouse.schemas.log import (
    AppKeyUse,
    DoorDecision,
    EmulatorLock,
    EmulatorLockUpdate,
    KeypadEntry,
    SmartlockAction,
    SmartlockLog,
)
from keyhouse.schemas.smartlock import Smartlock

__all__ = [
    "DEFAULT_URL",
    "Call",
    "Client",
    "Operations",
    "RetryPolicy",
    "Sleep",
    "check_base_url",
    "resolve_settings",
]

DEFAULT_URL = "http://127.0.0.1:8080"
TOKEN_ENVS = ("KEYHOUSE_TOKEN", "NUKI_API_TOKEN")
URL_ENVS = ("KEYHOUSE_URL", "NUKI_API_URL")
PROFILE_ENV = "KEYHOUSE_PROFILE"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WAITING_STATES = frozenset({"pending", "deleting"})
USER_AGENT = f"keyhouse-sdk/{__version__}"
IDEMPOTENCY_HEADER = "Idempotency-Key"
NUKI_HOST = "api.nuki.io"
# The rule of Keyhouse's 409 while the first request under the same key is still running.
IN_PROGRESS_RULE = "idempotency_in_progress"

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Steps = Generator["Call | Sleep", Any, T]


# --- settings ---------------------------------------------------------------------------------


def resolve_settings(
    token: str | None = None, base_url: str | None = None, profile: str | None = None
) -> tuple[str, str]:
    """Token and base URL: the arguments, else the environment, else the config file profile.

    Environment: ``KEYHOUSE_TOKEN`` / ``NUKI_API_TOKEN`` and ``KEYHOUSE_URL`` /
    ``NUKI_API_URL``; the profile is ``profile``, else ``$KEYHOUSE_PROFILE``, else the file's
    default. The URL defaults to ``http://127.0.0.1:8080``; a missing token is an error.
    """
    token = token or next((os.environ[e] for e in TOKEN_ENVS if os.environ.get(e)), None)
    base_url = base_url or next((os.environ[e] for e in URL_ENVS if os.environ.get(e)), None)
    if token is None or base_url is None:
        found = load_profile(profile or os.environ.get(PROFILE_ENV) or None)
        if found is not None:
            token = token or found.token
            base_url = base_url or found.url
    if not token:
        raise MissingToken(
            "no API token: pass token=…, set KEYHOUSE_TOKEN (or NUKI_API_TOKEN), or log in "
            "once with 'keyhouse login --url URL --token TOKEN', which saves a profile"
        )
    return token, (base_url or DEFAULT_URL).rstrip("/")


def check_base_url(url: str) -> None:
    """Raise InvalidArgument unless ``url`` is an http(s) URL httpx can use."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        parsed, reason = None, str(exc)
    else:
        reason = "it needs http:// or https:// and a host"
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidArgument(
            0,
            f"base_url {url!r} is not a server address ({reason}): write it as "
            "http://host:port, e.g. http://127.0.0.1:8080",
            "base_url",
            "url",
        )


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with jittered exponential backoff.

    Every write (PUT/POST/DELETE) is sent with a fresh ``Idempotency-Key``; its retries send
    the same request with the same key, so a write the server already made is not made again
    (Keyhouse answers the first answer again). Retried, up to ``max_retries`` times: GET (and
    HEAD/OPTIONS) and, with ``retry_writes``, writes under their key, on a timeout, a
    connection error or a 5xx; any method on 429, and a write on 409 "a request with this
    Idempotency-Key is in progress". A ``Retry-After`` (on 429, 503 or that 409) is waited
    for, up to ``max_retry_after`` seconds, instead of the backoff.

    ``retry_writes=False`` never sends a write twice on a timeout, connection error or 5xx:
    for a server without idempotency keys (api.nuki.io ignores the header).
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    retry_writes: bool = True

    def backoff_for(self, attempt: int) -> float:
        """The pause before retry number ``attempt + 1`` (full jitter in [50 %, 100 %])."""
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        return ceiling * random.uniform(0.5, 1.0)

    def _repeatable(self, method: str, keyed: bool) -> bool:
        return method in SAFE_METHODS or (keyed and self.retry_writes)

    def after_response(
        self, method: str, response: httpx.Response, attempt: int, *, keyed: bool = False
    ) -> float | None:
        """Seconds to wait before retrying this answer, or None to not retry. ``keyed``: the
        request carries an ``Idempotency-Key``."""
        if attempt >= self.max_retries:
            return None
        status = response.status_code
        retry = status == 429 or (status >= 500 and self._repeatable(method, keyed))
        if status == 409 and keyed and _in_progress(response):
            retry = True
        if not retry:
            return None
        wait = retry_after_seconds(response)
        if wait is None:
            return self.backoff_for(attempt)
        return wait if wait <= self.max_retry_after else None

    def after_transport_error(
        self, method: str, attempt: int, *, keyed: bool = False
    ) -> float | None:
        """Seconds to wait before retrying after a timeout or connection error, or None."""
        if self._repeatable(method, keyed) and attempt < self.max_retries:
            return self.backoff_for(attempt)
        return None


def writes_retried(base_url: str, retry_writes: bool | None) -> bool:
    """Whether writes are retried: as asked, else unless the server is api.nuki.io (whose API
    has no idempotency keys, so a retried write could happen twice)."""
    if retry_writes is not None:
        return retry_writes
    return not httpx.URL(base_url).host.endswith(NUKI_HOST)


def _in_progress(response: httpx.Response) -> bool:
    """A 409 saying the first request under the same Idempotency-Key is still running."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("rule") == IN_PROGRESS_RULE


def idempotency_key(call: Call) -> str | None:
    """A new ``Idempotency-Key`` for a write (None for a GET): one per call, kept by its
    retries."""
    return None if call.method in SAFE_METHODS else str(uuid.uuid4())


# --- steps ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One HTTP request; the runner sends back the JSON answer (None for an empty 2xx)."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    has_body: bool = False
    # A page of a list: the runner sends back a Page (the items, and the next page's URL).
    paged: bool = False


@dataclass(frozen=True)
class Page:
    """One answer of a list: its items, and the absolute URL of the next page (the Link
    header's rel="next"), None on the last page."""

    items: list[Any]
    next: str | None


@dataclass(frozen=True)
class Sleep:
    """A pause of ``seconds``."""

    seconds: float


def answer_of(response: httpx.Response) -> Any:
    """The JSON of a 2xx answer (None if empty), or the typed error for any other."""
    if not 200 <= response.status_code < 300:
        raise error_from_response(response)
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def result_of(call: Call, response: httpx.Response, base_url: str) -> Any:
    """What the runner sends back for ``call``: the JSON (see :func:`answer_of`), or for a
    paged call the :class:`Page` with the next page's URL. The URL is resolved against the
    request's and must be on the server's own origin: the token is never sent elsewhere."""
    data = answer_of(response)
    if not call.paged:
        return data
    target = response.links.get("next", {}).get("url")
    if not target:
        return Page(list(data or []), None)
    found = response.url.join(target)
    origin = httpx.URL(base_url)
    if (found.scheme, found.host, found.port) != (origin.scheme, origin.host, origin.port):
        raise KeyhouseClientError(
            f"the server's next page {target!r} is not on {base_url}: not followed (the "
            "token goes only to the server it was given for)"
        )
    return Page(list(data or []), str(found))


def shown_url(base_url: str, call: Call) -> str:
    """The request's URL in messages (a next page's URL is already absolute)."""
    return call.path if "://" in call.path else f"{base_url}{call.path}"


def http_request_args(call: Call, key: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client.request`` / ``AsyncClient.request``; ``key`` is
    the write's ``Idempotency-Key``."""
    args: dict[str, Any] = {"method": call.method, "url": call.path}
    if key is not None:
        args["headers"] = {IDEMPOTENCY_HEADER: key}
    if call.params:
        args["params"] = {k: v for k, v in call.params.items() if v is not None}
    if call.has_body:
        args["json"] = call.json
    return args


# --- building bodies --------------------------------------------------------------------------


def _wire_value(value: Any, name: str = "a date") -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidArgument(
                0,
                f"{name} {value.isoformat()} has no time zone: pass an aware datetime "
                "(e.g. datetime(2026, 12, 1, 8, tzinfo=UTC))",
                name,
                "timezone",
            )
        return value.astimezone(UTC)
    return value


def _camel(name: str) -> str:
    return to_camel(name) if "_" in name else name


def build_body(model: type[BaseModel], fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``fields`` (snake_case or camelCase) with ``model`` and dump the JSON body.

    Only the fields given are sent (an explicit None is sent as null: it clears the field on
    Keyhouse); dates are sent as RFC 3339 UTC instants (``…Z``). Invalid input raises
    :class:`~keyhouse.client.errors.InvalidArgument` (a ``ValidationError``) before anything
    is sent.
    """
    data = {_camel(k): _wire_value(v, k) for k, v in fields.items()}
    try:
        validated = model.model_validate(data)
    except PydanticValidationError as exc:
        raise invalid_argument(model, exc, fields) from None
    return validated.model_dump(by_alias=True, exclude_unset=True, mode="json")


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def invalid_argument(
    model: type[BaseModel], error: PydanticValidationError, given: Mapping[str, Any]
) -> InvalidArgument:
    """Pydantic's complaint about a request model as the SDK's own typed error.

    Arguments are named as they were passed (``remote_alowed``), missing ones in snake_case;
    a misspelt argument comes first, with the nearest real one, since it usually explains
    the missing one.
    """
    as_passed = {_camel(k): k for k in given}
    known = sorted(_snake(info.alias or name) for name, info in model.model_fields.items())
    problems: list[dict[str, Any]] = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ())]
        wire = location[0] if location else ""
        name = ".".join([as_passed.get(wire) or _snake(wire), *location[1:]]) or "the arguments"
        kind = item.get("type", "")
        if kind == "extra_forbidden":
            near = difflib.get_close_matches(_snake(wire), known, n=1, cutoff=0.6)
            hint = f"did you mean {near[0]}?" if near else f"the fields are {', '.join(known)}"
            message = f"{name} is not a field of {model.__name__}: {hint}"
            order = 0
        elif kind == "missing":
            message = f"{name} is required by {model.__name__}"
            order = 2
        else:
            detail = str(item.get("msg", "is not valid")).removeprefix("Value error, ")
            if detail.startswith(f"{wire} ") and "." not in name:
                message = f"{name}{detail[len(wire) :]}"  # the rule's own sentence
            else:
                message = f"{name} {item.get('input')!r} is not valid: {detail}"
            order = 1
        problems.append({"field": name, "rule": kind, "message": message, "order": order})
    problems.sort(key=lambda problem: problem.pop("order"))
    first = problems[0] if problems else {"field": None, "rule": None, "message": str(error)}
    message = first["message"]
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem(s), listed in 'problems')"
    return InvalidArgument(0, message, first["field"], first["rule"], problems=problems)


def query_value(value: Any) -> Any:
    """A query parameter: datetimes as RFC 3339 UTC (``…Z``), lists comma-separated."""
    if isinstance(value, datetime):
        instant = _wire_value(value)
        return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _models(model: type[M], data: Any) -> list[M]:
    return [model.model_validate(item) for item in data or []]


def _pick_created(
    new: list[SmartlockAuth], body: Mapping[str, Any], smartlock_id: int
) -> SmartlockAuth:
    """The key just created among the keys that appeared on a lock since the first listing."""
    found = [k for k in new if k.smartlock_id == smartlock_id]
    if len(found) > 1:  # someone else created keys at the same time: match what we sent
        same = [
            k
            for k in found
            if k.name == body.get("name")
            and k.type == body.get("type", 0)
            and k.account_user_id == body.get("accountUserId")
            and k.code == body.get("code")
        ]
        found = same or found
        found.sort(key=lambda k: (k.creation_date or datetime.min.replace(tzinfo=UTC), k.id))
        found = found[-1:]
    if not found:
        raise KeyhouseClientError(
            f"the server accepted the key but it is not listed on lock {smartlock_id}"
        )
    return found[0]


# --- the operations, written once -------------------------------------------------------------


# The most pages one list call follows: a server that keeps linking beyond it is refused
# (KeyhouseClientError), never cut short in silence.
MAX_PAGES = 10_000


class Operations:
    """Every endpoint as a generator of :class:`Call`/:class:`Sleep` steps (shared logic)."""

    def pages(
        self, path: str, params: dict[str, Any] | None = None, want: int | None = None
    ) -> Steps[list[Any]]:
        """Every item of a list, following its ``Link: <…>; rel="next"`` pages; with
        ``want``, only until that many are in hand."""
        items: list[Any] = []
        call = Call("GET", path, params, paged=True)
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = yield call
            items.extend(page.items)
            if want is not None and len(items) >= want:
                return items[:want]
            if page.next is None:
                return items
            if page.next in seen:
                raise KeyhouseClientError(
                    f"the server's next page {page.next} was already read: a loop, not followed"
                )
            seen.add(page.next)
            call = Call("GET", page.next, paged=True)
        raise KeyhouseClientError(
            f"GET {path} still had a next page after {MAX_PAGES} pages: not followed further"
        )

    # Smartlocks and actions

    def list_smartlocks(self, auth_id: int | None, type: int | None) -> Steps[list[Smartlock]]:
        data = yield from self.pages("/smartlock", {"authId": auth_id, "type": type})
        return _models(Smartlock, data)

    def get_smartlock(self, smartlock_id: int) -> Steps[Smartlock]:
        data = yield Call("GET", f"/smartlock/{smartlock_id}")
        return Smartlock.model_validate(data)

    def lock_action(self, smartlock_id: int, action: int, option: int) -> Steps[None]:
        body = build_body(SmartlockAction, {"action": action, "option": option})
        yield Call("POST", f"/smartlock/{smartlock_id}/action", json=body, has_body=True)

    def simple_post(self, path: str) -> Steps[None]:
        yield Call("POST", path)

    # Account users

    def list_users(
        self, email: str | None, offset: int | None, limit: int | None
    ) -> Steps[list[AccountUser]]:
        params = {"email": email, "offset": offset, "limit": limit}
        data = yield from self.pages("/account/user", params, want=limit)
        return _models(AccountUser, data)

    def create_user(self, fields: Mapping[str, Any]) -> Steps[AccountUser]:
        body = build_body(AccountUserCreate, fields)
        data = yield Call("PUT", "/account/user", json=body, has_body=True)
        return AccountUser.model_validate(data)

    def get_user(self, account_user_id: int) -> Steps[AccountUser]:
        data = yield Call("GET", f"/account/user/{account_user_id}")
        return AccountUser.model_validate(data)

    def update_user(self, account_user_id: int, fields: Mapping[str, Any]) -> Steps[AccountUser]:
        body = build_body(AccountUserUpdate, fields)
        data = yield Call("POST", f"/account/user/{account_user_id}", json=body, has_body=True)
        if data is None:  # a server answering 204: read the user back
            data = yield Call("GET", f"/account/user/{account_user_id}")
        return AccountUser.model_validate(data)

    def delete_user(self, account_user_id: int) -> Steps[None]:
        yield Call("DELETE", f"/account/user/{account_user_id}")

    # Keys

    def list_keys(
        self,
        smartlock_id: int | None,
        types: Iterable[int] | int | None,
        account_user_id: int | None,
    ) -> Steps[list[SmartlockAuth]]:
        if isinstance(types, int):
            types = [types]
        type_list = query_value(list(types)) if types is not None else None
        if smartlock_id is None:
            params = {"types": type_list, "accountUserId": account_user_id}
            data = yield from self.pages("/smartlock/auth", params)
            return _models(SmartlockAuth, data)
        data = yield from self.pages(f"/smartlock/{smartlock_id}/auth", {"types": type_list})
        keys = _models(SmartlockAuth, data)
        # The per-lock path has no accountUserId filter in the spec: filter here, as Nuki's
        # account-wide path does (positive: that user; negative: keys without a user).
        if account_user_id is not None and account_user_id > 0:
            keys = [k for k in keys if k.account_user_id == account_user_id]
        elif account_user_id is not None and account_user_id < 0:
            keys = [k for k in keys if k.account_user_id is None]
        return keys

    def get_key(self, smartlock_id: int, key_id: str) -> Steps[SmartlockAuth]:
        data = yield Call("GET", f"/smartlock/{smartlock_id}/auth/{key_id}")
        return SmartlockAuth.model_validate(data)

    def _key_ids(self, smartlock_id: int | None) -> Steps[set[str]]:
        path = "/smartlock/auth" if smartlock_id is None else f"/smartlock/{smartlock_id}/auth"
        data = yield from self.pages(path)
        return {item["id"] for item in data}

    def create_key(
        self, smartlock_id: int | Sequence[int], fields: Mapping[str, Any]
    ) -> Steps[SmartlockAuth | list[SmartlockAuth]]:
        if isinstance(smartlock_id, int):
            body = build_body(SmartlockAuthCreate, fields)
            before = yield from self._key_ids(smartlock_id)
            yield Call("PUT", f"/smartlock/{smartlock_id}/auth", json=body, has_body=True)
            after = yield from self.list_keys(smartlock_id, None, None)
            return _pick_created([k for k in after if k.id not in before], body, smartlock_id)
        lock_ids = list(smartlock_id)
        body = build_body(SmartlocksAuthCreate, {**fields, "smartlockIds": lock_ids})
        before = yield from self._key_ids(None)
        yield Call("PUT", "/smartlock/auth", json=body, has_body=True)
        after = yield from self.list_keys(None, None, None)
        new = [k for k in after if k.id not in before]
        return [_pick_created(new, body, lock) for lock in lock_ids]

    def update_key(self, smartlock_id: int, key_id: str, fields: Mapping[str, Any]) -> Steps[None]:
        body = build_body(SmartlockAuthUpdate, fields)
        if "name" not in body:
            # The official SmartlockAuthUpdate requires name: send the current one.
            current = yield from self.get_key(smartlock_id, key_id)
            body = {"name": current.name, **body}
        path = f"/smartlock/{smartlock_id}/auth/{key_id}"
        yield Call("POST", path, json=body, has_body=True)

    def update_keys(self, updates: Sequence[Mapping[str, Any]]) -> Steps[None]:
        bodies = [build_body(SmartlockAuthMultiUpdate, update) for update in updates]
        if any("name" not in body for body in bodies):
            # The official SmartlockAuthMultiUpdate requires name: send the current ones.
            data = yield from self.pages("/smartlock/auth")
            names = {item["id"]: item.get("name") for item in data}
            bodies = [
                body
                if "name" in body or names.get(body["id"]) is None
                else {"id": body["id"], "name": names[body["id"]], **body}
                for body in bodies
            ]
        yield Call("POST", "/smartlock/auth", json=bodies, has_body=True)

    def delete_key(self, smartlock_id: int, key_id: str) -> Steps[None]:
        yield Call("DELETE", f"/smartlock/{smartlock_id}/auth/{key_id}")

    def delete_keys(self, key_ids: Sequence[str]) -> Steps[None]:
        yield Call("DELETE", "/smartlock/auth", json=list(key_ids), has_body=True)

    def wait_for_key(self, smartlock_id: int, key_id: str, timeout: float) -> Steps[SmartlockAuth]:
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            key = yield from self.get_key(smartlock_id, key_id)
            if key.sync_state == "failed":
                raise SyncFailed(key, key.error)
            if key.sync_state not in WAITING_STATES:
                return key
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(
                    f"key {key_id} on lock {smartlock_id} is still {key.sync_state} after "
                    f"{timeout}s (is the lock offline?)",
                    key,
                )
            yield Sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)

    def wait_until_deleted(self, smartlock_id: int, key_id: str, timeout: float) -> Steps[None]:
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            try:
                key = yield from self.get_key(smartlock_id, key_id)
            except NotFound:
                return None
            if key.sync_state == "failed":
                raise SyncFailed(key, key.error)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(
                    f"key {key_id} on lock {smartlock_id} still exists after {timeout}s "
                    f"(syncState {key.sync_state})",
                    key,
                )
            yield Sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)

    # Logs

    def logs(
        self, smartlock_id: int | None, filters: Mapping[str, Any]
    ) -> Steps[list[SmartlockLog]]:
        params = {_camel(k): query_value(v) for k, v in filters.items()}
        path = "/smartlock/log" if smartlock_id is None else f"/smartlock/{smartlock_id}/log"
        # Without a limit, the official default page (the newest 20); with one, as many
        # entries as asked for, following the pages (the server gives at most 50 at a time).
        want = params.get("limit")
        if isinstance(want, int) and not isinstance(want, bool):
            data = yield from self.pages(path, params, want=want)
        else:
            data = yield Call("GET", path, params)
        return _models(SmartlockLog, data)

    # Keyhouse's own: the audit log, invites, the emulator

    def audit(self, filters: Mapping[str, Any]) -> Steps[list[AuditEvent]]:
        params = {_camel(k): query_value(v) for k, v in filters.items()}
        data = yield Call("GET", "/keyhouse/audit", params)
        return _models(AuditEvent, data)

    def invites(self, auth_id: str | None, status: str | None) -> Steps[list[InviteStatus]]:
        params = {"authId": auth_id, "status": status}
        data = yield from self.pages("/keyhouse/invites", params)
        return _models(InviteStatus, data)

    def resend_invite(self, smartlock_id: int, key_id: str) -> Steps[InviteStatus]:
        data = yield Call("POST", f"/keyhouse/smartlock/{smartlock_id}/auth/{key_id}/invite")
        return InviteStatus.model_validate(data)

    def emulator_state(self, smartlock_id: int) -> Steps[EmulatorLock]:
        data = yield Call("GET", f"/emulator/smartlock/{smartlock_id}")
        return EmulatorLock.model_validate(data)

    def set_emulator(self, smartlock_id: int, fields: Mapping[str, Any]) -> Steps[EmulatorLock]:
        body = build_body(EmulatorLockUpdate, fields)
        data = yield Call("POST", f"/emulator/smartlock/{smartlock_id}", json=body, has_body=True)
        return EmulatorLock.model_validate(data)

    def door(
        self, smartlock_id: int, what: str, model: type[BaseModel] | None, fields: Mapping[str, Any]
    ) -> Steps[DoorDecision]:
        path = f"/emulator/smartlock/{smartlock_id}/{what}"
        if model is None:
            data = yield Call("POST", path)
        else:
            body = build_body(model, fields)
            data = yield Call("POST", path, json=body, has_body=True)
        return DoorDecision.model_validate(data)


OPS = Operations()


def _given(**fields: Any) -> dict[str, Any]:
    """The keyword arguments that were given (not None)."""
    return {k: v for k, v in fields.items() if v is not None}


# --- the synchronous client -------------------------------------------------------------------


class Client:
    """A client of the Nuki Web API as Keyhouse serves it (works with api.nuki.io too).

    ``token`` and ``base_url`` default to the environment (``KEYHOUSE_TOKEN``/``KEYHOUSE_URL``,
    or ``NUKI_API_TOKEN``/``NUKI_API_URL``), then to the config file's profile (``profile``,
    else its default), then the URL to ``http://127.0.0.1:8080``. Use as a context manager,
    or call :meth:`close`.

    Key changes answer 204 and apply to the lock asynchronously: use :meth:`wait_for_key`.

    Every write carries a fresh ``Idempotency-Key``; on a timeout, a connection error or a 5xx
    it is sent again with the same key (up to ``max_retries`` times, see
    :class:`RetryPolicy`), so Keyhouse makes it once. ``retry_writes`` defaults to True except
    for api.nuki.io, which has no idempotency keys.
    """

    def __init__(
        self,
        token: str | None = None,
        base_url: str | None = None,
        *,
        profile: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        retry_writes: bool | None = None,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.token, self.base_url = resolve_settings(token, base_url, profile)
        check_base_url(self.base_url)
        self.retry = RetryPolicy(
            max_retries=max_retries,
            backoff=retry_backoff,
            retry_writes=writes_retried(self.base_url, retry_writes),
        )
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
                **(headers or {}),
            },
            timeout=timeout,
            transport=transport,
        )

    # plumbing

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _send(self, call: Call) -> Any:
        attempt = 0
        key = idempotency_key(call)
        while True:
            try:
                response = self._http.request(**http_request_args(call, key))
            except httpx.TransportError as exc:
                wait = self.retry.after_transport_error(call.method, attempt, keyed=key is not None)
                if wait is None:
                    raise ConnectionFailed(
                        f"{call.method} {shown_url(self.base_url, call)} failed: {exc}",
                        self.base_url,
                        str(exc),
                    ) from exc
                time.sleep(wait)
                attempt += 1
                continue
            wait = self.retry.after_response(call.method, response, attempt, keyed=key is not None)
            if wait is None:
                return result_of(call, response, self.base_url)
            response.close()
            time.sleep(wait)
            attempt += 1

    def _run(self, steps: Steps[T]) -> T:
        try:
            step = next(steps)
            while True:
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    step = steps.send(None)
                    continue
                try:
                    value = self._send(step)
                except KeyhouseAPIError as error:
                    step = steps.throw(error)
                else:
                    step = steps.send(value)
        except StopIteration as stop:
            return stop.value

    # smartlocks

    def list_smartlocks(
        self, auth_id: int | None = None, type: int | None = None
    ) -> list[Smartlock]:
        """``GET /smartlock``: the account's locks (filters: ``authId``, ``type``), every page."""
        return self._run(OPS.list_smartlocks(auth_id, type))

    def get_smartlock(self, smartlock_id: int) -> Smartlock:
        """``GET /smartlock/{id}``: one lock (NotFound if unknown)."""
        return self._run(OPS.get_smartlock(smartlock_id))

    def lock_action(self, smartlock_id: int, action: int, option: int = 0) -> None:
        """``POST /smartlock/{id}/action``: 1 unlock, 2 lock, 3 unlatch, 4 lock 'n' go …"""
        return self._run(OPS.lock_action(smartlock_id, action, option))

    def lock(self, smartlock_id: int) -> None:
        """``POST /smartlock/{id}/action/lock``."""
        return self._run(OPS.simple_post(f"/smartlock/{smartlock_id}/action/lock"))

    def unlock(self, smartlock_id: int) -> None:
        """``POST /smartlock/{id}/action/unlock``."""
        return self._run(OPS.simple_post(f"/smartlock/{smartlock_id}/action/unlock"))

    def sync(self, smartlock_id: int) -> None:
        """``POST /smartlock/{id}/sync``: make the lock's keys match the server's."""
        return self._run(OPS.simple_post(f"/smartlock/{smartlock_id}/sync"))

    # account users

    def list_users(
        self, email: str | None = None, offset: int | None = None, limit: int | None = None
    ) -> list[AccountUser]:
        """``GET /account/user``: the account users (filter by e-mail).

        Every user, following the server's next-page links; ``offset`` starts later, and
        ``limit`` returns at most that many (gathered over pages if the server's cap is lower).
        """
        return self._run(OPS.list_users(email, offset, limit))

    def create_user(
        self, email: str, name: str, language: str | None = None, type: int | None = None
    ) -> AccountUser:
        """``PUT /account/user``: a new account user (Conflict if the e-mail exists)."""
        fields = {"email": email, "name": name, **_given(language=language, type=type)}
        return self._run(OPS.create_user(fields))

    def get_user(self, account_user_id: int) -> AccountUser:
        """``GET /account/user/{id}``."""
        return self._run(OPS.get_user(account_user_id))

    def update_user(self, account_user_id: int, **fields: Any) -> AccountUser:
        """``POST /account/user/{id}``: change only the fields given (email, name, language)."""
        return self._run(OPS.update_user(account_user_id, fields))

    def delete_user(self, account_user_id: int) -> None:
        """``DELETE /account/user/{id}``: also removes the user's keys (asynchronously)."""
        return self._run(OPS.delete_user(account_user_id))

    # keys

    def list_keys(
        self,
        smartlock_id: int | None = None,
        types: Iterable[int] | int | None = None,
        account_user_id: int | None = None,
    ) -> list[SmartlockAuth]:
        """Keys of one lock (``GET /smartlock/{id}/auth``) or all (``GET /smartlock/auth``).

        ``types`` e.g. ``[0, 13]``; ``account_user_id`` > 0 for that user's keys, < 0 for keys
        without a user. Every key: a list longer than the server's cap is read page by page
        (its ``Link: <…>; rel="next"`` header).
        """
        return self._run(OPS.list_keys(smartlock_id, types, account_user_id))

    def get_key(self, smartlock_id: int, key_id: str) -> SmartlockAuth:
        """``GET /smartlock/{id}/auth/{keyId}``."""
        return self._run(OPS.get_key(smartlock_id, key_id))

    @overload
    def create_key(self, smartlock_id: int, **fields: Any) -> SmartlockAuth: ...

    @overload
    def create_key(self, smartlock_id: Sequence[int], **fields: Any) -> list[SmartlockAuth]: ...

    def create_key(
        self, smartlock_id: int | Sequence[int], **fields: Any
    ) -> SmartlockAuth | list[SmartlockAuth]:
        """Create a key (``PUT /smartlock/{id}/auth``; for a list of locks ``PUT /smartlock/auth``).

        ``fields`` are those of ``SmartlockAuthCreate`` in snake_case or camelCase (``name``,
        ``remote_allowed``, ``account_user_id``, ``type``, ``code``, ``allowed_from_date`` …).
        The API answers 204 without the key, so the new key is found by listing the lock(s)
        before and after the request: exact when one client creates keys at a time (if others
        create keys concurrently, the newest new key matching name, type, user and code is
        taken). Returns the key, or one key per lock (in the order given) for a list.
        """
        return self._run(OPS.create_key(smartlock_id, fields))

    def update_key(self, smartlock_id: int, key_id: str, **fields: Any) -> None:
        """``POST /smartlock/{id}/auth/{keyId}``: change only the fields given.

        An explicit None clears a field (Keyhouse). The official ``SmartlockAuthUpdate``
        requires ``name``, so without ``name`` the key's current name is read first (one GET)
        and sent along, which keeps api.nuki.io from refusing the request.
        """
        return self._run(OPS.update_key(smartlock_id, key_id, fields))

    def update_keys(self, updates: Sequence[Mapping[str, Any]]) -> None:
        """``POST /smartlock/auth``: several partial updates, each naming its key by ``id``.

        Updates without ``name`` get the key's current name (one ``GET /smartlock/auth``).
        """
        return self._run(OPS.update_keys(updates))

    def delete_key(self, smartlock_id: int, key_id: str) -> None:
        """``DELETE /smartlock/{id}/auth/{keyId}`` (the key shows ``deleting`` until gone)."""
        return self._run(OPS.delete_key(smartlock_id, key_id))

    def delete_keys(self, key_ids: Sequence[str]) -> None:
        """``DELETE /smartlock/auth`` with the keys' ids."""
        return self._run(OPS.delete_keys(key_ids))

    def wait_for_key(self, smartlock_id: int, key_id: str, timeout: float = 30) -> SmartlockAuth:
        """Poll the key (0.2 s doubling to 2 s) until its change is applied; return it.

        Raises SyncFailed (with the lock's ``error``) if the lock refused it, WaitTimeout after
        ``timeout`` seconds.
        """
        return self._run(OPS.wait_for_key(smartlock_id, key_id, timeout))

    def wait_until_deleted(self, smartlock_id: int, key_id: str, timeout: float = 30) -> None:
        """Poll the key until it is gone (404); SyncFailed if the lock refused, else WaitTimeout."""
        return self._run(OPS.wait_until_deleted(smartlock_id, key_id, timeout))

    # logs

    def logs(self, smartlock_id: int | None = None, **filters: Any) -> list[SmartlockLog]:
        """``GET /smartlock/{id}/log`` or ``/smartlock/log``, newest first.

        Filters: ``auth_id`` (the key's id), ``account_user_id``, ``from_date``, ``to_date``
        (datetimes or RFC 3339 strings), ``action``, ``id`` (older than), ``limit``. Without
        ``limit`` the server's default page (the newest 20); with it, that many entries,
        over several pages if the server gives fewer at a time (Nuki: at most 50).
        """
        return self._run(OPS.logs(smartlock_id, filters))

    # the audit log (Keyhouse's own, beside the Nuki paths)

    def audit(self, **filters: Any) -> list[AuditEvent]:
        """``GET /keyhouse/audit`` (scope ``account``): who changed what, newest first.

        Filters: ``action`` (``key.update``, or a family: ``key``), ``target_type`` (key, user,
        lock, token), ``target_id``, ``smartlock_id``, ``since``/``until`` (datetimes, RFC 3339
        strings or ``YYYY-MM-DD`` days), ``limit`` (default 100, max 1000) and ``before`` (an
        event id: the page of older events; pass the last id of a page to get the next).
        """
        return self._run(OPS.audit(filters))

    # invites (Keyhouse's own, beside the Nuki paths)

    def invites(self, auth_id: str | None = None, status: str | None = None) -> list[InviteStatus]:
        """``GET /keyhouse/invites``: invites and their e-mail's delivery (queued/sent/failed),
        newest first, every page."""
        return self._run(OPS.invites(auth_id, status))

    def resend_invite(self, smartlock_id: int, key_id: str) -> InviteStatus:
        """``POST /keyhouse/smartlock/{id}/auth/{keyId}/invite``: a new invite and code."""
        return self._run(OPS.resend_invite(smartlock_id, key_id))

    # emulator (Keyhouse's virtual locks, scope "emulator")

    def emulator_state(self, smartlock_id: int) -> EmulatorLock:
        """``GET /emulator/smartlock/{id}``: the virtual lock's state."""
        return self._run(OPS.emulator_state(smartlock_id))

    def set_emulator(self, smartlock_id: int, **fields: Any) -> EmulatorLock:
        """``POST /emulator/smartlock/{id}``: online, latency_ms, fault (None clears it)."""
        return self._run(OPS.set_emulator(smartlock_id, fields))

    def keypad(
        self, smartlock_id: int, code: int, at: datetime | str | None = None
    ) -> DoorDecision:
        """Type ``code`` on the virtual lock's keypad (at ``at``, default now)."""
        fields = {"code": code, **_given(at=at)}
        return self._run(OPS.door(smartlock_id, "keypad", KeypadEntry, fields))

    def app_key(
        self,
        smartlock_id: int,
        auth_id: int,
        action: int = 1,
        remote: bool = False,
        at: datetime | str | None = None,
    ) -> DoorDecision:
        """Use the app key in slot ``auth_id`` on the virtual lock."""
        fields = {"authId": auth_id, "action": action, "remote": remote, **_given(at=at)}
        return self._run(OPS.door(smartlock_id, "app", AppKeyUse, fields))

    def button(self, smartlock_id: int) -> DoorDecision:
        """Press the virtual lock's button."""
        return self._run(OPS.door(smartlock_id, "button", None, {}))
