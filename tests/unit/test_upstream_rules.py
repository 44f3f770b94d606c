"""Pure rules of a linked Nuki Web account: reading its lock list, planning a (re)link."""

from __future__ import annotations

from typing import Any

import pytest

from keyhouse.rules.timezones import NUKI_TIMEZONES
from keyhouse.rules.upstream import parse_locks, plan_import, timezone_of

LOCK = {
    "smartlockId": 17_179_869_184 + 0x1A2B3C4D,
    "type": 4,
    "name": "Front Door",
    "serverState": 0,
    "config": {"timezoneId": 37, "keypadPaired": True},
    "state": {"state": 1, "batteryCharge": 90},
}


def test_a_lock_is_read_with_its_id_type_name_zone_and_keypad() -> None:
    (lock,) = parse_locks([LOCK])
    assert lock.smartlock_id == LOCK["smartlockId"]
    assert (lock.type, lock.name, lock.timezone, lock.keypad) == (
        4,
        "Front Door",
        "Europe/Berlin",  # Nuki's zone 37
        True,
    )
    assert lock.nuki_id == "1A2B3C4D"
    assert lock.config == LOCK["config"] and lock.state == LOCK["state"]


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"smartlockId": 1}, "not answer a list"),
        ([1], "is not an object"),
        ([{**LOCK, "smartlockId": None}], "no valid smartlockId"),
        ([{**LOCK, "smartlockId": "12"}], "no valid smartlockId"),
        ([{**LOCK, "smartlockId": True}], "no valid smartlockId"),
        ([{**LOCK, "smartlockId": 2**63}], "no valid smartlockId"),
        ([{**LOCK, "smartlockId": 0}], "no valid smartlockId"),
        ([{**LOCK, "type": 9}], "not one of Nuki's lock types"),
        ([LOCK, LOCK], "twice"),
    ],
)
def test_a_bad_upstream_answer_is_a_sentence(payload: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_locks(payload)


def test_names_are_trimmed_cut_and_never_empty() -> None:
    long, blank, odd = parse_locks(
        [
            {**LOCK, "smartlockId": 1, "name": "x" * 500},
            {**LOCK, "smartlockId": 2, "name": "   "},
            {**LOCK, "smartlockId": 3, "name": 42},
        ]
    )
    assert long.name == "x" * 200
    assert blank.name == "Nuki 00000002"
    assert odd.name == "Nuki 00000003"


def test_the_zone_comes_from_nukis_timezone_id_or_the_default() -> None:
    assert timezone_of({"timezoneId": 37}) == NUKI_TIMEZONES[37] == "Europe/Berlin"
    assert timezone_of({"timezoneId": 999}) == "Europe/Vienna"
    assert timezone_of({"timezoneId": "37"}) == "Europe/Vienna"
    assert timezone_of(None) == "Europe/Vienna"
    assert timezone_of({"timezoneId": 0}) == NUKI_TIMEZONES[0]


def test_a_plan_adds_refreshes_marks_and_finds_conflicts() -> None:
    plan = plan_import(
        1,
        [10, 11, 12, 13],
        {11: (1, "nuki"), 12: (2, "nuki"), 13: (1, "virtual")},
        [11, 14],
    )
    assert plan.added == [10]
    assert plan.refreshed == [11]
    assert plan.removed == [14]
    assert plan.conflicts == {12: 2, 13: 1}


def test_an_empty_upstream_marks_every_lock_and_adds_none() -> None:
    plan = plan_import(1, [], {}, [5, 6])
    assert (plan.added, plan.refreshed, plan.removed, plan.conflicts) == ([], [], [5, 6], {})


# --- the activity log --------------------------------------------------------------------------

ENTRY = {
    "id": "6751a2b3c4d5e6f708192a3b",
    "smartlockId": LOCK["smartlockId"],
    "deviceType": 0,
    "authId": "6751a2b3c4d5e6f708192a3c",
    "name": "Cleaner",
    "action": 1,
    "trigger": 255,
    "state": 0,
    "autoUnlock": False,
    "date": "2026-12-03T08:00:00.000Z",
    "source": 1,
}


def test_a_log_entry_is_read_with_its_id_key_and_date() -> None:
    from datetime import UTC, datetime

    from keyhouse.rules.upstream import parse_log_entry

    entry = parse_log_entry({**ENTRY, "id": ENTRY["id"].upper(), "openerLog": {"x": 1}})
    assert entry is not None
    assert entry.id == ENTRY["id"]  # Keyhouse's ids are lower case
    assert (entry.smartlock_id, entry.auth_id, entry.name) == (
        LOCK["smartlockId"],
        ENTRY["authId"],
        "Cleaner",
    )
    assert (entry.action, entry.trigger, entry.state, entry.source) == (1, 255, 0, 1)
    assert entry.date == datetime(2026, 12, 3, 8, tzinfo=UTC)
    assert entry.error is None and entry.auto_unlock is False


@pytest.mark.parametrize(
    "change",
    [
        {"id": "not-an-object-id"},
        {"id": None},
        {"smartlockId": "17"},
        {"smartlockId": 0},
        {"action": None},
        {"trigger": 256},
        {"state": True},
        {"date": "yesterday"},
        {"date": "2026-12-03T08:00:00"},  # no zone
    ],
)
def test_an_entry_keyhouse_cannot_keep_is_left_out(change: dict[str, Any]) -> None:
    from keyhouse.rules.upstream import parse_log_entry

    assert parse_log_entry({**ENTRY, **change}) is None


def test_odd_fields_of_an_entry_are_dropped_not_fatal() -> None:
    from keyhouse.rules.upstream import parse_log_entry

    entry = parse_log_entry({**ENTRY, "authId": 7, "name": None, "source": "x", "error": ""})
    assert entry is not None
    assert (entry.auth_id, entry.name, entry.source, entry.error) == (None, "", None, None)


def test_a_log_page_gives_its_entries_and_the_cursor_of_the_last() -> None:
    from keyhouse.rules.upstream import parse_log_page

    older = {**ENTRY, "id": "6751a2b3c4d5e6f708192a30"}
    entries, cursor, size = parse_log_page([ENTRY, {"id": "bad"}, older])
    assert [e.id for e in entries] == [ENTRY["id"], older["id"]]
    assert (cursor, size) == (older["id"], 3)
    assert parse_log_page([]) == ([], None, 0)
    # The last item is unreadable: no cursor (paging stops there).
    assert parse_log_page([ENTRY, {"id": "bad"}])[1] is None
    with pytest.raises(ValueError, match="did not answer a list"):
        parse_log_page({"detailMessage": "x"})
