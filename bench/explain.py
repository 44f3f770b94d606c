"""The plan of every list query the API runs, on a generated store (bench/generate.py).

    .venv/bin/python bench/explain.py --data DIR [--database-url URL] --plan plan.json

Sends each list request through the real app in this process, captures the SQL it runs (with
its parameters) and prints ``EXPLAIN QUERY PLAN`` (SQLite) or ``EXPLAIN`` (PostgreSQL) for
each, with the time the request took. Plans on tiny fixtures prove nothing: run it on the
million keys.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event, text

from keyhouse.app import create_app
from keyhouse.runtime import Runtime
from keyhouse.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--plan", type=Path, required=True)
    args = parser.parse_args()
    plan = json.loads(args.plan.read_text())
    account = plan["accounts"][len(plan["accounts"]) // 2]
    lock, user = account["locks"][len(account["locks"]) // 2], account["users"][3]
    runtime = Runtime(
        Settings(
            data=args.data,
            database_url=args.database_url,
            rate_limit="off",
            drift_check_seconds=0,
        ),
        background=False,
    )
    captured: list[tuple[str, Any]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(runtime.db.engine, "before_cursor_execute", capture)
    requests = {
        "one lock's keys": f"/smartlock/{lock}/auth",
        "one user's keys across locks": f"/smartlock/auth?accountUserId={user}",
        "the account's keypad codes": "/smartlock/auth?types=13",
        "the account's locks": "/smartlock",
        "the account's users (first page)": "/account/user",
        "one lock's log": f"/smartlock/{lock}/log",
        "the account's log": "/smartlock/log",
        "invites": "/keyhouse/invites",
        "the audit log": "/keyhouse/audit",
    }
    headers = {"Authorization": f"Bearer {account['token']}"}
    explain = "EXPLAIN QUERY PLAN " if runtime.db.is_sqlite else "EXPLAIN "
    with TestClient(create_app(runtime=runtime)) as client:
        for what, path in requests.items():
            captured.clear()
            started = time.perf_counter()
            answer = client.get(path, headers=headers)
            took = (time.perf_counter() - started) * 1000
            print(
                f"## {what}: GET {path} -> {answer.status_code}, {len(answer.content):,} B, "
                f"{took:.1f} ms"
            )
            for statement, parameters in captured:
                if "api_tokens" in statement and "smartlock_auths" not in statement:
                    continue  # the token lookup: by its unique hash
                with runtime.db.engine.connect() as connection:
                    raw = connection.connection.cursor()
                    raw.execute(explain + statement, parameters)
                    rows = raw.fetchall()
                first = " ".join(statement.split())[:160]
                print(f"    {first}…")
                for row in rows:
                    print(f"      {row[-1]}")
            print()
    runtime.db.dispose()
    _ = text


if __name__ == "__main__":
    main()
