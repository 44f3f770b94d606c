"""The running parts of one Keyhouse process: database, device sync, mail, and their workers.

A process runs the workers (``background=True``: ``keyhouse serve``, ``keyhouse worker``) or
only answers requests (``keyhouse serve --no-worker``): then the work it commits reaches the
worker processes through the database (PostgreSQL ``NOTIFY``, and their scans), and a write
waits for its locks by looking at the keys' state in the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import update

from keyhouse.devices.links import Links
from keyhouse.devices.nuki_cloud import NukiCloudLink
from keyhouse.devices.simulator import VirtualLockLink
from keyhouse.devices.sync import Reconciler, owner_name
from keyhouse.devices.upstream_sync import UpstreamSync
from keyhouse.outbox.sender import MailSender
from keyhouse.rules.dates import utcnow
from keyhouse.settings import Settings
from keyhouse.store import audit, repo
from keyhouse.store.database import Database
from keyhouse.store.files import secure_data_folder
from keyhouse.store.idempotency import Pruner
from keyhouse.store.listing_cache import ListingCache
from keyhouse.store.models import SmartlockAuth
from keyhouse.store.notify import LockListener
from keyhouse.store.rate_limits import RateLimits
from keyhouse.store.secret_box import SecretBox
from keyhouse.store.token_uses import TokenUses
from keyhouse.worker import InFlight, Worker

log = logging.getLogger(__name__)

MAIL_QUEUE = "outbox"
HOUSEKEEPING = "audit-retention"
# How often old audit events are looked for, and how many batches one run deletes at most
# (each batch its own short transaction; what is left goes on the next run).
HOUSEKEEPING_EVERY_SECONDS = 3600.0
PRUNE_BATCHES_PER_RUN = 100
# Linked accounts pulled at once by one process (a hanging upstream holds one of them).
UPSTREAM_THREADS = 2


# How often a process without workers looks whether its locks have confirmed a write.
CONFIRM_POLL_SECONDS = 0.025


class Runtime:
    def __init__(self, settings: Settings, *, background: bool = True) -> None:
        self.settings = settings
        # Whether this process brings locks up to date and sends mail (see the module's text).
        self.background = background
        secure_data_folder(settings.data)  # 0700, its secrets 0600 (tightened if looser)
        self.db = Database(
            settings.resolved_database_url,
            reconciler_sync=settings.sqlite_reconciler_sync,
            pool_size=settings.database_pool_size,
        )
        # The simulator; the emulator API and the admin CLI speak to it directly.
        self.link = VirtualLockLink(
            self.db,
            latency_ms=settings.sim_latency_ms,
            flakiness=settings.sim_flakiness,
            timeout_seconds=settings.device_timeout_seconds,
        )
        # Stored secrets Keyhouse reads back (upstream tokens), encrypted at rest.
        self.secrets = SecretBox(
            settings.data, settings.secret_key.get_secret_value() if settings.secret_key else None
        )
        self.rate_limits = RateLimits(
            settings.redis_url,
            namespace=hashlib.sha256(settings.resolved_database_url.encode()).hexdigest()[:12],
        )
        # Locks imported from a linked Nuki Web account: driven through Nuki's cloud.
        self.cloud_link = NukiCloudLink(
            self.db,
            self.secrets,
            self.rate_limits,
            rate=settings.upstream_rate,
            timeout_seconds=settings.device_timeout_seconds,
            request_timeout_seconds=min(
                settings.upstream_timeout_seconds, settings.device_timeout_seconds / 3
            ),
            resend_after_seconds=settings.upstream_resend_seconds,
        )
        self.links = Links(self.db, {"virtual": self.link, "nuki": self.cloud_link})
        # Who this process is, in the leases it takes on locks.
        self.owner = owner_name()
        self.reconciler = Reconciler(
            self.db,
            self.links,
            owner=self.owner,
            lease_seconds=settings.lease_seconds,
            drift_check_seconds=settings.drift_check_seconds,
            scan_seconds=settings.worker_interval_seconds,
        )
        self.mail = MailSender(self.db, settings)
        # A page of a lock's keys: its JSON, and the cursor of the next page (None: the last).
        self.key_listings = ListingCache(settings.listing_cache_mb * 2**20)
        self.token_uses = TokenUses(self.db)
        self.actions_in_flight = InFlight(settings.actions_per_lock)
        self.device_worker = Worker(
            "keyhouse-devices",
            handle=lambda lock_id: self.reconciler.reconcile(int(lock_id)),  # type: ignore[call-overload]
            scan=self.reconciler.locks_with_work,
            interval=settings.worker_interval_seconds,
            threads=settings.device_threads,
        )
        # PostgreSQL: other processes' key changes wake this one's reconcilers at once.
        self.listener = (
            None
            if self.db.is_sqlite or not background
            else LockListener(
                self.db.url,
                lambda lock_id: self.device_worker.submit([lock_id]),
                on_mail=lambda: self.mail_worker.submit([MAIL_QUEUE]),
            )
        )
        # Idempotency keys older than 24 h are deleted now and then, from the mail scan.
        self.idempotency_pruner = Pruner(self.db)
        self.mail_worker = Worker(
            "keyhouse-mail",
            handle=lambda _key: self.mail.deliver_due(),
            scan=self._mail_scan,
            interval=settings.worker_interval_seconds,
        )
        # Linked Nuki Web accounts: their locks' state and activity log, pulled periodically
        # (claimed per account on the database, so one process pulls) and after actions.
        self.upstream_sync = UpstreamSync(
            self.db,
            self.secrets,
            interval_seconds=settings.upstream_sync_seconds,
            timeout_seconds=settings.upstream_timeout_seconds,
            rate_limits=self.rate_limits,
            rate=settings.upstream_rate,
            on_due=self._upstream_due,
        )
        self.upstream_worker = Worker(
            "keyhouse-upstream",
            handle=lambda account_id: self.upstream_sync.run(int(account_id)),  # type: ignore[call-overload]
            scan=self.upstream_sync.due,
            interval=settings.worker_interval_seconds,
            threads=UPSTREAM_THREADS,
        )
        self._housekeeping_due = 0.0  # time.monotonic() of the next run: at once on start
        self.housekeeping_worker = Worker(
            "keyhouse-housekeeping",
            handle=lambda _key: self.housekeeping(),
            scan=lambda: [HOUSEKEEPING] if time.monotonic() >= self._housekeeping_due else [],
            interval=settings.worker_interval_seconds,
        )

    def housekeeping(self) -> int:
        """The periodic chores: prune audit events past their retention. Returns how many."""
        self._housekeeping_due = time.monotonic() + HOUSEKEEPING_EVERY_SECONDS
        return self.prune_audit()

    def prune_audit(self, now: datetime | None = None) -> int:
        """Delete audit events older than ``audit_retention_days``, in bounded batches."""
        cutoff = (now or utcnow()) - timedelta(days=self.settings.audit_retention_days)
        pruned = 0
        for _ in range(PRUNE_BATCHES_PER_RUN):
            done = self.db.transaction(
                lambda session: audit.prune(session, cutoff), what="pruning the audit log"
            )
            pruned += done
            if done < audit.PRUNE_BATCH:
                break
        return pruned

    def _upstream_due(self, account_id: int) -> None:
        """An account's pull is due now: this process's worker takes it; without workers
        here, the worker processes' next scan does."""
        if self.background:
            self.upstream_worker.submit([account_id])

    def _mail_scan(self) -> list[str]:
        self.idempotency_pruner.maybe()
        return [MAIL_QUEUE] if self.mail.has_due() else []

    def start(self) -> None:
        """Make the schema usable (see ``Database.ensure_schema``: SQLite is upgraded, an old
        PostgreSQL schema raises ``SchemaNotCurrent``), then start the workers, if any."""
        self.db.ensure_schema()
        if not self.background:
            return
        self.device_worker.start()
        self.mail_worker.start()
        self.housekeeping_worker.start()
        self.upstream_worker.start()
        if self.listener is not None:
            self.listener.start()
        self.device_worker.submit(self.reconciler.locks_with_work())
        self.mail_worker.submit([MAIL_QUEUE])

    def stop(self) -> None:
        self.link.closing.set()
        stats = self.key_listings.stats()
        if stats.hits or stats.misses:
            log.info("key listing cache: %s", stats.describe())
        if self.listener is not None:
            self.listener.stop()
        if self.background:
            self.device_worker.stop()
            self.mail_worker.stop()
            self.housekeeping_worker.stop()
            self.upstream_worker.stop()
        self.cloud_link.close()
        self.db.dispose()

    def retry_now(self, smartlock_id: int) -> bool:
        """The lock is back (online, fault cleared): what waits for a backoff goes now."""

        def work(session) -> None:  # type: ignore[no-untyped-def]
            repo.lock_smartlocks(session, [smartlock_id])
            session.execute(
                update(SmartlockAuth)
                .where(
                    SmartlockAuth.smartlock_id == smartlock_id, SmartlockAuth.retry_at.is_not(None)
                )
                .values(retry_at=None)
            )

        self.db.transaction(work, what=f"retrying smartlock {smartlock_id}")
        return self.after_commit([smartlock_id])

    def _hand_over(self, lock_ids: Iterable[int], mails: int) -> list[int]:
        """Give committed work to the workers; the locks to wait for. Without workers in this
        process the commit itself told the others (NOTIFY, or their next scan)."""
        if not self.background:
            return list(lock_ids)
        if mails:
            self.mail_worker.submit([MAIL_QUEUE])
        ids = list(lock_ids)
        if ids:
            self.device_worker.submit(ids)
        return ids

    async def after_commit_async(self, lock_ids: Iterable[int], mails: int = 0) -> bool:
        """``after_commit`` for the event loop: waits without holding a thread, so writes
        waiting for a slow lock never take the threads other requests need."""
        import asyncio
        import time

        from starlette.concurrency import run_in_threadpool

        ids = self._hand_over(lock_ids, mails)
        deadline = time.monotonic() + self.settings.confirm_wait_seconds
        if not self.background:
            while ids and await run_in_threadpool(self._waiting_in_store, ids):
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(CONFIRM_POLL_SECONDS)
            return True
        if not ids:
            return True
        # Woken by the worker thread that finishes the last of the locks (no polling: a
        # waiting request costs the event loop nothing).
        loop = asyncio.get_running_loop()
        idle = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(idle.set)

        cancel = self.device_worker.on_idle(ids, wake)
        try:
            await asyncio.wait_for(idle.wait(), max(deadline - time.monotonic(), 0))
            return True
        except TimeoutError:
            return False
        finally:
            cancel()

    def after_commit(self, lock_ids: Iterable[int], mails: int = 0) -> bool:
        """Hand queued work to the workers; wait a moment for the locks to confirm.

        Returns whether every lock confirmed within ``confirm_wait_seconds``. The answer to the
        client does not depend on it: the key shows its state either way.
        """
        ids = self._hand_over(lock_ids, mails)
        if not self.background:
            import time

            deadline = time.monotonic() + self.settings.confirm_wait_seconds
            while ids and self._waiting_in_store(ids):
                if time.monotonic() >= deadline:
                    return False
                time.sleep(CONFIRM_POLL_SECONDS)
            return True
        return not ids or self.device_worker.wait(ids, self.settings.confirm_wait_seconds)

    def _waiting_in_store(self, lock_ids: list[int]) -> bool:
        """Whether any of the locks has keys a worker could bring to it now."""
        with self.db.read() as session:
            return bool(repo.locks_with_work(session, utcnow(), among=lock_ids))
