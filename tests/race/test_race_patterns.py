"""Two (or more) writes at the same moment, many rounds, on SQLite and on PostgreSQL: after
each round settles, the lock holds exactly what the server shows (``check_invariant``), and no
request answered >= 500.

Each test runs its own `keyhouse serve` on a fresh store, with periodic repair off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from racekit import (
    MAX_CODES,
    MAX_KEYS,
    ROUNDS,
    STORES,
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
    rounds.record(-1, problems)


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
    # the race starts from a key the lock holds
    stuck = settle(harness, [harness.front], ignore=rounds.stuck)
    assert not stuck, f"the key to race did not settle before the race: {stuck}"
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
        problems += settle(harness, ignore=rounds.stuck)
        problems += check_invariant(
            harness, codes=[key["code"]], deleted=[key["id"]] if ok(deleted) else []
        )
        return problems

    rounds = race(harness, "DELETE ∥ rename", play)
    rounds.record(ROUNDS, codes_in_log(harness, used))
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
        problems += settle(harness, ignore=rounds.stuck)
        problems += acknowledged(
            harness, key, {"enabled": False} if ok(disabled) else {}, renamed, new_name
        )
        problems += check_invariant(harness, codes=[key["code"]])
        return problems

    rounds = race(harness, "disable ∥ rename", play)
    rounds.record(ROUNDS, codes_in_log(harness, used))
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
        problems += settle(harness, ignore=rounds.stuck)
        problems += acknowledged(harness, key, {}, renamed, new_name)
        problems += check_invariant(harness, codes=[key["code"]])
        return problems

    rounds = race(harness, "enable ∥ disable ∥ rename", play)
    rounds.record(ROUNDS, codes_in_log(harness, used))
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
        problems += settle(harness, ignore=rounds.stuck)
        new = key_named(harness, lock, new_name)
        if ok(created) and new is None:
            problems.append(f"the create of {new_name!r} answered 204, but it is not listed")
        if not ok(created) and new is not None:
            problems.append(
                f"the create of {new_name!r} answered {status(created)}, but the server shows it"
            )
        problems += check_invariant(
            harness, codes=[code], deleted=[old["id"]] if ok(deleted) else []
        )
        return problems

    rounds = race(harness, "DELETE ∥ create with the same code", play)
    rounds.record(ROUNDS, codes_in_log(harness, used))
    rounds.verdict(harness)


# --- the limits ---------------------------------------------------------------------------------


def fill(
    harness: Harness, lock: int, count: int, body: Callable[[int], dict[str, Any]]
) -> set[str]:
    """Create ``count`` keys, a few at a time (the limits are far); their ids."""
    clients = harness.clients(FILLERS)

    def work(worker: int) -> list[str]:
        failed = []
        for index in range(worker, count, FILLERS):
            answer = clients[worker].put(f"/smartlock/{lock}/auth", json=body(index))
            if answer.status_code != 204:
                failed.append(f"key {index}: {describe(answer)}")
        return failed

    with ThreadPoolExecutor(FILLERS) as pool:
        failed = [line for lines in pool.map(work, range(FILLERS)) for line in lines]
    assert not failed, f"filling lock {lock} ({FILLERS} creates at a time): {failed[:3]}"
    stuck = settle(harness, [lock], deadline=20)
    assert not stuck, stuck
    shown = keys(harness, lock)
    assert len(shown) == count, f"filled lock {lock} with {count} keys, it shows {len(shown)}"
    return {k["id"] for k in shown}


def limit_round(
    harness: Harness,
    lock: int,
    baseline: set[str],
    bodies: list[dict[str, Any]],
    rounds: Rounds,
) -> list[str]:
    """All ``bodies`` created at once on a lock ``ROOM`` short of a limit; then back to the
    ``baseline`` keys."""
    results = at_once(harness, [create(lock, body) for body in bodies])
    problems: list[str] = []
    for body, result in zip(bodies, results, strict=True):
        problems += unexpected(f"creating {body['name']!r}", result, (204, 409, 423))
    accepted = [body for body, result in zip(bodies, results, strict=True) if ok(result)]
    busy = [r for r in results if isinstance(r, httpx.Response) and r.status_code == 423]
    if len(accepted) > ROOM:
        problems.append(
            f"{len(accepted)} of {len(bodies)} creates answered 204 on a lock with room for {ROOM}"
        )
    elif len(accepted) < ROOM and not busy:
        statuses = sorted({str(status(r)) for r in results})
        problems.append(
            f"only {len(accepted)} of {len(bodies)} creates answered 204 on a lock with room for "
            f"{ROOM} (answers: {', '.join(statuses)})"
        )
    problems += settle(harness, [lock], ignore=rounds.stuck)
    shown = {k["name"]: k for k in keys(harness, lock)}
    for body, result in zip(bodies, results, strict=True):
        if ok(result) and body["name"] not in shown:
            problems.append(f"{body['name']!r} answered 204 but the server does not show it")
        if not ok(result) and status(result) in (409, 423) and body["name"] in shown:
            problems.append(f"{body['name']!r} answered {status(result)} but the server shows it")
    # The comparison with the lock's table covers every key; the keypad confirms a few.
    refused_codes = [b["code"] for b in bodies if b not in accepted and "code" in b][:1]
    accepted_codes = [b["code"] for b in accepted if "code" in b][:2]
    problems += check_invariant(harness, locks=[lock], codes=accepted_codes + refused_codes)
    extra = [
        k["id"]
        for k in keys(harness, lock)
        if k["id"] not in baseline and k.get("syncState") != "deleting"
    ]
    problems += delete_keys(harness, extra)
    problems += settle(harness, [lock], ignore=rounds.stuck)
    left = len(keys(harness, lock))
    if left != len(baseline) and not rounds.stuck:
        problems.append(f"after deleting the round's keys lock {lock} shows {left} keys")
    return problems


def test_concurrent_creates_at_195_of_200_keys(harness: Harness) -> None:
    """50 creates at once on a lock holding 195 keys: 5 are accepted, the rest refused with
    409; at most 200 keys on the server and on the lock."""
    lock = harness.flat
    user = create_user(harness)
    baseline = fill(harness, lock, MAX_KEYS - ROOM, lambda i: fob_body(f"fill{i}", user))

    def play(round_: int, rounds: Rounds) -> list[str]:
        bodies = [fob_body(f"k{round_}-{i}", user) for i in range(CONCURRENT_CREATES)]
        return limit_round(harness, lock, baseline, bodies, rounds)

    name = f"{CONCURRENT_CREATES} creates at {MAX_KEYS - ROOM} of {MAX_KEYS}"
    race(harness, name, play).verdict(harness)


def test_concurrent_keypad_codes_at_95_of_100(harness: Harness) -> None:
    """50 keypad codes at once on a keypad holding 95: 5 are accepted, the rest refused with
    409; at most 100 codes on the server and on the lock; the accepted codes open the door."""
    lock = harness.front
    codes = Codes()
    baseline = fill(harness, lock, MAX_CODES - ROOM, lambda i: code_body(f"fill{i}", codes.take()))
    used: list[int] = []

    def play(round_: int, rounds: Rounds) -> list[str]:
        bodies = [code_body(f"c{round_}-{i}", codes.take()) for i in range(CONCURRENT_CREATES)]
        used.extend(b["code"] for b in bodies)
        return limit_round(harness, lock, baseline, bodies, rounds)

    rounds = race(
        harness, f"{CONCURRENT_CREATES} keypad codes at {MAX_CODES - ROOM} of {MAX_CODES}", play
    )
    rounds.record(ROUNDS, codes_in_log(harness, used))
    rounds.verdict(harness)
