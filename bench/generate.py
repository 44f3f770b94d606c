"""Fill a Keyhouse store with many accounts, locks, users and keys, fast (bulk inserts through
the store's own tables, not the API), for the benchmarks at scale.

    .venv/bin/python bench/generate.py --data DIR [--database-url URL]
        [--accounts 100] [--locks 10000] [--users 100000] [--keys 1000000] [--out FILE]

Every account gets locks/accounts locks and users/accounts users; every lock gets keys/locks
keys, spread over the account's users (so one user holds keys on about keys/users locks), one
in ten a keypad code (unique per lock), the rest app keys; all applied, and every virtual lock
holds its keys (sim_auths), so the reconciler and the drift check have nothing to do. Each
account gets one token. ``--out`` (JSON) lists, per account, its token, lock ids and user ids:
what the load generators rotate over. Prints a progress bar, then the counts and the time.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from sqlalchemy import insert

from keyhouse.rules.dates import format_api_datetime
from keyhouse.rules.ids import new_object_id
from keyhouse.rules.secrets_ import hash_token, new_api_token
from keyhouse.services.caller import ALL_SCOPES
from keyhouse.settings import Settings
from keyhouse.store.database import Database
from keyhouse.store.models import (
    Account,
    AccountUser,
    ApiToken,
    SimulatedAuth,
    SimulatedLock,
    Smartlock,
    SmartlockAuth,
)

BATCH = 20_000
KEYPAD_TYPE = 13


def keypad_code(n: int) -> int:
    """The n-th six-digit code of digits 1-9 (Nuki's rule), distinct for distinct n < 9**5."""
    digits = ""
    for _ in range(5):
        n, digit = divmod(n, 9)
        digits = str(digit + 1) + digits
    return int("1" + digits)


def lock_id_of(account: int, n: int) -> int:
    """A smartlockId as Nuki builds it (type 4 in the top bits), unique per (account, n)."""
    nuki_id = (account << 16) | n
    return (4 << 32) | nuki_id


class Writer:
    """Batched inserts, committed every BATCH rows."""

    def __init__(self, db: Database, progress: Progress, task: Any) -> None:
        self.db = db
        self.progress = progress
        self.task = task
        self.pending: dict[Any, list[dict[str, Any]]] = {}

    def add(self, table: Any, row: dict[str, Any]) -> None:
        rows = self.pending.setdefault(table, [])
        rows.append(row)
        if len(rows) >= BATCH:
            self.flush(table)

    def flush(self, table: Any | None = None) -> None:
        tables = [table] if table is not None else list(self.pending)
        for name in tables:
            rows = self.pending.pop(name, [])
            if not rows:
                continue
            with self.db.session() as session:
                session.execute(insert(name), rows)
            if name is SmartlockAuth:
                self.progress.advance(self.task, len(rows))


def generate(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(data=args.data, database_url=args.database_url)
    args.data.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.migrate()
    now = datetime.now(UTC)
    locks_per_account = args.locks // args.accounts
    users_per_account = args.users // args.accounts
    keys_per_lock = args.keys // args.locks
    out: dict[str, Any] = {"accounts": []}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} keys"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns) as progress:
        task = progress.add_task(
            "generating", total=locks_per_account * args.accounts * keys_per_lock
        )
        writer = Writer(db, progress, task)
        with db.session() as session:
            first_user = 1 + (session.query(AccountUser.id).count() or 0)
        user_id = first_user
        for a in range(args.accounts):
            with db.session() as session:
                account = Account(
                    email=f"owner{a}@bench.example", name=f"Owner {a}", created_at=now
                )
                session.add(account)
                session.flush()
                account_id = account.id
                token = new_api_token()
                session.add(
                    ApiToken(
                        account_id=account_id,
                        name="bench",
                        token_hash=hash_token(token),
                        scopes=" ".join(ALL_SCOPES),
                        created_at=now,
                    )
                )
            users = list(range(user_id, user_id + users_per_account))
            for n, uid in enumerate(users):
                writer.add(
                    AccountUser,
                    {
                        "id": uid,
                        "account_id": account_id,
                        "email": f"guest{n}.a{a}@bench.example",
                        "email_key": f"guest{n}.a{a}@bench.example",
                        "name": f"Guest {n}",
                        "type": 0,
                        "language": "en",
                        "created_at": now,
                        "updated_at": now,
                    },
                )
            writer.flush(AccountUser)
            user_id += users_per_account
            lock_ids = []
            for n in range(locks_per_account):
                lock_id = lock_id_of(account_id, n)
                lock_ids.append(lock_id)
                writer.add(
                    Smartlock,
                    {
                        "id": lock_id,
                        "account_id": account_id,
                        "type": 4,
                        "nuki_id": f"{lock_id & 0xFFFFFFFF:08X}",
                        "name": f"Flat {n}",
                        "timezone": "Europe/Berlin",
                        "keypad": True,
                        "favorite": False,
                        "auth_id": keys_per_lock + 1,
                        "virtual": True,
                        "link": "virtual",
                        "checked_at": now,
                        "keys_version": 1,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
                writer.add(
                    SimulatedLock,
                    {
                        "smartlock_id": lock_id,
                        "online": True,
                        "keypad": True,
                        "state": 1,
                        "battery_charge": 100,
                        "door_state": 2,
                        "last_action": 0,
                        "trigger": 0,
                        "latency_ms": 0,
                        "fence": 0,
                    },
                )
            writer.flush(Smartlock)
            writer.flush(SimulatedLock)
            for n, lock_id in enumerate(lock_ids):
                for k in range(keys_per_lock):
                    keypad = k % 10 == 9
                    uid = users[(n * keys_per_lock + k) % len(users)] if users else None
                    key_id = new_object_id()
                    slot = k + 1
                    row = {
                        "id": key_id,
                        "account_id": account_id,
                        "smartlock_id": lock_id,
                        "account_user_id": uid,
                        "auth_id": slot,
                        "type": KEYPAD_TYPE if keypad else 0,
                        "name": f"Key {k}",
                        "enabled": True,
                        "remote_allowed": False,
                        "smart_actions_enabled": False,
                        "code": keypad_code(k) if keypad else None,
                        "allowed_from_date": None,
                        "allowed_until_date": None,
                        "allowed_week_days": 124,
                        "allowed_from_time": 480,
                        "allowed_until_time": 1080,
                        "lock_count": 0,
                        "created_at": now,
                        "updated_at": now,
                        "revision": 1,
                        "applied_revision": 1,
                        "deleting": False,
                        "device_ref": str(slot),
                        "attempts": 0,
                        "verified_at": now,
                    }
                    writer.add(SmartlockAuth, row)
                    writer.add(
                        SimulatedAuth,
                        {
                            "smartlock_id": lock_id,
                            "slot": slot,
                            "auth_key": key_id,
                            "data": {
                                "type": row["type"],
                                "name": row["name"],
                                "enabled": True,
                                "remoteAllowed": False,
                                "code": row["code"],
                                "allowedFromDate": None,
                                "allowedUntilDate": None,
                                "allowedWeekDays": 124,
                                "allowedFromTime": 480,
                                "allowedUntilTime": 1080,
                            },
                            "writes": 1,
                        },
                    )
            out["accounts"].append(
                {"id": account_id, "token": token, "locks": lock_ids, "users": users}
            )
        writer.flush()
    with db.engine.connect() as connection:  # statistics for the planner, on both stores
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    db.dispose()
    out["seconds"] = round(time.monotonic() - started, 1)
    out["generated"] = format_api_datetime(now)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--locks", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.locks % args.accounts or args.keys % args.locks:
        parser.error("--locks must be a multiple of --accounts, and --keys of --locks")
    if args.keys // args.locks > 9**5:
        parser.error("at most 59049 keys per lock")
    out = generate(args)
    if args.out:
        args.out.write_text(json.dumps(out))
    print(
        f"{args.accounts:,} accounts, {args.locks:,} locks, {args.users:,} users, "
        f"{args.keys:,} keys in {out['seconds']} s"
    )


if __name__ == "__main__":
    main()
