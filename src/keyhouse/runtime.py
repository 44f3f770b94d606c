"""The running parts of one Keyhouse process: database, device sync, mail, and their workers."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import update

from keyhouse.devices.links import Links
from keyhouse.devices.simulator import VirtualLockLink
from keyhouse.devices.sync import Reconciler
from keyhouse.outbox.sender import MailSender
from keyhouse.services.listing_cache import ListingCache
from keyhouse.settings import Settings
from keyhouse.store import repo
from keyhouse.store.database import Database
from keyhouse.store.files import secure_data_folder
from keyhouse.store.models import SmartlockAuth
from keyhouse.worker import Worker

MAIL_QUEUE = "outbox"


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        secure_data_folder(settings.data)  # 0700, its secrets 0600 (tightened if looser)
        self.db = Database(settings.resolved_database_url)
        # The simulator; the emulator API and the admin CLI speak to it directly.
        self.link = VirtualLockLink(
            self.db,
            latency_ms=settings.sim_latency_ms,
            flakiness=settings.sim_flakiness,
            timeout_seconds=settings.device_timeout_seconds,
        )
        self.links = Links(self.db, {"virtual": self.link})
        self.reconciler = Reconciler(self.db, self.links)
        self.mail = MailSender(self.db, settings)
        self.key_listings = ListingCache()
        self.device_worker = Worker(
            "keyhouse-devices",
            handle=lambda lock_id: self.reconciler.reconcile(int(lock_id)),  # type: ignore[call-overload]
            scan=self.reconciler.locks_with_work,
            interval=settings.worker_interval_seconds,
        )
        self.mail_worker = Worker(
            "keyhouse-mail",
            handle=lambda _key: self.mail.deliver_due(),
            scan=lambda: [MAIL_QUEUE] if self.mail.has_due() else [],
            interval=settings.worker_interval_seconds,
        )

    def start(self) -> None:
        self.db.migrate()
        self.device_worker.start()
        self.mail_worker.start()
        self.device_worker.submit(self.reconciler.locks_with_work())
        self.mail_worker.submit([MAIL_QUEUE])

    def stop(self) -> None:
        self.link.closing.set()
        self.device_worker.stop()
        self.mail_worker.stop()
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

    def after_commit(self, lock_ids: Iterable[int], mails: int = 0) -> bool:
        """Hand queued work to the workers; wait a moment for the locks to confirm.

        Returns whether every lock confirmed within ``confirm_wait_seconds``. The answer to the
        client does not depend on it: the key shows its state either way.
        """
        if mails:
            self.mail_worker.submit([MAIL_QUEUE])
        ids = list(lock_ids)
        if not ids:
            return True
        self.device_worker.submit(ids)
        return self.device_worker.wait(ids, self.settings.confirm_wait_seconds)
