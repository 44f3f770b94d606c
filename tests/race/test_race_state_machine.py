"""A stateful property test: Hypothesis drives one live server through creates, updates,
disables, deletes, locks going offline and online, and server restarts, one request at a time.

After every step the server shows exactly what the model says was acknowledged, and once the
online locks settle, each of them holds exactly what the server shows (``check_invariant``);
an offline lock's keys may wait (pending, deleting), and are checked once it is back.

SQLite only, to keep the run short; KEYHOUSE_RACE_STATEFUL_STORES=sqlite,postgresql runs it on
PostgreSQL too.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from racekit import (
    APP_KEY,
    WINDOW_FIELDS,
    Codes,
    Harness,
    check_invariant,
    code_body,
    create_user,
    delete_keys,
    describe,
    key_named,
    keys,
    open_store,
    running,
    set_online,
    settle,
)

STATEFUL_STORES = tuple(os.environ.get("KEYHOUSE_RACE_STATEFUL_STORES", "sqlite").split(","))
EXAMPLES = int(os.environ.get("KEYHOUSE_RACE_EXAMPLES", "10"))
STEPS = 15
RESTARTS_PER_EXAMPLE = 1  # a restart costs ~2 s: at most this many per example

# Time windows a key may get: none, a weekly one, a date range (always valid).
WINDOWS: tuple[dict[str, Any], ...] = (
    {},
    {"allowedWeekDays": 124, "allowedFromTime": 480, "allowedUntilTime": 1080},
    {"allowedFromDate": "2030-01-01T00:00:00.000Z", "allowedUntilDate": "2030-02-01T00:00:00.000Z"},
)
PICK = st.integers(min_value=0, max_value=10_000)  # an index into the model's keys


@dataclass
class ModelKey:
    """A key as the acknowledged requests made it."""

    id: str
    lock: int
    type: int
    name: str
    code: int | None = None
    enabled: bool = True
    window: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False

    def expected(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"name": self.name, "enabled": self.enabled, "code": self.code}
        fields.update({name: self.window.get(name) for name in WINDOW_FIELDS})
        return fields


@pytest.fixture(params=STATEFUL_STORES)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with open_store(request.param, tmp_path) as store, running(store) as live:
        yield live


@pytest.mark.timeout(600)
def test_keys_and_locks_agree_whatever_happens(harness: Harness) -> None:
    user = create_user(harness)
    codes = Codes()
    names = itertools.count()

    class KeysAndLocks(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.model: dict[str, ModelKey] = {}
            self.offline: set[int] = set()
            self.restarts = 0
            self.touched_codes: set[int] = set()
            self._reset()

        # --- the start of each example: both locks online, no keys -----------------------

        def _reset(self) -> None:
            for lock in harness.locks:
                set_online(harness, lock, True)
            ids = [
                k["id"]
                for lock in harness.locks
                for k in keys(harness, lock)
                if k.get("syncState") != "deleting"
            ]
            problems = delete_keys(harness, ids)
            problems += settle(harness, deadline=10)
            left = [k for lock in harness.locks for k in keys(harness, lock)]
            if left:
                problems.append(f"after deleting every key the server still shows {left}")
            problems += check_invariant(harness)
            problems += harness.recorder.take()
            assert not problems, "resetting for a new example:\n" + "\n".join(problems)

        # --- helpers ----------------------------------------------------------------------

        def _live(self) -> list[ModelKey]:
            return [k for k in self.model.values() if not k.deleted]

        def _deleted(self) -> list[ModelKey]:
            return [k for k in self.model.values() if k.deleted]

        def _name(self, prefix: str) -> str:
            return f"{prefix}{next(names)}"

        def _path(self, key: ModelKey) -> str:
            return f"/smartlock/{key.lock}/auth/{key.id}"

        def _create(self, lock: int, body: dict[str, Any], window: dict[str, Any]) -> None:
            answer = harness.api.put(f"/smartlock/{lock}/auth", json={**body, **window})
            assert answer.status_code == 204, f"creating {body}: {describe(answer)}"
            listed = key_named(harness, lock, body["name"])
            assert listed is not None, f"created {body['name']!r} (204), but it is not listed"
            self.model[listed["id"]] = ModelKey(
                listed["id"],
                lock,
                body["type"],
                body["name"],
                code=body.get("code"),
                window=dict(window),
            )
            if body.get("code"):
                self.touched_codes.add(body["code"])

        def _update(self, key: ModelKey, changes: dict[str, Any]) -> None:
            answer = harness.api.post(self._path(key), json=changes)
            assert answer.status_code == 204, (
                f"updating {key.id} with {changes}: {describe(answer)}"
            )
            if key.code:
                self.touched_codes.add(key.code)

        def _delete(self, key: ModelKey) -> None:
            answer = harness.api.delete(self._path(key))
            assert answer.status_code == 204, f"deleting {key.id}: {describe(answer)}"
            key.deleted = True
            if key.code:
                self.touched_codes.add(key.code)

        # --- rules --------------------------------------------------------------------------

        @rule(window=st.sampled_from(WINDOWS))
        def create_keypad_code(self, window: dict[str, Any]) -> None:
            self._create(harness.front, code_body(self._name("c"), codes.take()), window)

        @rule(on_front=st.booleans(), window=st.sampled_from(WINDOWS))
        def create_app_key(self, on_front: bool, window: dict[str, Any]) -> None:
            lock = harness.front if on_front else harness.flat
            body = {
                "name": self._name("a"),
                "type": APP_KEY,
                "accountUserId": user,
                "remoteAllowed": False,
            }
            self._create(lock, body, window)

        def _freed_codes(self) -> list[int]:
            """Codes of deleted keys that no live key holds: free for a new key at once."""
            held = {k.code for k in self._live()}
            return sorted({k.code for k in self._deleted() if k.code and k.code not in held})

        @precondition(lambda self: self._freed_codes())
        @rule(pick=PICK)
        def create_with_a_freed_code(self, pick: int) -> None:
            code = self._freed_codes()[pick % len(self._freed_codes())]
            self._create(harness.front, code_body(self._name("f"), code), {})

        @precondition(lambda self: any(k.code for k in self._live()))
        @rule(pick=PICK, freed=st.booleans())
        def change_code(self, pick: int, freed: bool) -> None:
            key = [k for k in self._live() if k.code][
                pick % len([k for k in self._live() if k.code])
            ]
            code = self._freed_codes()[0] if freed and self._freed_codes() else codes.take()
            self._update(key, {"code": code})
            key.code = code

        @precondition(lambda self: self._live())
        @rule(pick=PICK)
        def rename(self, pick: int) -> None:
            key = self._live()[pick % len(self._live())]
            name = self._name("r")
            self._update(key, {"name": name})
            key.name = name

        @precondition(lambda self: self._live())
        @rule(pick=PICK, window=st.sampled_from(WINDOWS))
        def set_window(self, pick: int, window: dict[str, Any]) -> None:
            key = self._live()[pick % len(self._live())]
            self._update(key, {name: window.get(name) for name in WINDOW_FIELDS})
            key.window = dict(window)

        @precondition(lambda self: self._live())
        @rule(pick=PICK, enabled=st.booleans())
        def switch(self, pick: int, enabled: bool) -> None:
            key = self._live()[pick % len(self._live())]
            self._update(key, {"enabled": enabled})
            key.enabled = enabled

        @precondition(lambda self: self._live())
        @rule(pick=PICK)
        def delete(self, pick: int) -> None:
            self._delete(self._live()[pick % len(self._live())])

        @precondition(lambda self: any(k.code for k in self._live()))
        @rule(pick=PICK)
        def delete_then_reuse_its_code(self, pick: int) -> None:
            """Delete a keypad code and give its code to a new key straight away (the removal
            need not be confirmed: an acknowledged delete frees the code)."""
            with_code = [k for k in self._live() if k.code]
            key = with_code[pick % len(with_code)]
            self._delete(key)
            assert key.code is not None
            self._create(harness.front, code_body(self._name("f"), key.code), {})

        @precondition(lambda self: self._deleted())
        @rule(pick=PICK, again=st.sampled_from(["rename", "delete"]))
        def touch_a_deleted_key(self, pick: int, again: str) -> None:
            """A deleted key stays deleted: a rename is refused, a second DELETE changes
            nothing (204 while the lock has not confirmed, 404 once it is gone)."""
            key = self._deleted()[pick % len(self._deleted())]
            if again == "rename":
                answer = harness.api.post(self._path(key), json={"name": self._name("z")})
                assert 400 <= answer.status_code < 500, (
                    f"renaming deleted key {key.id} answered {describe(answer)}"
                )
            else:
                answer = harness.api.delete(self._path(key))
                assert answer.status_code in (204, 404), (
                    f"deleting deleted key {key.id} again answered {describe(answer)}"
                )

        @rule(on_front=st.booleans(), online=st.booleans())
        def lock_online(self, on_front: bool, online: bool) -> None:
            lock = harness.front if on_front else harness.flat
            set_online(harness, lock, online)
            if online:
                self.offline.discard(lock)
            else:
                self.offline.add(lock)

        @precondition(lambda self: self.restarts < RESTARTS_PER_EXAMPLE)
        @rule()
        def restart_server(self) -> None:
            harness.restart()
            self.restarts += 1

        # --- after every step -------------------------------------------------------------

        @invariant()
        def server_and_locks_agree(self) -> None:
            self._check()

        def _check(self) -> None:
            online = [lock for lock in harness.locks if lock not in self.offline]
            offline = [lock for lock in harness.locks if lock in self.offline]
            problems = settle(harness, online)
            problems += self._server_matches_model()
            codes_now = sorted(self.touched_codes) if harness.front in online else []
            gone = [k.id for k in self._deleted() if k.lock in online]
            problems += check_invariant(harness, locks=online, codes=codes_now, deleted=gone)
            if offline:
                waiting = [k.id for k in self._deleted() if k.lock in offline]
                problems += check_invariant(harness, locks=offline, deleted=waiting, settled=False)
            problems += harness.recorder.take()
            assert not problems, "\n".join(dict.fromkeys(problems))
            if codes_now:
                self.touched_codes.clear()

        def _server_matches_model(self) -> list[str]:
            problems: list[str] = []
            for lock in harness.locks:
                shown = {k["id"]: k for k in keys(harness, lock)}
                for key in (k for k in self.model.values() if k.lock == lock):
                    now = shown.pop(key.id, None)
                    if key.deleted:
                        if now is not None and not (
                            lock in self.offline and now.get("syncState") == "deleting"
                        ):
                            problems.append(
                                f"deleted key {key.id} is shown {now.get('syncState')}"
                                + (" (its lock is online)" if lock not in self.offline else "")
                            )
                        continue
                    if now is None:
                        problems.append(f"key {key.id} ({key.name!r}) is gone, never deleted")
                        continue
                    for name, value in key.expected().items():
                        if now.get(name) != value:
                            problems.append(
                                f"key {key.id}: the server shows {name} {now.get(name)!r}, "
                                f"the acknowledged value is {value!r}"
                            )
                for extra in shown.values():
                    problems.append(f"the server shows a key nobody created: {extra}")
            return problems

        def teardown(self) -> None:
            """The end of an example: both locks back online, everything settles."""
            for lock in list(self.offline):
                set_online(harness, lock, True)
            self.offline.clear()
            self.touched_codes |= {k.code for k in self.model.values() if k.code}
            self._check()

    run_state_machine_as_test(
        KeysAndLocks,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            # A failing run against a live server is not shrunk: that would take minutes;
            # Hypothesis still prints the steps that broke it.
            phases=(Phase.explicit, Phase.reuse, Phase.generate),
            suppress_health_check=list(HealthCheck),
        ),
    )
