"""The HTTP client of Nuki's cloud (api.nuki.io, or a stand-in): one upstream account.

It sends only what the official Nuki Web API 3.9.0 declares; the token goes in the
Authorization header alone (never in a URL, a log line or an error message). Not a DeviceLink:
services use it to link an account; the cloud's DeviceLink (``nuki_cloud``) will use it too.
"""

from __future__ import annotations

from typing import Any

import httpx


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


class NukiApi:
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

    def __enter__(self) -> NukiApi:
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
