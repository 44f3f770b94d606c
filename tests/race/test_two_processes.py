"""Two `keyhouse serve` processes on one PostgreSQL database under a mixed write storm (creates,
edits, disables, deletes, a lock going offline and back), requests spread over both: after
settling, every lock holds exactly the latest revision of every live key and none of the deleted
ones, no key's appliedRevision ever went backwards, and no answer was >= 500."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
from racekit import (
    Api,
    Codes,
    check_invariant,
    code_body,
    open_store,
    running,
    server_env,
    set_online,
    settle,
)
from sqlalchemy import text

from conftest import start_server

pytestmark = pytest.mark.timeout(300)

WRITERS = 6
OPERATIONS = 60  # per writer
SHARED_KEYS = 4
# Device calls take a moment, so the two processes' calls to one lock would overlap without
# the lease (the simulator at 0 latency makes that window too small to see).
SLOW_LOCKS = {"KEYHOUSE_SIM_LATENCY_MS": "40"}


def test_two_processes_one_database_write_storm(tmp_path: Path) -> None:
    with open_store("postgresql", tmp_path) as store, running(store, SLOW_LOCKS) as first:
        second_process, second = start_server(tmp_path / "second", server_env(store, SLOW_LOCKS))
        try:
            urls = [first.url, second.url]
            codes = Codes()
            stop = threading.Event()
            went_back: list[str] = []

            def watch() -> None:
                """appliedRevision of every key, read again and again: it never goes back."""
                seen: dict[str, int] = {}
                while not stop.is_set():
                    with store.engine().connect() as connection:
                        rows = connection.execute(
                            text("SELECT id, applied_revision FROM smartlock_auths")
                        ).all()
                    for key_id, applied in rows:
                        if applied < seen.get(key_id, 0):
                            went_back.append(f"{key_id}: {seen[key_id]} -> {applied}")
                        seen[key_id] = applied
                    time.sleep(0.02)

            # A few keys every writer edits, through both processes: the two processes' work
            # on one lock overlaps all the time.
            shared: list[str] = []
            for n in range(SHARED_KEYS):
                name = f"Shared {n}"
                answer = first.api.put(
                    f"/smartlock/{first.front}/auth", json=code_body(name, codes.take())
                )
                assert answer.status_code == 204, answer.text
            shared += [k["id"] for k in first.api.get(f"/smartlock/{first.front}/auth").json()]

            def write(index: int) -> None:
                rng = random.Random(index)
                api = Api(urls[index % 2], first.token, first.recorder)
                mine: list[str] = []
                try:
                    for n in range(OPERATIONS):
                        lock = first.front
                        choice = rng.random()
                        if choice < 0.5:  # edit a shared key
                            path = f"/smartlock/{lock}/auth/{rng.choice(shared)}"
                            if rng.random() < 0.6:
                                api.post(path, json={"name": f"S{index}-{n}"})
                            else:
                                api.post(path, json={"enabled": rng.random() < 0.5})
                            continue
                        choice = (choice - 0.5) * 2
                        if not mine or choice < 0.35:
                            name = f"W{index}-{n}"
                            answer = api.put(
                                f"/smartlock/{lock}/auth", json=code_body(name, codes.take())
                            )
                            if answer.status_code == 204:
                                listed = api.get(f"/smartlock/{lock}/auth").json()
                                mine += [k["id"] for k in listed if k["name"] == name]
                            continue
                        key = rng.choice(mine)
                        path = f"/smartlock/{lock}/auth/{key}"
                        if choice < 0.55:
                            api.post(path, json={"name": f"R{index}-{n}"})
                        elif choice < 0.75:
                            api.post(path, json={"enabled": rng.random() < 0.5})
                        elif choice < 0.9:
                            api.delete(path)
                            mine.remove(key)
                        else:
                            online = rng.random() < 0.5
                            api.post(f"/emulator/smartlock/{lock}", json={"online": online})
                finally:
                    api.close()

            watcher = threading.Thread(target=watch)
            watcher.start()
            writers = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
            for thread in writers:
                thread.start()
            for thread in writers:
                thread.join(240)
            set_online(first, first.front, True)
            problems = settle(first, deadline=20)
            stop.set()
            watcher.join(10)
            problems += check_invariant(first)
            problems += first.recorder.take()
            problems += [f"appliedRevision went back: {line}" for line in went_back]
            # each revision of a key is written to the lock at most once (a lease is never
            # lost in this test, so there is no retry to allow for)
            with store.engine().connect() as connection:
                doubled = connection.execute(
                    text(
                        "SELECT k.id, k.revision, s.writes FROM smartlock_auths k "
                        "JOIN sim_auths s ON s.auth_key = k.id WHERE s.writes > k.revision"
                    )
                ).all()
            problems += [f"key {row[0]}: {row[2]} writes for {row[1]} revisions" for row in doubled]
            assert not problems, "\n".join(problems[:20])
        finally:
            second_process.terminate()
            second_process.wait(15)
