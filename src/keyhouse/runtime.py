"""The running parts of one Keyhouse process: database, device sync, mail, and their workers."""

from __future__ import annotations

from collections.abc import Iterable

from keyhouse.devices.simulator import VirtualLockLink
from keyhouse.devices.sync import DeviceSync
from keyhouse.outbox.sender import MailSender
from keyhouse.services.listing_cache import ListingCache
from keyhouse.settings import Settings
from keyhouse.store.database import Database
from keyhouse.worker import Worker

MAIL_QUEUE = "outbox"


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.resolved_database_url)
        self.link = VirtualLockLink(
            self.db, latency_ms=settings.sim_latency_ms, flakiness=settings.sim_flakiness
        )
        self.device_sync = DeviceSync(self.db, self.link)
        self.mail = MailSender(self.db, settings)
        self.key_listings = ListingCache()
        self.device_worker = Worker(
            "keyhouse-devices",
            handle=lambda lock_id: self.device_sync.apply_pending(int(lock_id)),  # type: ignore[call-overload]
            scan=self.device_sync.locks_with_pending,
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
        self.device_worker.submit(self.device_sync.locks_with_pending())
        self.mail_worker.submit([MAIL_QUEUE])

    def stop(self) -> None:
        self.device_worker.stop()
        self.mail_worker.stop()
        self.db.dispose()

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
