"""The state and activity log of a linked Nuki Web account's locks, brought into Keyhouse.

One pull, for one account (``UpstreamSync.sync``):

1. ``GET /smartlock`` (one call): each imported lock gets the upstream's state, config and
   server state, with the mapping of the link itself (``rules.upstream.parse_locks``,
   ``store.upstream.refresh_lock``); an imported lock the upstream no longer lists is marked,
   as a relink does. New locks are not added here: that is the operator's relink.
2. ``GET /smartlock/log`` (account-wide, newest first, ``limit`` 50): pages to older entries
   with the official ``id`` cursor until a page holds an entry Keyhouse has, or a short page,
   or ``pages`` pages (4: at most 200 entries a pull, the first pull of a new link included).
   Each new entry of an imported lock becomes Keyhouse's log entry with the upstream's own id
   (a 24-hex ObjectId, unique in Keyhouse), inserted with ``ON CONFLICT DO NOTHING``: a second
   pull, or two processes pulling at once, insert each entry once. The upstream's ``authId``
   is mapped to the Keyhouse key the upstream calls so (its ``device_ref``), so the entry
   names that key (id, slot, user); a key Keyhouse does not know keeps the upstream's id and
   name. Entries of locks not imported are skipped.

Every request counts against the account's budget (``KEYHOUSE_UPSTREAM_RATE``, shared with
the cloud link; over it the pull stops, keeping what it brought) and in
``upstream_links.calls``. A failure is the link's ``last_error``, in words, and the next pull
tries again; a 401/403 breaks the link as the cloud link does (``nuki_cloud.BROKEN_MARK``): a
broken link is not pulled until it is linked again. The token is never logged.

``run`` is the periodic pull: a process claims it on ``upstream_links.sync_due_at`` (the
database's clock), so one process pulls an account per interval; ``after_action`` makes it
due at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy.orm import Session

from keyhouse.devices.nuki_api import LinkBroken, NukiApi, UpstreamError
from keyhouse.devices.nuki_cloud import BROKEN_MARK, is_broken
from keyhouse.rules.dates import utcnow
from keyhouse.rules.rate_limit import describe, parse_rule
from keyhouse.rules.upstream import (
    SENT_MATCH_SECONDS,
    SENT_UPSTREAM,
    UpstreamLockInfo,
    UpstreamLogEntry,
    parse_locks,
    parse_log_page,
)
from keyhouse.store import upstream as store
from keyhouse.store.database import Database
from keyhouse.store.models import Smartlock
from keyhouse.store.rate_limits import RateLimits
from keyhouse.store.secret_box import SecretBox, SecretKeyMissing

log = logging.getLogger(__name__)
WEB_TRIGGER = 4  # an action sent through the web API (Keyhouse's, with the owner's token)

# One page of the upstream's log (Nuki's largest), and the pages one pull reads at most.
LOG_PAGE = 50
LOG_PAGES = 4


OVER_BUDGET = "the budget of requests to Nuki's cloud"


class OverBudget(Exception):
    """The account's budget of requests is used up: nothing was sent."""


@dataclass(frozen=True)
class SyncResult:
    refreshed: int  # imported locks the upstream listed, their state taken
    removed: int  # imported locks it no longer lists (marked now)
    entries: int  # new activity-log entries kept
    skipped: int  # new entries of locks not imported (not kept)
    calls: int
    error: str | None


class UpstreamSync:
    """Pulls linked accounts' lock state and activity log (see the module's text)."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        *,
        interval_seconds: float = 60.0,
        timeout_seconds: float = 10.0,
        pages: int = LOG_PAGES,
        rate_limits: RateLimits | None = None,
        rate: str = "off",
        transport: httpx.BaseTransport | None = None,
        on_due: Callable[[int], object] | None = None,
    ) -> None:
        self.db = db
        self.box = box
        self.interval_seconds = interval_seconds
        self.timeout_seconds = timeout_seconds
        self.pages = max(1, pages)
        # The account's budget of requests upstream (None: not counted).
        self.rate_limits = rate_limits
        self.rate = rate
        self.transport = transport
        # Told an account's pull is due now (the runtime hands it to its worker).
        self.on_due = on_due

    def due(self) -> list[int]:
        """The accounts whose periodic pull is due (none when the interval is 0: off)."""
        if self.interval_seconds <= 0:
            return []
        with self.db.read() as session:
            return store.due_links(session)

    def run(self, account_id: int) -> SyncResult | None:
        """The account's pull if it is due and this process claims it; None otherwise."""
        claimed = self.db.transaction(
            lambda session: store.claim_sync(session, account_id, self.interval_seconds),
            what=f"claiming the pull of account {account_id}",
            durable=False,
        )
        return self.sync(account_id) if claimed else None

    def after_action(self, account_id: int) -> None:
        """An action ran on a lock of the account: its pull is due now (done by this process's
        worker, or another's next scan), so the log shows what happened at the door."""
        linked = self.db.transaction(
            lambda session: store.sync_now(session, account_id),
            what=f"asking for the pull of account {account_id}",
            durable=False,
        )
        if linked and self.on_due is not None:
            self.on_due(account_id)

    def sync(self, account_id: int) -> SyncResult | None:
        """Pull the account's state and log now; None if it is not linked."""
        with self.db.read() as session:
            link = store.link_of(session, account_id)
            if link is None:
                return None
            url, sealed, last_error = link.url, link.token_secret, link.last_error
        if is_broken(last_error):
            return SyncResult(0, 0, 0, 0, 0, last_error)  # nothing sent until linked again
        try:
            token = self.box.open(sealed)
        except SecretKeyMissing as exc:
            return self._failed(account_id, 0, str(exc))
        refreshed = removed = kept = skipped = 0
        error: str | None = None
        cloud = NukiApi(url, token, timeout_seconds=self.timeout_seconds, transport=self.transport)
        try:
            try:
                self._spend(account_id)
                found = parse_locks(cloud.smartlocks())
                refreshed, removed = self.db.transaction(
                    lambda session: _refresh(session, account_id, found, utcnow()),
                    what=f"taking the state of account {account_id}'s locks",
                )
                kept, skipped = self._pull_log(cloud, account_id)
            except OverBudget as exc:
                error = str(exc)
            except LinkBroken as exc:
                error = BROKEN_MARK + exc.message
            except UpstreamError as exc:
                error = exc.message
            except ValueError as exc:
                error = f"Nuki's API at {url}: {exc}"
        finally:
            cloud.close()
        done = (refreshed, removed, kept, skipped)
        if error is not None and error.startswith(OVER_BUDGET):
            # Not the upstream's failure: the calls made are counted, the link's error kept.
            log.info("account %s: %s", account_id, error)
            if cloud.calls:
                self._record(account_id, cloud.calls, last_error)
            return SyncResult(*done, cloud.calls, error)
        if error is not None:
            return self._failed(account_id, cloud.calls, error, done)
        self._record(account_id, cloud.calls, None)
        return SyncResult(*done, cloud.calls, None)

    def _record(self, account_id: int, calls: int, error: str | None) -> None:
        self.db.transaction(
            lambda session: store.count_pull(
                session, account_id, calls, utcnow(), error, BROKEN_MARK
            ),
            what=f"recording the pull of account {account_id}",
        )

    def _failed(
        self,
        account_id: int,
        calls: int,
        error: str,
        done: tuple[int, int, int, int] = (0, 0, 0, 0),
    ) -> SyncResult:
        log.warning("account %s: pulling from Nuki's cloud failed: %s", account_id, error)
        self._record(account_id, calls, error)
        return SyncResult(*done, calls, error)

    def _spend(self, account_id: int) -> None:
        """One request of the account's budget, or OverBudget (nothing sent)."""
        if self.rate_limits is None:
            return
        verdict = self.rate_limits.hit(self.rate, "upstream", account_id)
        if not verdict.allowed:
            rule = parse_rule(self.rate)
            raise OverBudget(
                f"{OVER_BUDGET} ({describe(rule) if rule is not None else self.rate}, "
                f"KEYHOUSE_UPSTREAM_RATE) is used up: the pull goes on at the next interval"
            )

    def _pull_log(self, cloud: NukiApi, account_id: int) -> tuple[int, int]:
        """New entries, newest first across pages, until one Keyhouse has; kept oldest first
        (so Keyhouse's order, by insertion, is the upstream's). (kept, skipped)."""
        fresh: list[UpstreamLogEntry] = []
        cursor: str | None = None
        stopped: Exception | None = None
        for _ in range(self.pages):
            try:
                self._spend(account_id)
                page = cloud.logs(limit=LOG_PAGE, older_than=cursor)
            except (OverBudget, UpstreamError) as exc:
                if not fresh:
                    raise
                stopped = exc  # what the earlier pages brought is kept, then the failure told
                break
            entries, last, size = parse_log_page(page)
            with self.db.read() as session:
                known = store.known_log_ids(session, account_id, [e.id for e in entries])
            fresh.extend(entry for entry in entries if entry.id not in known)
            if known or size < LOG_PAGE or last is None:
                break
            cursor = last
        done = (0, 0)
        if fresh:
            done = self.db.transaction(
                lambda session: _keep(session, account_id, fresh[::-1]),
                what=f"keeping account {account_id}'s activity log",
            )
        if stopped is not None:
            raise stopped
        return done


def _refresh(
    session: Session, account_id: int, found: list[UpstreamLockInfo], now: datetime
) -> tuple[int, int]:
    """The imported locks as the upstream lists them (see the module's text)."""
    # The account's row first, as a link does: a link and a pull of one account take turns.
    if (
        store.hold_account(session, account_id) is None
        or store.link_of(session, account_id) is None
    ):
        return 0, 0  # unlinked meanwhile
    by_id = {info.smartlock_id: info for info in found}
    refreshed = removed = 0
    for row in store.imported(session, account_id):
        info = by_id.get(row.smartlock_id)
        if info is None:
            if row.removed_at is None:
                row.removed_at = now
                removed += 1
            continue
        lock = session.get(Smartlock, row.smartlock_id)
        if lock is None:
            continue
        store.refresh_lock(session, account_id, lock, row, info, now)
        refreshed += 1
    return refreshed, removed


def _keep(session: Session, account_id: int, entries: list[UpstreamLogEntry]) -> tuple[int, int]:
    """Insert the entries of imported locks (oldest first), each once. (kept, skipped)."""
    if store.link_of(session, account_id) is None:
        return 0, 0  # unlinked meanwhile
    types = store.imported_types(session, account_id)
    keys = store.keys_by_ref(session, account_id, {e.auth_id for e in entries if e.auth_id})
    kept = skipped = 0
    for entry in entries:
        if entry.smartlock_id not in types:
            skipped += 1
            continue
        if entry.trigger == WEB_TRIGGER and store.settle_sent_open(
            session, account_id, entry, SENT_UPSTREAM, SENT_MATCH_SECONDS
        ):
            kept += 1  # Keyhouse's entry of a guest's Open is now Nuki's, still the key's
            continue
        key = keys.get((entry.smartlock_id, entry.auth_id or ""))
        inserted = store.add_log(
            session,
            {
                "id": entry.id,
                "account_id": account_id,
                "smartlock_id": entry.smartlock_id,
                "device_type": types[entry.smartlock_id],
                "auth_key": key.id if key is not None else entry.auth_id,
                "auth_id": key.auth_id if key is not None else None,
                "account_user_id": key.account_user_id if key is not None else None,
                "name": entry.name or (key.name if key is not None else ""),
                "action": entry.action,
                "trigger": entry.trigger,
                "state": entry.state,
                "auto_unlock": entry.auto_unlock,
                "source": entry.source if entry.source is not None else 0,
                "date": entry.date,
                "error": entry.error,
            },
        )
        kept += inserted
    return kept, skipped
