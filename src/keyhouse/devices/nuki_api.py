"""The HTTP client of Nuki's cloud (api.nuki.io, or a stand-in): one upstream account.

It sends only what the official Nuki Web API 3.9.0 declares; the token goes in the
Authorization header alone (never in a URL, a log line or an error message). Not a DeviceLink:
services use it to link an account; the cloud's DeviceLink (``nuki_cloud``) uses it too.

Every failure is an :class:`UpstreamError`, of the kind the caller acts on:

* :class:`LinkBroken`: 401 (or 403, a scope missing): the token no longer works; nothing more
  is sent until the account is linked again;
* :class:`UpstreamRefused`: 400, 402, 409, 426: a permanent "no" with the upstream's reason;
* :class:`UpstreamNotFound`: 404;
* :class:`UpstreamBusy`: 423, an operation runs at the upstream: try again soon;
* :class:`UpstreamThrottled`: 429 (JSON or an HTML page, no Retry-After): back off longer;
* :class:`UpstreamDown`: 5xx, a timeout, no connection, an answer that is not Nuki's: retry.
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


class LinkBroken(UpstreamError):
    """401/403: the token does not work (any more); link the account again."""


class UpstreamRefused(UpstreamError):
    """A permanent refusal (400, 402, 409, 426): sending the same again won't help."""


class UpstreamNotFound(UpstreamError):
    """404: the upstream does not have (or does not list yet) what was asked for."""


class UpstreamBusy(UpstreamError):
    """423: an operation runs on the lock at the upstream; try again soon."""


class UpstreamThrottled(UpstreamError):
    """429: too many requests (Nuki sends no Retry-After); back off."""


class UpstreamDown(UpstreamError):
    """5xx, a timeout, no connection, or an answer that is not Nuki's; retry later. ``sent``:
    whether the request may have reached the upstream (False: no connection was made)."""

    def __init__(self, message: str, status: int | None = None, *, sent: bool = True) -> None:
        super().__init__(message, status)
        self.sent = sent


# How a broken link's failure begins (the cloud link recognises it in its own messages).
BROKEN_401 = "refused the token (401 Unauthorized)"
BROKEN_403 = "answered 403 Forbidden"


def _detail(answer: httpx.Response) -> str:
    """The upstream's own reason (``detailMessage``), cut short; "" when it gave none."""
    try:
        body = answer.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("detailMessage"), str):
        return body["detailMessage"].strip()[:200]
    return ""


def _failure(status: int, url: str, what: str, detail: str) -> UpstreamError:
    said = f": {detail}" if detail else ""
    if status == 401:
        return LinkBroken(
            f"Nuki's API at {url} {BROKEN_401}: check it in Nuki Web "
            "(Menu → API → API token) and link again (keyhouse admin upstream link)",
            status,
        )
    if status == 403:
        return LinkBroken(
            f"Nuki's API at {url} {BROKEN_403}: the token lacks a scope Keyhouse "
            "needs (smartlock, smartlock.auth, smartlock.action, smartlock.log, account); "
            "make one with them and link again",
            status,
        )
    if status == 429:
        return UpstreamThrottled(
            f"Nuki's API at {url} answered 429 Too Many Requests: try again in a minute", status
        )
    if status >= 500:
        return UpstreamDown(f"Nuki's API at {url} failed ({status}): try again later", status)
    if status == 423:
        return UpstreamBusy(
            f"Nuki's API at {url} answered {what} with 423 Locked (an operation runs on the "
            f"lock){said}: trying again shortly",
            status,
        )
    if status == 404:
        return UpstreamNotFound(f"Nuki's API at {url} answered {what} with 404{said}", status)
    if status == 402:
        return UpstreamRefused(
            f"Nuki's API refused {what} with 402 Payment Required (the Nuki account's plan does "
            f"not allow it){said}",
            status,
        )
    if status == 426:
        return UpstreamRefused(
            f"Nuki's API refused {what} with 426 Upgrade Required (the lock's firmware is too "
            f"old for it){said}",
            status,
        )
    if status == 409:
        return UpstreamRefused(
            f"Nuki's API refused {what} with 409 Conflict{said or ' (e.g. the code exists)'}",
            status,
        )
    if status == 400:
        return UpstreamRefused(f"Nuki's API refused {what} with 400 Bad Request{said}", status)
    return UpstreamDown(f"Nuki's API at {url} answered {status} to {what}", status)


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

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        ok: int = 200,
    ) -> httpx.Response:
        what = f"{method} {path}"
        self.calls += 1
        try:
            answer = self._http.request(method, path, json=body, params=params)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise UpstreamDown(
                f"could not reach Nuki's API at {self.url} ({exc.__class__.__name__}): check "
                "the URL and the network",
                sent=False,
            ) from None
        except httpx.TimeoutException:
            raise UpstreamDown(f"Nuki's API at {self.url} did not answer {what} in time") from None
        except httpx.HTTPError as exc:
            raise UpstreamDown(
                f"could not reach Nuki's API at {self.url} ({exc.__class__.__name__}): check "
                "the URL and the network"
            ) from None
        if answer.status_code != ok:
            raise _failure(answer.status_code, self.url, what, _detail(answer))
        return answer

    def _json(self, method: str, path: str, params: dict[str, str] | None = None) -> Any:
        answer = self._send(method, path, params=params)
        try:
            return answer.json()
        except ValueError:
            raise UpstreamDown(
                f"Nuki's API at {self.url} answered {path} with something that is not JSON: "
                "is the URL Nuki's API?"
            ) from None

    def smartlocks(self) -> Any:
        """``GET /smartlock``: the account's locks (checks the token as it goes)."""
        return self._json("GET", "/smartlock")

    def keys(self, smartlock_id: int | None = None) -> list[dict[str, Any]]:
        """``GET /smartlock/auth`` (every lock of the account) or ``GET /smartlock/{id}/auth``."""
        path = "/smartlock/auth" if smartlock_id is None else f"/smartlock/{smartlock_id}/auth"
        found = self._json("GET", path)
        if not isinstance(found, list):
            raise UpstreamDown(f"Nuki's API at {self.url} did not answer {path} with a list")
        return [key for key in found if isinstance(key, dict)]

    def key(self, smartlock_id: int, auth_id: str) -> dict[str, Any]:
        """``GET /smartlock/{id}/auth/{authId}`` (UpstreamNotFound: not there)."""
        path = f"/smartlock/{smartlock_id}/auth/{auth_id}"
        found = self._json("GET", path)
        if not isinstance(found, dict):
            raise UpstreamDown(f"Nuki's API at {self.url} did not answer {path} with a key")
        return found

    def create_key(self, smartlock_id: int, body: dict[str, Any]) -> None:
        """``PUT /smartlock/{id}/auth`` (a SmartlockAuthCreate): 204, no body, no id."""
        self._send("PUT", f"/smartlock/{smartlock_id}/auth", body=body, ok=204)

    def update_key(self, smartlock_id: int, auth_id: str, body: dict[str, Any]) -> None:
        """``POST /smartlock/{id}/auth/{authId}`` (a SmartlockAuthUpdate): the whole key (a
        window field left out is wiped at Nuki)."""
        self._send("POST", f"/smartlock/{smartlock_id}/auth/{auth_id}", body=body, ok=204)

    def delete_key(self, smartlock_id: int, auth_id: str) -> None:
        """``DELETE /smartlock/{id}/auth/{authId}``."""
        self._send("DELETE", f"/smartlock/{smartlock_id}/auth/{auth_id}", ok=204)

    def action(self, smartlock_id: int, action: int, option: int = 0) -> None:
        """``POST /smartlock/{id}/action`` (a SmartlockAction)."""
        body = {"action": action} if not option else {"action": action, "option": option}
        self._send("POST", f"/smartlock/{smartlock_id}/action", body=body, ok=204)

    def logs(self, *, limit: int, older_than: str | None = None) -> Any:
        """``GET /smartlock/log``: the account's activity log, newest first; ``older_than``
        (the official ``id`` cursor) gives the entries older than that one."""
        params = {"limit": str(limit)}
        if older_than is not None:
            params["id"] = older_than
        return self._json("GET", "/smartlock/log", params)

    def users(self, email: str) -> list[dict[str, Any]]:
        """``GET /account/user?email=…``: the account's users with that e-mail (Nuki filters
        case-insensitively; the caller compares again)."""
        found = self._json("GET", "/account/user", params={"email": email})
        if not isinstance(found, list):
            raise UpstreamDown(f"Nuki's API at {self.url} did not answer /account/user with a list")
        return [user for user in found if isinstance(user, dict)]

    def create_user(self, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /account/user`` (an AccountUserCreate): the new AccountUser. Nuki then sends
        that person its own invitation."""
        answer = self._send("PUT", "/account/user", body=body)
        try:
            found = answer.json()
        except ValueError:
            found = None
        if not isinstance(found, dict) or not isinstance(found.get("accountUserId"), int):
            raise UpstreamDown(
                f"Nuki's API at {self.url} did not answer PUT /account/user with a user"
            )
        return found
