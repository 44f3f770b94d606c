"""Locks of a linked Nuki Web account, driven through Nuki's cloud (api.nuki.io or a stand-in).

One :class:`NukiCloudLink` serves every imported lock ("nuki" link kind), with one
:class:`~keyhouse.devices.nuki_api.NukiApi` per upstream account, built from the link's
decrypted token (built again when the token or URL changes: the account was linked again).

* create: ``PUT /smartlock/{id}/auth`` answers 204 with no id and is not idempotent. The
  reconciler records a marker (the key's fingerprint, when) durably before the first send
  (``marks_creates``); a put that finds an earlier marker sends nothing: it looks for the key
  at the upstream by that fingerprint (``GET /smartlock/{id}/auth``), never by a before/after
  diff. Found: the key's upstream id is its ``ref``. Not found: it waits; only after
  ``resend_after_seconds`` with a fresh listing still not showing it is the create sent again.
* change: read-modify-write: the upstream key as it is, the fields Keyhouse manages changed,
  the whole key sent with ``POST /smartlock/{id}/auth/{authId}`` (Nuki wipes a window field
  left out).
* two truths: the upstream lists the key as sent ("accepted"), and the lock holds it: the key
  carries no ``operationId`` (Nuki's running operation) and no ``error``. Until then
  :class:`NotOnLockYet` (the reconciler records ``accepted_revision``, the key stays pending).
* every request is counted in ``upstream_links.calls`` and against ``KEYHOUSE_UPSTREAM_RATE``
  per upstream account; over it nothing is sent (the key waits).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from keyhouse.devices.link import (
    ActionAccepted,
    Backoff,
    CreateMarker,
    DeviceRejected,
    DoorEvent,
    NotDriven,
    NotOnLockYet,
    Placed,
    ResendCreate,
)
from keyhouse.devices.nuki_api import (
    LinkBroken,
    NukiApi,
    UpstreamBusy,
    UpstreamDown,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRefused,
    UpstreamThrottled,
)
from keyhouse.rules.dates import format_api_datetime, parse_api_datetime, utcnow
from keyhouse.rules.rate_limit import describe, parse_rule
from keyhouse.store import upstream as store
from keyhouse.store.database import Database
from keyhouse.store.models import AccountUser, Smartlock, SmartlockAuth
from keyhouse.store.rate_limits import RateLimits
from keyhouse.store.secret_box import SecretBox, SecretKeyMissing

log = logging.getLogger(__name__)

NOT_LINKED = (
    "smartlock {id} is a lock of a Nuki Web account that is not linked to Keyhouse now: this "
    "key waits (it is not on the lock) until the account is linked again (keyhouse admin "
    "upstream link --account {account})"
)
BROKEN = "the link to Nuki's cloud is broken, so this key waits: {error}"
# How the link records its token's refusal in ``upstream_links.last_error``: a link whose last
# error begins so is broken (no more requests) until the account is linked again. A failed
# ``admin upstream link`` with another token records its error without it: the stored token
# still works.
BROKEN_MARK = "link broken: "


def is_broken(last_error: str | None) -> bool:
    """Whether a link's recorded last error says its stored token no longer works."""
    return bool(last_error) and str(last_error).startswith(BROKEN_MARK)


NO_USER = (
    "an app key (type 0) of a lock in Nuki's cloud goes to a Nuki account user, found or made "
    "there by this key's account user's e-mail; this key has no account user in Keyhouse (it "
    "was deleted?): give the key an accountUserId, or make it a keypad code (type 13)"
)
LANGUAGES = ("en", "de", "es", "fr", "it", "nl", "cs", "sk")  # AccountUserCreate's enum
# How long one account-wide listing serves read_all (the drift checks of the account's locks).
LISTING_SECONDS = 10.0
# After a 429 (Nuki sends no Retry-After), nothing more for at least this long.
THROTTLED_SECONDS = 60.0
BUSY_SECONDS = 1.0
WINDOW_FIELDS = (
    "allowedFromDate",
    "allowedUntilDate",
    "allowedWeekDays",
    "allowedFromTime",
    "allowedUntilTime",
)
DATE_FIELDS = ("allowedFromDate", "allowedUntilDate")
# The fields of a key Keyhouse manages (desired_payload's), compared with the upstream's.
MANAGED = ("name", "enabled", "remoteAllowed", "code", *WINDOW_FIELDS)


def _date(value: Any) -> str | None:
    """A date-time as Keyhouse writes it (the upstream's spelling may differ)."""
    if not isinstance(value, str):
        return None
    try:
        return format_api_datetime(parse_api_datetime(value, "date"))
    except Exception:  # not a date: kept as it is, so it compares unequal
        return value


def normalized(key: dict[str, Any]) -> dict[str, Any]:
    """The upstream key's managed fields (and type) as Keyhouse's payload spells them."""
    shown = {name: key.get(name) for name in ("type", *MANAGED)}
    for name in DATE_FIELDS:
        shown[name] = _date(shown[name])
    return shown


def create_body(data: dict[str, Any]) -> dict[str, Any]:
    """A SmartlockAuthCreate from the key's payload (a field without a value left out)."""
    body = {
        "name": data["name"],
        "type": data["type"],
        "remoteAllowed": bool(data["remoteAllowed"]),
    }
    if data.get("code") is not None:
        body["code"] = data["code"]
    if isinstance(data.get("accountUserId"), int):
        body["accountUserId"] = data["accountUserId"]  # an app key's user at the upstream
    body.update({name: data[name] for name in WINDOW_FIELDS if data.get(name) is not None})
    return body


def fingerprint(data: dict[str, Any]) -> dict[str, Any]:
    """What identifies a created key at the upstream: name, type, code, window (an app key's
    upstream user is added when it is known: see ``NukiCloudLink._with_user``)."""
    body = create_body(data)
    body.pop("remoteAllowed")
    body.pop("accountUserId", None)
    return body


def matches(key: dict[str, Any], print_: dict[str, Any]) -> bool:
    """Whether the upstream's ``key`` is the one ``print_`` describes."""
    shown = normalized(key)
    for name in ("name", "type", "code", *WINDOW_FIELDS):
        wanted = print_.get(name)
        if name in DATE_FIELDS:
            wanted = _date(wanted)
        if shown.get(name) != wanted:
            return False
    return key.get("accountUserId") == print_.get("accountUserId")


def update_body(current: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """A whole SmartlockAuthUpdate: Keyhouse's fields from ``data``, the user from the upstream
    key (fields the update does not carry, e.g. fingerprints, appId, are Nuki's to keep); a
    window field without a value is left out, which clears it at Nuki."""
    body: dict[str, Any] = {
        "name": data["name"],
        "enabled": bool(data["enabled"]),
        "remoteAllowed": bool(data["remoteAllowed"]),
    }
    if isinstance(current.get("accountUserId"), int):
        body["accountUserId"] = current["accountUserId"]
    if data.get("code") is not None:
        body["code"] = data["code"]
    body.update({name: data[name] for name in WINDOW_FIELDS if data.get(name) is not None})
    return body


def same(current: dict[str, Any], data: dict[str, Any]) -> bool:
    shown = normalized(current)
    return all(shown[name] == data.get(name) for name in MANAGED)


def on_lock(current: dict[str, Any]) -> bool:
    """The lock holds the key as listed: no operation of Nuki's runs on it."""
    return not current.get("operationId")


class _Account:
    """One upstream account as this process knows it: its client, built from this token."""

    def __init__(self, url: str, sealed: str, api: NukiApi) -> None:
        self.url = url
        self.sealed = sealed
        self.api = api
        self.listing: tuple[float, list[dict[str, Any]]] | None = None
        self.guard = threading.Lock()
        self.users: dict[str, int] = {}  # e-mail (lower-cased) -> the upstream's accountUserId


class NukiCloudLink:
    """The DeviceLink of locks imported from a linked Nuki Web account."""

    unknown_keys = "adopt"
    marks_creates = True

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        rate_limits: RateLimits,
        *,
        rate: str = "60/minute",
        timeout_seconds: float = 10.0,
        request_timeout_seconds: float | None = None,
        resend_after_seconds: float = 600.0,
        throttled_seconds: float = THROTTLED_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.db = db
        self.box = box
        self.rate_limits = rate_limits
        self.rate = rate
        # One put is up to three requests (look, send, look again): each gets a third.
        self.timeout_seconds = timeout_seconds
        self.request_timeout_seconds = request_timeout_seconds or timeout_seconds / 3
        self.resend_after = timedelta(seconds=resend_after_seconds)
        self.throttled_seconds = throttled_seconds
        self.transport = transport  # tests record the requests sent (a real HTTP transport)
        self._accounts: dict[int, _Account] = {}
        self._owners: dict[int, int] = {}  # smartlock -> account (never changes)
        self._guard = threading.Lock()

    # --- which account, which client ------------------------------------------------------

    def _account_of(self, smartlock_id: int) -> int:
        account = self._owners.get(smartlock_id)
        if account is None:
            with self.db.read() as session:
                account = session.scalar(
                    select(Smartlock.account_id).where(Smartlock.id == smartlock_id)
                )
            if account is None:
                raise NotDriven(f"smartlock {smartlock_id} does not exist")
            self._owners[smartlock_id] = account
        return account

    def _client(self, smartlock_id: int) -> tuple[int, _Account]:
        account_id = self._account_of(smartlock_id)
        with self.db.read() as session:
            row = store.link_of(session, account_id)
            found = None if row is None else (row.url, row.token_secret, row.last_error)
        if found is None:
            raise NotDriven(NOT_LINKED.format(id=smartlock_id, account=account_id))
        url, sealed, last_error = found
        if is_broken(last_error):
            raise NotDriven(BROKEN.format(error=str(last_error)[len(BROKEN_MARK) :]))
        with self._guard:
            known = self._accounts.get(account_id)
            if known is not None and (known.url, known.sealed) == (url, sealed):
                return account_id, known
            try:
                token = self.box.open(sealed)
            except SecretKeyMissing as exc:
                raise NotDriven(f"the upstream token can't be read: {exc}") from None
            api = NukiApi(
                url, token, timeout_seconds=self.request_timeout_seconds, transport=self.transport
            )
            if known is not None:
                known.api.close()
            self._accounts[account_id] = _Account(url, sealed, api)
            return account_id, self._accounts[account_id]

    def close(self) -> None:
        with self._guard:
            for known in self._accounts.values():
                known.api.close()
            self._accounts.clear()

    # --- one request: budget, count, failures in the reconciler's words -------------------

    def _call(self, account_id: int, account: _Account, request: Any, *args: Any) -> Any:
        verdict = self.rate_limits.hit(self.rate, "upstream", account_id)
        if not verdict.allowed:
            rule = parse_rule(self.rate)
            budget = describe(rule) if rule is not None else self.rate
            raise Backoff(
                f"the budget of requests to Nuki's cloud ({budget}, KEYHOUSE_UPSTREAM_RATE) is "
                f"used up: trying again in {verdict.retry_after_header} s",
                verdict.retry_after,
            )
        error: str | None = None
        try:
            return request(*args)
        except UpstreamNotFound:
            raise  # an answer: the caller knows what it means
        except LinkBroken as exc:
            error = BROKEN_MARK + exc.message
            raise
        except UpstreamError as exc:
            error = exc.message
            raise
        finally:
            self._count(account_id, error)

    def _count(self, account_id: int, error: str | None) -> None:
        now = utcnow()
        try:
            self.db.transaction(
                lambda s: store.count_calls(s, account_id, 1, now, error),
                what="counting a request to Nuki's cloud",
                durable=False,
            )
        except Exception:  # the count is bookkeeping: the request's outcome stands
            log.exception("could not count a request to Nuki's cloud")

    def _words(self, exc: UpstreamError, *, creating: bool = False) -> Exception:
        """The reconciler's exception for the upstream's failure. ``creating``: a PUT of a
        create; a refusal means it was certainly not made."""
        if isinstance(exc, LinkBroken):
            return NotDriven(BROKEN.format(error=exc.message), create_unsent=creating)
        if isinstance(exc, UpstreamRefused):
            return DeviceRejected(str(exc.status), exc.message, create_unsent=creating)
        if isinstance(exc, UpstreamBusy):
            return Backoff(exc.message, BUSY_SECONDS, create_unsent=creating)
        if isinstance(exc, UpstreamThrottled):
            return Backoff(exc.message, self.throttled_seconds, create_unsent=creating)
        return Backoff(exc.message)  # 5xx, timeout: a create may have landed

    # --- the DeviceLink -------------------------------------------------------------------

    def fingerprint(self, data: dict[str, Any]) -> dict[str, Any]:
        return fingerprint(data)

    def put(
        self,
        smartlock_id: int,
        key_id: str,
        data: dict[str, Any],
        ref: str | None,
        fence: int,
        marker: CreateMarker | None = None,
    ) -> Placed:
        unsent = marker is not None and marker.fresh  # nothing sent yet for this marker
        try:
            account_id, account = self._client(smartlock_id)
        except NotDriven as exc:
            raise NotDriven(str(exc), create_unsent=unsent) from None
        try:
            current = None
            if ref is None:
                if marker is None:
                    raise Backoff("a create needs its marker first")
                if data.get("type") == 0:
                    data, marker = self._with_user(account_id, account, key_id, data, marker)
                ref, current = self._create(account_id, account, smartlock_id, data, marker)
            return self._change(account_id, account, smartlock_id, ref, data, current)
        except UpstreamError as exc:
            if data.get("type") == 0:
                account.users.clear()  # its user may be gone at Nuki: looked up again next time
            raise self._words(exc) from None

    def _with_user(
        self,
        account_id: int,
        account: _Account,
        key_id: str,
        data: dict[str, Any],
        marker: CreateMarker,
    ) -> tuple[dict[str, Any], CreateMarker]:
        """An app key's payload and marker with its upstream user (found or made there by the
        e-mail of the key's account user). Nothing of the key is sent yet: any failure here
        leaves the create unsent."""
        try:
            user = self._upstream_user(account_id, account, key_id, create=True)
        except DeviceRejected as exc:
            raise DeviceRejected(exc.code, exc.reason, create_unsent=marker.fresh) from None
        except (Backoff, NotDriven) as exc:
            exc.create_unsent = marker.fresh
            raise
        except UpstreamError as exc:
            failure = self._words(exc, creating=True)
            failure.create_unsent = marker.fresh  # type: ignore[attr-defined]
            raise failure from None
        assert user is not None
        print_ = {**marker.fingerprint, "accountUserId": user}
        return {**data, "accountUserId": user}, CreateMarker(print_, marker.sent_at, marker.fresh)

    def _keyhouse_user(self, key_id: str) -> tuple[str, str, str | None] | None:
        """The e-mail, name and language of the key's account user in Keyhouse (None: none)."""
        with self.db.read() as session:
            found = session.execute(
                select(AccountUser.email, AccountUser.name, AccountUser.language)
                .join(SmartlockAuth, SmartlockAuth.account_user_id == AccountUser.id)
                .where(SmartlockAuth.id == key_id)
            ).first()
        return None if found is None else (found[0], found[1], found[2])

    def _upstream_user(
        self, account_id: int, account: _Account, key_id: str, *, create: bool
    ) -> int | None:
        """The upstream's accountUserId for the key's account user: looked up by e-mail
        (``GET /account/user``), made when absent and ``create`` (``PUT /account/user``: Nuki
        then sends its own invitation). None: not there and not made. Remembered per process."""
        person = self._keyhouse_user(key_id)
        if person is None:
            if not create:
                return None
            raise DeviceRejected("user", NO_USER)
        email, name, language = person
        wanted = email.lower()
        known = account.users.get(wanted)
        if known is not None:
            return known
        for attempt in range(2):
            found = self._call(account_id, account, account.api.users, email)
            for user in found:
                their = user.get("email")
                uid = user.get("accountUserId")
                if isinstance(their, str) and their.lower() == wanted and isinstance(uid, int):
                    account.users[wanted] = uid
                    return uid
            if not create:
                return None
            body: dict[str, Any] = {"email": email, "name": name}
            if language in LANGUAGES:
                body["language"] = language
            try:
                made = self._call(account_id, account, account.api.create_user, body)
            except UpstreamRefused as exc:
                if exc.status == 409 and attempt == 0:
                    continue  # made meanwhile (another process): look again
                raise
            account.users[wanted] = made["accountUserId"]
            return int(made["accountUserId"])
        raise Backoff("the upstream user could not be found or made: trying again later")

    def _create(
        self,
        account_id: int,
        account: _Account,
        smartlock_id: int,
        data: dict[str, Any],
        marker: CreateMarker,
    ) -> tuple[str, dict[str, Any]]:
        sent = format_api_datetime(marker.sent_at)
        if not marker.fresh:
            found = self._find(account_id, account, smartlock_id, marker.fingerprint)
            if found is not None:
                return str(found["id"]), found
            if utcnow() - marker.sent_at < self.resend_after:
                raise Backoff(
                    f"create sent to Nuki's cloud at {sent}, not listed by Nuki yet: Keyhouse "
                    "looks for it again (and sends no second create before "
                    f"{format_api_datetime(marker.sent_at + self.resend_after)})",
                    waiting=True,
                )
            raise ResendCreate(smartlock_id)
        try:
            self._call(account_id, account, account.api.create_key, smartlock_id, create_body(data))
        except Backoff as exc:  # over budget: not sent
            raise Backoff(str(exc), exc.seconds, create_unsent=True) from None
        except UpstreamError as exc:
            if isinstance(exc, LinkBroken | UpstreamRefused | UpstreamBusy | UpstreamThrottled):
                raise self._words(exc, creating=True) from None
            if isinstance(exc, UpstreamDown) and not exc.sent:
                raise Backoff(exc.message, create_unsent=True) from None
            raise Backoff(
                f"create sent to Nuki's cloud at {sent}, its answer lost ({exc.message}): "
                "Keyhouse looks for the key there before anything else"
            ) from None
        account.listing = None
        raise Backoff(
            f"create sent to Nuki's cloud at {sent}, accepted; waiting for Nuki to list it",
            BUSY_SECONDS,
            waiting=True,
        )

    def _find(
        self, account_id: int, account: _Account, smartlock_id: int, print_: dict[str, Any]
    ) -> dict[str, Any] | None:
        keys = self._call(account_id, account, account.api.keys, smartlock_id)
        found = [key for key in keys if matches(key, print_) and key.get("id")]
        found.sort(key=lambda key: str(key.get("creationDate") or ""))
        return found[0] if found else None

    def _change(
        self,
        account_id: int,
        account: _Account,
        smartlock_id: int,
        ref: str,
        data: dict[str, Any],
        current: dict[str, Any] | None,
    ) -> Placed:
        if current is None:
            try:
                current = self._call(account_id, account, account.api.key, smartlock_id, ref)
            except UpstreamNotFound:
                raise DeviceRejected(
                    "404",
                    "the key is no longer at Nuki's cloud (deleted there): delete it here, or "
                    "make it again",
                ) from None
        assert current is not None
        if not same(current, data):
            body = update_body(current, data)
            self._call(account_id, account, account.api.update_key, smartlock_id, ref, body)
            account.listing = None
            raise NotOnLockYet(
                "sent to Nuki's cloud; waiting for Nuki to list it", ref, listed=False
            )
        if current.get("error") and on_lock(current):
            raise DeviceRejected("lock", f"Nuki's cloud reports: {current['error']}")
        if not on_lock(current):
            raise NotOnLockYet(
                "Nuki's cloud has this key; the lock does not hold it yet (it is offline, or "
                "busy): Keyhouse looks again",
                ref,
            )
        auth_id = current.get("authId")
        return Placed(ref=ref, auth_id=auth_id if isinstance(auth_id, int) else None)

    def remove(
        self,
        smartlock_id: int,
        key_id: str,
        ref: str | None,
        fence: int,
        marker: CreateMarker | None = None,
    ) -> None:
        if ref is None and marker is None:
            return  # never sent: nothing at the upstream
        account_id, account = self._client(smartlock_id)
        try:
            if ref is None:
                assert marker is not None
                print_ = marker.fingerprint
                if print_.get("type") == 0 and "accountUserId" not in print_:
                    # An app key is found with its user (None: never made there, so no key).
                    user = self._upstream_user(account_id, account, key_id, create=False)
                    print_ = {**print_, "accountUserId": user}
                found = self._find(account_id, account, smartlock_id, print_)
                if found is None:
                    if utcnow() - marker.sent_at < self.resend_after:
                        raise Backoff(
                            "its create may still land at Nuki's cloud: Keyhouse waits to "
                            "remove it there",
                            waiting=True,
                        )
                    return
                ref = str(found["id"])
            with contextlib.suppress(UpstreamNotFound):  # absent: fine
                self._call(account_id, account, account.api.delete_key, smartlock_id, ref)
            account.listing = None
            # Gone only when Nuki no longer lists it: until then the key stays a tombstone in
            # Keyhouse, so no drift check can take it for a key made at Nuki and adopt it.
            try:
                self._call(account_id, account, account.api.key, smartlock_id, ref)
            except UpstreamNotFound:
                return
            # Where the key is gets recorded (a create's marker goes): the next look asks for
            # that key, and only for it.
            raise NotOnLockYet(
                "the removal was sent to Nuki's cloud, which still lists the key (the lock has "
                "not taken the removal yet): Keyhouse asks again",
                ref,
                listed=False,
            )
        except UpstreamError as exc:
            raise self._words(exc) from None

    def read_all(self, smartlock_id: int) -> dict[str, dict[str, Any]]:
        """The lock's keys at the upstream by their id there, from one account-wide listing
        shared (for ``LISTING_SECONDS``) by the drift checks of the account's locks. Each entry:
        Keyhouse's payload fields, ``keyId`` None (the upstream does not know Keyhouse's ids),
        ``onLock``, and the upstream's key as it is (``upstream``)."""
        account_id, account = self._client(smartlock_id)
        with account.guard:
            cached = account.listing
            if cached is None or time.monotonic() - cached[0] > LISTING_SECONDS:
                try:
                    keys = self._call(account_id, account, account.api.keys)
                except UpstreamError as exc:
                    raise self._words(exc) from None
                cached = account.listing = (time.monotonic(), keys)
        found: dict[str, dict[str, Any]] = {}
        for key in cached[1]:
            if key.get("smartlockId") == smartlock_id and key.get("id"):
                found[str(key["id"])] = {
                    **normalized(key),
                    "keyId": None,
                    "onLock": on_lock(key),
                    "upstream": key,
                }
        return found

    def act(
        self, smartlock_id: int, action: int, option: int, trigger: int, device_type: int
    ) -> DoorEvent | ActionAccepted:
        account_id, account = self._client(smartlock_id)
        try:
            self._call(account_id, account, account.api.action, smartlock_id, action, option)
        except UpstreamError as exc:
            raise self._words(exc) from None
        return ActionAccepted("Nuki's cloud took the action; the lock reports the outcome later")
