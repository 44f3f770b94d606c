"""SIGKILL of the server in the middle of a write storm, then a restart on the same store: every
acknowledged (2xx) change is there and reaches the lock, and the invariant holds.

A request that got no answer may or may not have happened: the check accepts either outcome
for it, and nothing else.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from racekit import (
    STORES,
    Api,
    Codes,
    Harness,
    check_invariant,
    code_body,
    create_user,
    describe,
    fob_body,
    keys,
    open_store,
    running,
    settle,
)

STORM_THREADS = 4  # half create keypad codes on the Front Door, half fobs on Flat 2
LIVE_KEYS_PER_THREAD = 3
ACKS_BEFORE_KILL = 30  # acknowledged writes before the kill may come
KILLS = 2  # storm, SIGKILL, restart, check; this many times on the same store
# So that the kill finds acknowledged changes the locks have not applied yet: each device call
# takes a while, and a write answers without waiting long for its lock.
STORM_LATENCY_MS = 40
STORM_ENV = {"KEYHOUSE_CONFIRM_WAIT_SECONDS": "0.05"}
BACKLOG_SECONDS = 15.0  # after the restart the locks work off what the storm left, not a round

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(params=STORES)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with open_store(request.param, tmp_path) as store, running(store, STORM_ENV) as live:
        yield live


@dataclass
class Tracked:
    """A key one storm thread created, as the acknowledged answers left it.

    ``maybe``: the change whose request got no answer (the last one the thread sent), which
    may or may not have happened: field -> value, or {"deleted": True} / {"created": True}.
    """

    created_name: str
    lock: int
    body: dict[str, Any]
    id: str | None = None
    created: bool = False
    name: str = ""
    enabled: bool = True
    deleted: bool = False
    maybe: dict[str, Any] = field(default_factory=dict)

    @property
    def code(self) -> int | None:
        return self.body.get("code")


@dataclass
class Storm:
    harness: Harness
    user: int
    codes: Codes
    seed: int
    tracked: list[Tracked] = field(default_factory=list)
    acks: int = 0
    unexpected: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _serial: int = 0

    def name(self, prefix: str) -> str:
        with self._lock:
            self._serial += 1
            return f"{prefix}{self._serial}"

    def acked(self) -> None:
        with self._lock:
            self.acks += 1

    def worker(self, number: int, api: Api, stop: threading.Event) -> None:
        rng = random.Random(self.seed * 100 + number)
        on_front = number % 2 == 0
        lock = self.harness.front if on_front else self.harness.flat
        mine: list[Tracked] = []
        try:
            while not stop.is_set():
                live = [t for t in mine if t.created and t.id and not t.deleted]
                if len(live) < LIVE_KEYS_PER_THREAD and (not live or rng.random() < 0.4):
                    self._create(api, lock, on_front, mine)
                    continue
                key = rng.choice(live)
                action = rng.random()
                if action < 0.4:
                    self._update(api, key, {"name": self.name(f"t{number}r")})
                elif action < 0.8:
                    self._update(api, key, {"enabled": not key.enabled})
                else:
                    self._delete(api, key)
        except httpx.TransportError:
            return  # the server is gone: the change in flight stays a "maybe"

    def _answered(self, what: str, answer: httpx.Response) -> bool:
        """True for an acknowledged change; anything but 2xx, 423 or >= 500 is unexpected."""
        if 200 <= answer.status_code < 300:
            self.acked()
            return True
        if answer.status_code != 423 and answer.status_code < 500:
            self.unexpected.append(f"{what} answered {describe(answer)}")
        return False

    def _create(self, api: Api, lock: int, on_front: bool, mine: list[Tracked]) -> None:
        name = self.name("t")
        body = code_body(name, self.codes.take()) if on_front else fob_body(name, self.user)
        key = Tracked(name, lock, body, name=name, maybe={"created": True})
        mine.append(key)
        with self._lock:
            self.tracked.append(key)
        answer = api.put(f"/smartlock/{lock}/auth", json=body)
        if answer.status_code >= 500:
            return  # may or may not exist
        key.maybe = {}
        key.created = self._answered(f"creating {name!r}", answer)
        if key.created:
            listing = api.get(f"/smartlock/{lock}/auth")
            found = [k for k in listing.json() if k["name"] == name]
            if found:
                key.id = found[0]["id"]

    def _update(self, api: Api, key: Tracked, changes: dict[str, Any]) -> None:
        key.maybe = dict(changes)
        answer = api.post(f"/smartlock/{key.lock}/auth/{key.id}", json=changes)
        if answer.status_code >= 500:
            return
        key.maybe = {}
        if self._answered(f"updating {key.id} with {changes}", answer):
            key.name = changes.get("name", key.name)
            key.enabled = changes.get("enabled", key.enabled)

    def _delete(self, api: Api, key: Tracked) -> None:
        key.maybe = {"deleted": True}
        answer = api.delete(f"/smartlock/{key.lock}/auth/{key.id}")
        if answer.status_code >= 500:
            return
        key.maybe = {}
        key.deleted = self._answered(f"deleting {key.id}", answer)


def set_latency(harness: Harness, lock: int, latency_ms: int) -> None:
    answer = harness.api.post(f"/emulator/smartlock/{lock}", json={"latencyMs": latency_ms})
    assert answer.status_code == 200, describe(answer)


def backlog(harness: Harness) -> int:
    """Keys whose change the locks have not confirmed yet."""
    return sum(
        1
        for lock in harness.locks
        for key in keys(harness, lock)
        if key.get("syncState") in ("pending", "deleting")
    )


def blow(storm: Storm, rng: random.Random) -> None:
    """Run the storm until enough writes are acknowledged, then SIGKILL the server in it."""
    harness = storm.harness
    for lock in harness.locks:
        set_latency(harness, lock, STORM_LATENCY_MS)
    stop = threading.Event()
    clients = [Api(harness.url, harness.token, harness.recorder) for _ in range(STORM_THREADS)]
    threads = [
        threading.Thread(target=storm.worker, args=(n, clients[n], stop), daemon=True)
        for n in range(STORM_THREADS)
    ]
    start_acks = storm.acks
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while storm.acks - start_acks < ACKS_BEFORE_KILL and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.3))
    harness.kill()
    stop.set()
    for thread in threads:
        thread.join(30)
    for client in clients:
        client.close()
    assert storm.acks - start_acks >= ACKS_BEFORE_KILL, (
        f"only {storm.acks - start_acks} writes were acknowledged in 30 s"
    )


def verify(storm: Storm) -> list[str]:
    """Every acknowledged change is on the server, and (the invariant) on the lock."""
    harness = storm.harness
    for lock in harness.locks:
        set_latency(harness, lock, 0)
    problems = settle(harness, deadline=BACKLOG_SECONDS)
    shown = {k["id"]: k for lock in harness.locks for k in keys(harness, lock)}
    by_name = {k["name"]: k for k in shown.values()}
    for key in storm.tracked:
        now = shown.get(key.id) if key.id else by_name.get(key.created_name)
        label = f"key {key.id or key.created_name!r}"
        if not key.created:
            if now is None or key.maybe.get("created"):
                continue  # never acknowledged: there or not
            problems.append(f"{label} was refused, but the server shows it")
            continue
        if key.deleted:
            if now is not None:
                problems.append(
                    f"{label} was deleted (acknowledged), but is shown {now.get('syncState')}"
                )
            continue
        if now is None:
            if not key.maybe.get("deleted"):
                problems.append(f"{label} ({key.name!r}) was created (acknowledged) and is gone")
            continue
        for name, value in (("name", key.name), ("enabled", key.enabled)):
            allowed = {value, key.maybe.get(name, value)}
            if now.get(name) not in allowed:
                problems.append(
                    f"{label}: {name} is {now.get(name)!r}, acknowledged {value!r}"
                    + (f" (or {key.maybe[name]!r}, unanswered)" if name in key.maybe else "")
                )
    gone = [k.id for k in storm.tracked if k.deleted and k.id]
    codes = [k.code for k in storm.tracked if k.code]
    problems += check_invariant(harness, codes=codes, deleted=gone)
    return problems


def test_sigkill_in_a_write_storm_loses_no_acknowledged_change(harness: Harness) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    storm = Storm(harness, create_user(harness), Codes(), seed)
    for kill in range(KILLS):
        blow(storm, rng)
        server_errors = harness.recorder.take(transport=False)
        harness.recorder.take()  # the kill's broken connections are expected
        harness.start()
        waiting = backlog(harness)
        problems = server_errors + storm.unexpected + verify(storm) + harness.recorder.take()
        assert not problems, (
            f"after SIGKILL {kill + 1} of {KILLS} (seed {seed}; {storm.acks} writes acknowledged, "
            f"{waiting} keys waiting for their lock at the restart):\n"
            + "\n".join(dict.fromkeys(problems))
        )
        print(f"SIGKILL {kill + 1}: {waiting} keys were waiting for their lock at the restart")
