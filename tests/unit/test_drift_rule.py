"""Tests for keyhouse.rules.drift: the safer state wins, field by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from keyhouse.rules.access import KeyRules
from keyhouse.rules.access import decide as opens
from keyhouse.rules.drift import (
    decide,
    fingerprint,
    keyhouse_times,
    marker_fingerprint,
    marker_text,
    matches,
    read_fields,
)
from keyhouse.rules.violations import RuleViolation
from keyhouse.rules.windows import check_restrictions

KEY: dict[str, Any] = {
    "type": 13,
    "name": "Cleaner",
    "enabled": True,
    "remoteAllowed": False,
    "code": 345678,
    "allowedFromDate": "2026-12-01T00:00:00.000Z",
    "allowedUntilDate": "2027-01-31T00:00:00.000Z",
    "allowedWeekDays": 124,  # Mon-Fri
    "allowedFromTime": 480,
    "allowedUntilTime": 1080,
}


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, tzinfo=UTC)


# --- examples -------------------------------------------------------------------------------


def test_the_same_key_is_no_drift() -> None:
    assert decide(KEY, dict(KEY)).kind == "none"
    # the same access written otherwise: 0 days and absent days are every day
    assert decide({**KEY, "allowedWeekDays": None}, {**KEY, "allowedWeekDays": 0}).kind == "none"
    assert (
        decide(
            {**KEY, "allowedFromTime": None, "allowedUntilTime": None},
            {**KEY, "allowedFromTime": 0, "allowedUntilTime": 0},
        ).kind
        == "none"
    )


def test_disabled_at_the_upstream_is_adopted() -> None:
    drift = decide(KEY, {**KEY, "enabled": False})
    assert drift.kind == "adopt"
    assert drift.adopted == {"enabled": (True, False)} and drift.merged["enabled"] is False


def test_re_enabled_at_the_upstream_is_put_back() -> None:
    drift = decide({**KEY, "enabled": False}, KEY)
    assert drift.kind == "put_back" and drift.put_back == {"enabled": (True, False)}
    assert drift.merged["enabled"] is False


def test_a_wiped_window_is_put_back() -> None:
    wiped = {
        **KEY,
        **dict.fromkeys(
            [
                "allowedFromDate",
                "allowedUntilDate",
                "allowedWeekDays",
                "allowedFromTime",
                "allowedUntilTime",
            ]
        ),
    }
    drift = decide(KEY, wiped)
    assert drift.kind == "put_back"
    assert set(drift.put_back) == {
        "allowedFromDate",
        "allowedUntilDate",
        "allowedWeekDays",
        "allowedFromTime",
        "allowedUntilTime",
    }
    assert drift.merged == read_fields(KEY)


def test_a_narrower_window_is_adopted() -> None:
    narrower = {
        **KEY,
        "allowedUntilDate": "2026-12-24T00:00:00.000Z",
        "allowedWeekDays": 64,
        "allowedFromTime": 540,
        "allowedUntilTime": 720,
    }
    drift = decide(KEY, narrower)
    assert drift.kind == "adopt"
    assert drift.merged == read_fields(narrower)
    assert drift.adopted["allowedWeekDays"] == (124, 64)


def test_narrower_and_wider_fields_mix_into_the_intersection() -> None:
    # the upstream starts later (narrower) but never ends (wider), adds the weekend (wider)
    # and drops Monday (narrower), and opens 07:00-12:00 against Keyhouse's 08:00-18:00
    mixed = {
        **KEY,
        "allowedFromDate": "2026-12-10T00:00:00.000Z",
        "allowedUntilDate": None,
        "allowedWeekDays": 63,
        "allowedFromTime": 420,
        "allowedUntilTime": 720,
    }
    drift = decide(KEY, mixed)
    assert drift.kind == "merge"
    merged = drift.merged
    assert merged["allowedFromDate"] == at(10)
    assert merged["allowedUntilDate"] == datetime(2027, 1, 31, tzinfo=UTC)
    assert merged["allowedWeekDays"] == 124 & 63
    assert (merged["allowedFromTime"], merged["allowedUntilTime"]) == (480, 720)
    assert set(drift.adopted) == {
        "allowedFromDate",
        "allowedWeekDays",
        "allowedFromTime",
        "allowedUntilTime",
    }
    assert set(drift.put_back) == {
        "allowedUntilDate",
        "allowedWeekDays",
        "allowedFromTime",
        "allowedUntilTime",
    }


def test_disjoint_days_grant_nothing_so_the_key_is_disabled() -> None:
    drift = decide({**KEY, "allowedWeekDays": 64}, {**KEY, "allowedWeekDays": 32})
    assert drift.merged["enabled"] is False
    assert drift.merged["allowedWeekDays"] == 64  # Keyhouse's days, kept for the owner


def test_name_and_code_are_keyhouses() -> None:
    drift = decide(KEY, {**KEY, "name": "Burglar", "code": 987654})
    assert drift.kind == "put_back"
    assert drift.put_back == {"name": ("Burglar", "Cleaner"), "code": (987654, 345678)}


def test_deleted_at_the_upstream_is_adopted_for_every_type() -> None:
    assert decide(KEY, None).kind == "deleted"
    assert decide({**KEY, "type": 0, "code": None}, None).kind == "deleted"


@pytest.mark.parametrize(
    "bad",
    [
        {"enabled": "yes"},
        {"allowedWeekDays": 300},
        {"allowedFromTime": -1},
        {"allowedFromDate": "tomorrow"},
        {"name": 7},
        {"code": True},
    ],
)
def test_an_unreadable_upstream_key_is_put_back(bad: dict[str, Any]) -> None:
    drift = decide(KEY, {**KEY, **bad})
    assert drift.kind == "put_back" and drift.unreadable
    assert drift.merged == read_fields(KEY)


def test_a_create_under_way_is_known_by_its_fingerprint() -> None:
    marker = marker_text({**KEY, "accountUserId": None}, at(1))
    sent = marker_fingerprint(marker)
    listed = {**KEY, "id": "up-1", "authId": 3, "allowedFromDate": "2026-12-01T00:00:00Z"}
    assert matches(sent, listed)
    assert not matches(sent, {**listed, "code": 456789})
    assert not matches(sent, {**listed, "name": "Cleaner 2"})
    assert not matches(sent, {**listed, "allowedWeekDays": 64})
    with_user = marker_fingerprint(marker_text({**KEY, "accountUserId": 9}, at(1)))
    assert matches(with_user, {**listed, "accountUserId": 9})
    assert not matches(with_user, {**listed, "accountUserId": 8})
    assert fingerprint({"name": "x", "type": 13, "code": 345678}) == fingerprint(
        {"name": "x", "type": 13, "code": 345678, "allowedWeekDays": 0}
    )
    with pytest.raises(ValueError):
        marker_fingerprint("not json")


# --- properties -----------------------------------------------------------------------------

DATES = st.sampled_from([None, at(1), at(5), at(5, 12), at(10), at(20)])
TIMES = st.sampled_from([None, 0, 300, 480, 720, 1080, 1439])


@st.composite
def keys(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "type": 13,
        "name": draw(st.sampled_from(["A", "B"])),
        "code": draw(st.sampled_from([None, 345678, 456789])),
        "enabled": draw(st.booleans()),
        "remoteAllowed": draw(st.booleans()),
        "allowedFromDate": draw(DATES),
        "allowedUntilDate": draw(DATES),
        "allowedWeekDays": draw(st.one_of(st.none(), st.integers(0, 127))),
        "allowedFromTime": draw(TIMES),
        "allowedUntilTime": draw(TIMES),
    }


def rules_of(fields: dict[str, Any]) -> KeyRules:
    return KeyRules(
        enabled=fields["enabled"],
        remote_allowed=fields["remoteAllowed"],
        allowed_from_date=fields["allowedFromDate"],
        allowed_until_date=fields["allowedUntilDate"],
        allowed_week_days=fields["allowedWeekDays"],
        allowed_from_time=fields["allowedFromTime"],
        allowed_until_time=fields["allowedUntilTime"],
    )


INSTANTS = st.builds(
    lambda day, minute: at(1) + timedelta(days=day, minutes=minute),
    st.integers(-2, 22),
    st.integers(0, 1439),
)


@settings(max_examples=400, deadline=None)
@given(keys(), keys(), INSTANTS, st.booleans())
def test_the_merge_never_opens_where_either_side_would_not(
    mine: dict[str, Any], theirs: dict[str, Any], instant: datetime, remote: bool
) -> None:
    merged = decide(mine, theirs).merged
    if opens(rules_of(merged), instant, "UTC", remote=remote).allowed:
        assert opens(rules_of(read_fields(mine)), instant, "UTC", remote=remote).allowed
        assert opens(rules_of(read_fields(theirs)), instant, "UTC", remote=remote).allowed


@settings(max_examples=400, deadline=None)
@given(keys(), keys(), INSTANTS, st.booleans())
def test_the_merge_keeps_what_both_sides_grant_when_they_overlap(
    mine: dict[str, Any], theirs: dict[str, Any], instant: datetime, remote: bool
) -> None:
    """Not narrower than needed: where both open, the merge opens too."""
    if all(
        opens(rules_of(read_fields(side)), instant, "UTC", remote=remote).allowed
        for side in (mine, theirs)
    ):
        merged = decide(mine, theirs).merged
        assert opens(rules_of(merged), instant, "UTC", remote=remote).allowed


@settings(max_examples=400, deadline=None)
@given(keys(), keys())
def test_the_merge_is_settled_after_one_round(mine: dict[str, Any], theirs: dict[str, Any]) -> None:
    drift = decide(mine, theirs)
    merged = drift.merged
    # Keyhouse takes the merge; the upstream, once put back, holds it: nothing more to do.
    assert decide(merged, merged).kind == "none"
    # Before the put-back lands, a second check adopts nothing more and merges the same.
    again = decide(merged, theirs)
    assert again.adopted == {}
    assert decide(again.merged, merged).kind == "none"
    # If nothing was put back, the upstream already holds the merge.
    if not drift.put_back:
        assert decide(merged, theirs).kind == "none"
    # If nothing was adopted, Keyhouse keeps its key as it means it.
    if not drift.adopted:
        assert decide(mine, merged).kind == "none"


def restrictions(fields: dict[str, Any]) -> None:
    check_restrictions(
        allowed_from_date=fields["allowedFromDate"],
        allowed_until_date=fields["allowedUntilDate"],
        allowed_week_days=fields["allowedWeekDays"],
        allowed_from_time=fields["allowedFromTime"],
        allowed_until_time=fields["allowedUntilTime"],
    )


@settings(max_examples=400, deadline=None)
@given(keys(), keys())
def test_the_merge_is_a_key_keyhouse_accepts(mine: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Whatever the upstream holds (a lone from-time, say), the owner can go on editing the
    key in Keyhouse: the merge of a valid key passes Keyhouse's own window rules."""
    try:
        restrictions(read_fields(mine))
    except RuleViolation:
        assume(False)
    restrictions(decide(mine, theirs).merged)


def test_an_upstream_window_to_midnight_is_written_as_keyhouse_writes_it() -> None:
    drift = decide(
        {**KEY, **dict.fromkeys(["allowedFromTime", "allowedUntilTime"])},
        {**KEY, "allowedFromTime": 1200, "allowedUntilTime": None},
    )
    assert (drift.merged["allowedFromTime"], drift.merged["allowedUntilTime"]) == (1200, 1439)
    assert keyhouse_times(1200, None) == (1200, 1439)
    assert keyhouse_times(0, 0) == (None, None) == keyhouse_times(None, None)
    assert keyhouse_times(None, 600) == (0, 600)
