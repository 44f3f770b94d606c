"""Throughput of the outbox sender: N invite mails rendered and sent to a local SMTP server.

    .venv/bin/python bench/mail_delivery.py --mails 500

Writes N outbox rows (the invite template, with a guest-link secret each) into a fresh SQLite
store, then times one `MailSender.deliver_due()` that sends them all, each with its claim, its
hand-over mark and its outcome recorded, to aiosmtpd on loopback. Prints mails per second.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from aiosmtpd.controller import Controller

from keyhouse.outbox.sender import MailSender
from keyhouse.rules.secrets_ import new_link_secret
from keyhouse.settings import Settings
from keyhouse.store.database import Database
from keyhouse.store.models import Account, OutboxMessage


class CountingMailBox:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        return "250 OK"


CONTEXT = {
    "user_name": "Guest",
    "account_name": "Holiday Flats",
    "lock_name": "Front Door",
    "key_name": "December guest",
    "key_type": 0,
    "remote_allowed": True,
    "timezone": "Europe/Vienna",
    "validity": "Mon–Fri, 08:00–18:00, 1 Dec 2026 – 31 Dec 2026, Europe/Vienna time",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=500)
    parser.add_argument("--port", type=int, default=8925)
    args = parser.parse_args()

    mailbox = CountingMailBox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=args.port)
    controller.start()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data=Path(folder), smtp_url=f"smtp://127.0.0.1:{args.port}")
        db = Database(settings.resolved_database_url)
        db.migrate()
        with db.session() as session:
            account = Account(email="owner@example.com", name="Holiday Flats")
            session.add(account)
            session.flush()
            for number in range(args.mails):
                session.add(
                    OutboxMessage(
                        account_id=account.id,
                        kind="invite",
                        message_id=f"<invite.bench{number}@keyhouse>",
                        recipient=f"guest{number}@example.com",
                        subject="Your key to Front Door: December guest",
                        body="(kept copy)",
                        language="de" if number % 2 else "en",
                        context=CONTEXT,
                        secrets={"link_secret": new_link_secret()},
                    )
                )
        sender = MailSender(db, settings)
        started = time.perf_counter()
        sent = sender.deliver_due()
        elapsed = time.perf_counter() - started
        db.dispose()
    controller.stop()
    assert sent == args.mails == mailbox.count, (sent, mailbox.count)
    print(
        f"{sent} mails in {elapsed:.2f} s: {sent / elapsed:.0f} mails/s "
        f"({elapsed / sent * 1000:.1f} ms each)"
    )


if __name__ == "__main__":
    main()
