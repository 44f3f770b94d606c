"""Nuki's cloud (api.nuki.io, or a stand-in): the HTTP client, and the link of imported locks.

The client sends only what the official Nuki Web API 3.9.0 declares; the token goes in the
Authorization header alone (never in a URL, a log line or an error message).
"""

from __future__ import annotations

from typing import Any

import httpx

from keyhouse.devices.link import ActionAccepted, DoorEvent, NotDriven, Placed

NOT_DRIVEN_YET = (
    "smartlock {id} is a lock of a linked Nuki Web account: Keyhouse does not send keys to "
    "Nuki's cloud yet, so this key waits (it is not on the lock)"
)


class UpstreamError(Exception):
    """The upstream did not give a usable answer; ``message`` says what and what to do."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _reason(status: int, url: str) -> str:
    if status == 401:
        return (
            f"Nuki's API at {url} refused the token (401 Unauthorized): check it in Nuki Web "
            "(Menu → API → API token) and link again"
        )
    if status == 403:
        return (
            f"Nuki's API at {url} answered 403 Forbidden: the token lacks a scope Keyhouse "
            "needs (smartlock, smartlock.auth, smartlock.action, smartlock.log, account)"
        )
    if status == 429:
        return f"Nuki's API at {url} answered 429 Too Many Requests: try again in a minute"
    if status >= 500:
        return f"Nuki's API at {url} failed ({status}): try again later"
    return f"Nuki's API at {url} answered {status} to GET /smartlock"


class NukiCloud:
    """One upstream account: a base URL and its API token. ``calls`` counts requests sent."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_seconds: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.calls = 0
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout_seconds,
            transport=transport,
            follow_redirects=False,
        )

    def __enter__(self) -> NukiCloud:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str) -> Any:
        self.calls += 1
        try:
            answer = self._http.get(path)
        except httpx.TimeoutException:
            raise UpstreamError(f"Nuki's API at {self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"could not reach Nuki's API at {self.url} ({exc.__class__.__name__}): check "
                "the URL and the network"
            ) from None
        if answer.status_code != 200:
            raise UpstreamError(_reason(answer.status_code, self.url), answer.status_code)
        try:
            return answer.json()
        except ValueError:
            raise UpstreamError(
                f"Nuki's API at {self.url} answered {path} with something that is not JSON: "
                "is the URL Nuki's API?"
            ) from None

    def smartlocks(self) -> Any:
        """``GET /smartlock``: the account's locks (checks the token as it goes)."""
        return self._get("/smartlock")


class NotYetDrivenLink:
    """The link of locks imported from Nuki's cloud until Keyhouse drives them: every call
    says so, and the reconciler leaves their keys pending with that reason."""

    unknown_keys = "adopt"

    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self.timeout_seconds = timeout_seconds

    def _no(self, smartlock_id: int) -> NotDriven:
        return NotDriven(NOT_DRIVEN_YET.format(id=smartlock_id))

    def put(
        self, smartlock_id: int, key_id: str, data: dict[str, Any], ref: str | None, fence: int
    ) -> Placed:
        raise self._no(smartlock_id)

    def remove(self, smartlock_id: int, key_id: str, ref: str | None, fence: int) -> None:
        raise self._no(smartlock_id)

    def read_all(self, smartlock_id: int) -> dict[str, dict[str, Any]]:
        raise self._no(smartlock_id)

    def act(
        self, smartlock_id: int, action: int, option: int, trigger: int, device_type: int
    ) -> DoorEvent | ActionAccepted:
        raise self._no(smartlock_id)
