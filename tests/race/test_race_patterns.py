"""Two (or more) writes at the same moment, many rounds, on SQLite and on PostgreSQL: after
each round settles, the raced lock holds exactly what the server shows (``check_invariant``),
and no request answered >= 500.

Each test runs its own `keyhouse serve` on a fresh store, with periodic repair off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from racekit import (
    MAX_CODES,
    MAX_KEYS,
    ROUNDS,
    STORES,
    Api,
    Call,
    Codes,
    Harness,
    Result,
    Rounds,
    at_once,
    check_invariant,
    code_body,
    codes_in_log,
    create_key,
    create_user,
    delete_keys,
    describe,
    fob_body,
    key_named,
    keys,
    ok,
    open_store,
    running,
    set_online,
    settle,
    status,
)

pytestmark = pytest.mark.timeout(400)

CONCURRENT_CREATES = 50
CLEAN_UP_AT = 40  # delete the rounds' leftover keys once a lock has this many
ROOM = 5  # the limit patterns start this many keys short of the limit
FILLERS = 4  # concurrent creates while filling a lock up to the limit pattern's start


@pytest.fixture(params=STORES)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with open_store(request.param, tmp_path) as store, running(store) as live:
        yield live


def unexpected(what: str, result: Result, allowed: tuple[int, ...]) -> list[str]:
    """A problem unless the answer's status is one of ``allowed`` (>= 500 is recorded anyway)."""
    if isinstance(result, httpx.Response) and (
        result.status_code in allowed or result.status_code >= 500
    ):
        return []
    return [f"{what} answered {describe(result)} (expected one of {allowed})"]


def clean_up(harness: Harness, lock: int, rounds: Rounds) -> None:
    """Delete the rounds' leftovers on ``lock`` once there are many; they must go for good."""
    live = [k for k in keys(harness, lock) if k.get("syncState") != "deleting"]
    if len(live) < CLEAN_UP_AT:
        return
    ids = [k["id"] for k in live]
    problems = delete_keys(harness, ids)
    problems += settle(harness, [lock], ignore=rounds.stuck)
    codes = [k["code"] for k in live if k.get("code")]
    problems += check_invariant(harness, locks=[lock], codes=codes, deleted=ids)
    problems += harness.recorder.take()
    rounds.between(f"cleaning up after round {rounds.played - 1}", problems)


Play = Callable[[int, Rounds], list[str]]


def race(harness: Harness, name: str, play: Play) -> Rounds:
    """Play ``ROUNDS`` rounds of ``play(round) -> problems``; each round's answers >= 500
    count as problems of that round."""
    rounds = Rounds(name)
    harness.recorder.take()
    for round_ in range(ROUNDS):
        problems = play(round_, rounds)
        problems += harness.recorder.take()
        if not rounds.record(round_, problems):
            break
    return rounds


# --- a key and its changes, at once -----------------------------------------------------------


def rename(lock: int, key_id: str, name: str) -> Call:
    return lambda api: api.post(f"/smartlock/{lock}/auth/{key_id}", json={"name": name})


def set_enabled(lock: int, key_id: str, enabled: bool) -> Call:
    return lambda api: api.post(f"/smartlock/{lock}/auth/{key_id}", json={"enabled": enabled})


def remove(lock: int, key_id: str) -> Call:
    return lambda api: api.delete(f"/smartlock/{lock}/auth/{key_id}")


def create(lock: int, body: dict[str, Any]) -> Call:
    return lambda api: api.put(f"/smartlock/{lock}/auth", json=body)


def fresh_code_key(harness: Harness, codes: Codes, name: str, rounds: Rounds) -> dict[str, Any]:
    key = create_key(harness, harness.front, code_body(name, codes.take()))
    if key.get("syncState") != "applied":  # the race starts from a key the lock holds
        stuck = settle(harness, [harness.front], ignore=rounds.stuck)
        assert not stuck, f"the key to race did not settle before the race: {stuck}"
        key = key_named(harness, harness.front, name) or key
    return key


def test_delete_races_a_rename(harness: Harness) -> None:
    """DELETE ∥ rename: the key is gone from the server and the lock, its code opens nothing."""
    codes = Codes()
    lock = harness.front
    used: list[int] = []

    def play(round_: int, rounds: Rounds) -> list[str]:
        clean_up(harness, lock, rounds)
        key = fresh_code_key(harness, codes, f"dr{round_}", rounds)
        used.append(key["code"])
        deleted, renamed = at_once(
            harness, [remove(lock, key["id"]), rename(lock, key["id"], f"dr{round_}-renamed")]
        )
        problems = unexpected("DELETE", deleted, (204, 423))
        problems += unexpected("the rename", renamed, (204, 404, 423))
        problems += settle(harness, [lock], ignore=rounds.stuck)
        gone = [key["id"]] if ok(deleted) else []
        problems += check_invariant(harness, locks=[lock], codes=[key["code"]], deleted=gone)
        return problems

    rounds = race(harness, "DELETE ∥ rename", play)
    rounds.between("after the rounds", codes_in_log(harness, used))
    rounds.verdict(harness)


def test_disable_races_a_rename(harness: Harness) -> None:
    """{"enabled": false} ∥ rename: the lock holds the key disabled and renamed; its code
    opens nothing."""
    codes = Codes()
    lock = harness.front
    used: list[int] = []

    def play(round_: int, rounds: Rounds) -> list[str]:
        clean_up(harness, lock, rounds)
        key = fresh_code_key(harness, codes, f"xr{round_}", rounds)
        used.append(key["code"])
        new_name = f"xr{round_}-renamed"
        disabled, renamed = at_once(
            harness, [set_enabled(lock, key["id"], False), rename(lock, key["id"], new_name)]
        )
        problems = unexpected("the disable", disabled, (204, 423))
        problems += unexpected("the rename", renamed, (204, 423))
        problems += settle(harness, [lock], ignore=rounds.stuck)
        problems += acknowledged(
            harness, key, {"enabled": False} if ok(disabled) else {}, renamed, new_name
        )
        problems += check_invariant(harness, locks=[lock], codes=[key["code"]])
        return problems

    rounds = race(harness, "disable ∥ rename", play)
    rounds.between("after the rounds", codes_in_log(harness, used))
    rounds.verdict(harness)


def acknowledged(
    harness: Harness,
    key: dict[str, Any],
    expected: dict[str, Any],
    renamed: Result,
    new_name: str,
) -> list[str]:
    """Every acknowledged change of ``key`` is what the server shows now."""
    if ok(renamed):
        expected = {**expected, "name": new_name}
    now = next((k for k in keys(harness, key["smartlockId"]) if k["id"] == key["id"]), None)
    if now is None:
        return [f"key {key['id']} ({key['name']!r}) is gone, though nobody deleted it"]
    return [
        f"key {key['id']} ({key['name']!r}): {field} is {now.get(field)!r}, but a change to "
        f"{value!r} was acknowledged"
        for field, value in expected.items()
        if now.get(field) != value
    ]


def test_enable_disable_and_rename_race(harness: Harness) -> None:
    """enable ∥ disable ∥ rename, from enabled and from disabled: whichever switch wins, the lock
    agrees with the server, and a disabled code opens nothing."""
    codes = Codes()
    lock = harness.front
    used: list[int] = []

    def play(round_: int, rounds: Rounds) -> list[str]:
        clean_up(harness, lock, rounds)
        key = fresh_code_key(harness, codes, f"ed{round_}", rounds)
        used.append(key["code"])
        problems: list[str] = []
        if round_ % 2:
            answer = harness.api.post(
                f"/smartlock/{lock}/auth/{key['id']}", json={"enabled": False}
            )
            problems += unexpected("the disable before the race", answer, (204,))
            problems += settle(harness, [lock], ignore=rounds.stuck)
        new_name = f"ed{round_}-renamed"
        enabled, disabled, renamed = at_once(
            harness,
            [
                set_enabled(lock, key["id"], True),
                set_enabled(lock, key["id"], False),
                rename(lock, key["id"], new_name),
            ],
        )
        problems += unexpected("the enable", enabled, (204, 423))
        problems += unexpected("the disable", disabled, (204, 423))
        problems += unexpected("the rename", renamed, (204, 423))
        problems += settle(harness, [lock], ignore=rounds.stuck)
        problems += acknowledged(harness, key, {}, renamed, new_name)
        problems += check_invariant(harness, locks=[lock], codes=[key["code"]])
        return problems

    rounds = race(harness, "enable ∥ disable ∥ rename", play)
    rounds.between("after the rounds", codes_in_log(harness, used))
    rounds.verdict(harness)


def test_delete_races_a_create_with_the_same_code(harness: Harness) -> None:
    """DELETE of a keypad code ∥ a new key with that code: the old key goes; the new one is
    refused (409) or held by the lock and opens the door. Once the DELETE is acknowledged the
    code is free at once, even while the lock has not confirmed the removal: every other round
    races with the lock offline, and a create refused in the race is sent again."""
    codes = Codes()
    lock = harness.front
    used: list[int] = []

    def play(round_: int, rounds: Rounds) -> list[str]:
        clean_up(harness, lock, rounds)
        old = fresh_code_key(harness, codes, f"dc{round_}", rounds)
        code = old["code"]
        used.append(code)
        offline = round_ % 2 == 1
        if offline:
            set_online(harness, lock, False)
        new_name = f"dc{round_}-new"

        create_it = create(lock, code_body(new_name, code))
        deleted, created = at_once(harness, [remove(lock, old["id"]), create_it])
        problems = unexpected("DELETE", deleted, (204, 423))
        problems += unexpected("the create", created, (204, 409, 423))
        if ok(deleted) and not ok(created):
            again = create_it(harness.api)
            if not ok(again):
                where = "offline" if offline else "online"
                problems.append(
                    f"code {code} of a deleted key (DELETE answered {status(deleted)}, lock "
                    f"{where}) is refused for a new key: {describe(again)}"
                )
            created = again
        if offline:
            set_online(harness, lock, True)
        problems += settle(harness, [lock], ignore=rounds.stuck)
        new = key_named(harness, lock, new_name)
        if ok(created) and new is None:
            problems.append(f"the create of {new_name!r} answered 204, but it is not listed")
        if not ok(created) and new is not None:
            problems.append(
                f"the create of {new_name!r} answered {status(created)}, but the server shows it"
            )
        gone = [old["id"]] if ok(deleted) else []
        problems += check_invariant(harness, locks=[lock], codes=[code], deleted=gone)
        return problems

    rounds = race(harness, "DELETE ∥ create with the same code", play)
    rounds.between("after the rounds", codes_in_log(harness, used))
    rounds.verdict(harness)


# --- the limits ---------------------------------------------------------------------------------


def fill(
    harness: Harness, lock: int, count: int, body: Callable[[int], dict[str, Any]]
) -> set[str]:
    """Create ``count`` keys, a few at a time (the limits are far); their ids."""
    clients = [Api(harness.url, harness.token, harness.recorder) for _ in range(FILLERS)]

    def work(worker: int) -> list[str]:
        failed = []
        for index in range(worker, count, FILLERS):
            answer = clients[worker].put(f"/smartlock/{lock}/auth", json=body(index))
            if answer.status_code != 204:
                failed.append(f"key {index}: {describe(answer)}")
        return failed

    try:
        with ThreadPoolExecutor(FILLERS) as pool:
            failed = [line for lines in pool.map(work, range(FILLERS)) for line in lines]
    finally:
        for client in clients:
            client.close()
    assert not failed, f"filling lock {lock} ({FILLERS} creates at a time): {failed[:3]}"
    stuck = settle(harness, [lock], deadline=20)
    assert not stuck, stuck
    shown = keys(harness, lock)
    assert len(shown) == count, f"filled lock {lock} with {count} keys, it shows {len(shown)}"
    return {k["id"] for k in shown}


@dataclass
class AtTheLimit:
    """A lock filled to ``ROOM`` keys short of a limit."""

    what: str
    lock: int
    baseline: set[str]


def judge(
    harness: Harness,
    limit: AtTheLimit,
    bodies: list[dict[str, Any]],
    results: list[Result],
    rounds: Rounds,
) -> list[str]:
    """After ``bodies`` were created at once on ``limit.lock``: ``ROOM`` accepted, the rest
    refused, the invariant holds; then back to the baseline keys."""
    lock = limit.lock
    problems: list[str] = []
    for body, result in zip(bodies, results, strict=True):
        problems += unexpected(f"creating {body['name']!r}", result, (204, 409, 423))
    accepted = [body for body, result in zip(bodies, results, strict=True) if ok(result)]
    busy = [r for r in results if isinstance(r, httpx.Response) and r.status_code == 423]
    if len(accepted) > ROOM:
        problems.append(
            f"{limit.what}: {len(accepted)} of {len(bodies)} creates answered 204 with room for "
            f"{ROOM}"
        )
    elif len(accepted) < ROOM and not busy:
        statuses = sorted({str(status(r)) for r in results})
        problems.append(
            f"{limit.what}: only {len(accepted)} of {len(bodies)} creates answered 204 with room "
            f"for {ROOM} (answers: {', '.join(statuses)})"
        )
    problems += settle(harness, [lock], ignore=rounds.stuck)
    listed = keys(harness, lock)
    shown = {k["name"] for k in listed}
    for body, result in zip(bodies, results, strict=True):
        if ok(result) and body["name"] not in shown:
            problems.append(f"{body['name']!r} answered 204 but the server does not show it")
        if not ok(result) and status(result) in (409, 423) and body["name"] in shown:
            problems.append(f"{body['name']!r} answered {status(result)} but the server shows it")
    # The comparison with the lock's table covers every key; the keypad confirms a few.
    refused_codes = [b["code"] for b in bodies if b not in accepted and "code" in b][:1]
    accepted_codes = [b["code"] for b in accepted if "code" in b][:2]
    problems += check_invariant(harness, locks=[lock], codes=accepted_codes + refused_codes)
    # Back to the baseline (a wrong count shows in the next round's accepted creates).
    extra = [
        k["id"]
        for k in listed
        if k["id"] not in limit.baseline and k.get("syncState") != "deleting"
    ]
    problems += delete_keys(harness, extra)
    problems += settle(harness, [lock], ignore=rounds.stuck)
    return problems


def test_concurrent_creates_at_the_limits(harness: Harness) -> None:
    """Flat 2 holds 195 keys, the Front Door's keypad 95 codes. Each round, 50 creates on each
    lock, all 100 released at once: on each, 5 are accepted and the rest refused with 409; at
    most 200 keys and 100 codes on the server and on the locks; the accepted codes open the
    door."""
    user = create_user(harness)
    codes = Codes()
    with ThreadPoolExecutor(2) as pool:
        filled_keys = pool.submit(
            fill, harness, harness.flat, MAX_KEYS - ROOM, lambda i: fob_body(f"fill{i}", user)
        )
        filled_codes = pool.submit(
            fill,
            harness,
            harness.front,
            MAX_CODES - ROOM,
            lambda i: code_body(f"fill{i}", codes.take()),
        )
        key_limit = AtTheLimit(
            f"Flat 2 at {MAX_KEYS - ROOM} of {MAX_KEYS} keys", harness.flat, filled_keys.result()
        )
        code_limit = AtTheLimit(
            f"the Front Door's keypad at {MAX_CODES - ROOM} of {MAX_CODES} codes",
            harness.front,
            filled_codes.result(),
        )
    used: list[int] = []

    def play(round_: int, rounds: Rounds) -> list[str]:
        fobs = [fob_body(f"k{round_}-{i}", user) for i in range(CONCURRENT_CREATES)]
        pins = [code_body(f"c{round_}-{i}", codes.take()) for i in range(CONCURRENT_CREATES)]
        used.extend(b["code"] for b in pins)
        results = at_once(
            harness,
            [create(harness.flat, b) for b in fobs] + [create(harness.front, b) for b in pins],
        )
        problems = judge(harness, key_limit, fobs, results[: len(fobs)], rounds)
        problems += judge(harness, code_limit, pins, results[len(fobs) :], rounds)
        return problems

    name = (
        f"{CONCURRENT_CREATES} creates at {MAX_KEYS - ROOM} of {MAX_KEYS} keys ∥ "
        f"{CONCURRENT_CREATES} keypad codes at {MAX_CODES - ROOM} of {MAX_CODES}"
    )
    rounds = race(harness, name, play)
    rounds.between("after the rounds", codes_in_log(harness, used))
    rounds.verdict(harness)
