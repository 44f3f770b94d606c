"""The asynchronous SDK client: the same operations as :class:`keyhouse.client.Client`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar, overload

import httpx

from keyhouse.client.errors import ConnectionFailed, KeyhouseAPIError
from keyhouse.client.sync import (
    OPS,
    USER_AGENT,
    Call,
    RetryPolicy,
    Sleep,
    Steps,
    _given,
    check_base_url,
    http_request_args,
    idempotency_key,
    resolve_settings,
    result_of,
    shown_url,
    writes_retried,
)
from keyhouse.schemas.account_user import AccountUser
from keyhouse.schemas.audit import AuditEvent
from keyhouse.schemas.auth import SmartlockAuth
from keyhouse.schemas.invite import InviteStatus
from keyhouse.schemas.log import AppKeyUse, DoorDecision, EmulatorLock, KeypadEntry, SmartlockLog
from keyhouse.schemas.smartlock import Smartlock

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """The async twin of :class:`keyhouse.client.Client` (same arguments, same methods).

    Use ``async with AsyncClient() as client: …`` or call :meth:`aclose`.
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
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.token, self.base_url = resolve_settings(token, base_url, profile)
        check_base_url(self.base_url)
        self.retry = RetryPolicy(
            max_retries=max_retries,
            backoff=retry_backoff,
            retry_writes=writes_retried(self.base_url, retry_writes),
        )
        self._http = httpx.AsyncClient(
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

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _send(self, call: Call) -> Any:
        attempt = 0
        key = idempotency_key(call)
        while True:
            try:
                response = await self._http.request(**http_request_args(call, key))
            except httpx.TransportError as exc:
                wait = self.retry.after_transport_error(call.method, attempt, keyed=key is not None)
                if wait is None:
                    raise ConnectionFailed(
                        f"{call.method} {shown_url(self.base_url, call)} failed: {exc}",
                        self.base_url,
                        str(exc),
                    ) from exc
                await asyncio.sleep(wait)
                attempt += 1
                continue
            wait = self.retry.after_response(call.method, response, attempt, keyed=key is not None)
            if wait is None:
                return result_of(call, response, self.base_url)
            await response.aclose()
            await asyncio.sleep(wait)
            attempt += 1

    async def _run(self, steps: Steps[T]) -> T:
        try:
            step = next(steps)
            while True:
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    step = steps.send(None)
                    continue
                try:
                    value = await self._send(step)
                except KeyhouseAPIError as error:
                    step = steps.throw(error)
                else:
                    step = steps.send(value)
        except StopIteration as stop:
            return stop.value

    # smartlocks

    async def list_smartlocks(
        self, auth_id: int | None = None, type: int | None = None
    ) -> list[Smartlock]:
        """``GET /smartlock``."""
        return await self._run(OPS.list_smartlocks(auth_id, type))

    async def get_smartlock(self, smartlock_id: int) -> Smartlock:
        """``GET /smartlock/{id}``."""
        return await self._run(OPS.get_smartlock(smartlock_id))

    async def lock_action(self, smartlock_id: int, action: int, option: int = 0) -> None:
        """``POST /smartlock/{id}/action``."""
        return await self._run(OPS.lock_action(smartlock_id, action, option))

    async def lock(self, smartlock_id: int) -> None:
        """``POST /smartlock/{id}/action/lock``."""
        return await self._run(OPS.simple_post(f"/smartlock/{smartlock_id}/action/lock"))

    async def unlock(self, smartlock_id: int) -> None:
        """``POST /smartlock/{id}/action/unlock``."""
        return await self._run(OPS.simple_post(f"/smartlock/{smartlock_id}/action/unlock"))

    async def sync(self, smartlock_id: int) -> None:
        """``POST /smartlock/{id}/sync``."""
        return await self._run(OPS.simple_post(f"/smartlock/{smartlock_id}/sync"))

    # account users

    async def list_users(
        self, email: str | None = None, offset: int | None = None, limit: int | None = None
    ) -> list[AccountUser]:
        """``GET /account/user``."""
        return await self._run(OPS.list_users(email, offset, limit))

    async def create_user(
        self, email: str, name: str, language: str | None = None, type: int | None = None
    ) -> AccountUser:
        """``PUT /account/user``."""
        fields = {"email": email, "name": name, **_given(language=language, type=type)}
        return await self._run(OPS.create_user(fields))

    async def get_user(self, account_user_id: int) -> AccountUser:
        """``GET /account/user/{id}``."""
        return await self._run(OPS.get_user(account_user_id))

    async def update_user(self, account_user_id: int, **fields: Any) -> AccountUser:
        """``POST /account/user/{id}`` (partial)."""
        return await self._run(OPS.update_user(account_user_id, fields))

    async def delete_user(self, account_user_id: int) -> None:
        """``DELETE /account/user/{id}``."""
        return await self._run(OPS.delete_user(account_user_id))

    # keys

    async def list_keys(
        self,
        smartlock_id: int | None = None,
        types: Iterable[int] | int | None = None,
        account_user_id: int | None = None,
    ) -> list[SmartlockAuth]:
        """Keys of one lock or of all locks (see ``Client.list_keys``)."""
        return await self._run(OPS.list_keys(smartlock_id, types, account_user_id))

    async def get_key(self, smartlock_id: int, key_id: str) -> SmartlockAuth:
        """``GET /smartlock/{id}/auth/{keyId}``."""
        return await self._run(OPS.get_key(smartlock_id, key_id))

    @overload
    async def create_key(self, smartlock_id: int, **fields: Any) -> SmartlockAuth: ...

    @overload
    async def create_key(
        self, smartlock_id: Sequence[int], **fields: Any
    ) -> list[SmartlockAuth]: ...

    async def create_key(
        self, smartlock_id: int | Sequence[int], **fields: Any
    ) -> SmartlockAuth | list[SmartlockAuth]:
        """Create a key on one lock or several; returns it (see ``Client.create_key``)."""
        return await self._run(OPS.create_key(smartlock_id, fields))

    async def update_key(self, smartlock_id: int, key_id: str, **fields: Any) -> None:
        """Partial update; sends the current name if none is given (see ``Client.update_key``)."""
        return await self._run(OPS.update_key(smartlock_id, key_id, fields))

    async def update_keys(self, updates: Sequence[Mapping[str, Any]]) -> None:
        """``POST /smartlock/auth`` (see ``Client.update_keys``)."""
        return await self._run(OPS.update_keys(updates))

    async def delete_key(self, smartlock_id: int, key_id: str) -> None:
        """``DELETE /smartlock/{id}/auth/{keyId}``."""
        return await self._run(OPS.delete_key(smartlock_id, key_id))

    async def delete_keys(self, key_ids: Sequence[str]) -> None:
        """``DELETE /smartlock/auth``."""
        return await self._run(OPS.delete_keys(key_ids))

    async def wait_for_key(
        self, smartlock_id: int, key_id: str, timeout: float = 30
    ) -> SmartlockAuth:
        """Poll until the key's change is applied (SyncFailed / WaitTimeout otherwise)."""
        return await self._run(OPS.wait_for_key(smartlock_id, key_id, timeout))

    async def wait_until_deleted(self, smartlock_id: int, key_id: str, timeout: float = 30) -> None:
        """Poll until the key is gone."""
        return await self._run(OPS.wait_until_deleted(smartlock_id, key_id, timeout))

    # logs

    async def logs(self, smartlock_id: int | None = None, **filters: Any) -> list[SmartlockLog]:
        """The activity log, newest first (see ``Client.logs``)."""
        return await self._run(OPS.logs(smartlock_id, filters))

    # the audit log

    async def audit(self, **filters: Any) -> list[AuditEvent]:
        """``GET /keyhouse/audit`` (see ``Client.audit``)."""
        return await self._run(OPS.audit(filters))

    # emulator

    async def invites(
        self, auth_id: str | None = None, status: str | None = None
    ) -> list[InviteStatus]:
        """``GET /keyhouse/invites``."""
        return await self._run(OPS.invites(auth_id, status))

    async def resend_invite(self, smartlock_id: int, key_id: str) -> InviteStatus:
        """``POST /keyhouse/smartlock/{id}/auth/{keyId}/invite``."""
        return await self._run(OPS.resend_invite(smartlock_id, key_id))

    async def emulator_state(self, smartlock_id: int) -> EmulatorLock:
        """``GET /emulator/smartlock/{id}``."""
        return await self._run(OPS.emulator_state(smartlock_id))

    async def set_emulator(self, smartlock_id: int, **fields: Any) -> EmulatorLock:
        """``POST /emulator/smartlock/{id}``."""
        return await self._run(OPS.set_emulator(smartlock_id, fields))

    async def keypad(
        self, smartlock_id: int, code: int, at: datetime | str | None = None
    ) -> DoorDecision:
        """Type a code on the virtual lock's keypad."""
        fields = {"code": code, **_given(at=at)}
        return await self._run(OPS.door(smartlock_id, "keypad", KeypadEntry, fields))

    async def app_key(
        self,
        smartlock_id: int,
        auth_id: int,
        action: int = 1,
        remote: bool = False,
        at: datetime | str | None = None,
    ) -> DoorDecision:
        """Use the app key in slot ``auth_id``."""
        fields = {"authId": auth_id, "action": action, "remote": remote, **_given(at=at)}
        return await self._run(OPS.door(smartlock_id, "app", AppKeyUse, fields))

    async def button(self, smartlock_id: int) -> DoorDecision:
        """Press the virtual lock's button."""
        return await self._run(OPS.door(smartlock_id, "button", None, {}))
