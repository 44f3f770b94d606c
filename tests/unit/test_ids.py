"""Tests for keyhouse.rules.ids."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyhouse.rules.ids import (
    is_object_id,
    new_nuki_id,
    new_object_id,
    smartlock_id,
    split_smartlock_id,
)
from keyhouse.rules.violations import RuleViolation

nuki_ids = st.integers(min_value=0, max_value=0xFFFFFFFF).map(lambda n: f"{n:08X}")


@pytest.mark.parametrize(
    ("device_type", "nuki_id", "expected"),
    [
        (4, "42B03074", 18298712180),
        (2, "1E24DD52", 9095667026),
        (0, "1A2B3C4D", 0x1A2B3C4D),
        (4, "42b03074", 18298712180),
        (3, "00000001", 0x300000001),
    ],
)
def test_smartlock_id_examples(device_type: int, nuki_id: str, expected: int) -> None:
    assert smartlock_id(device_type, nuki_id) == expected


def test_smartlock_id_matches_nuki_string_rule() -> None:
    assert smartlock_id(4, "42B03074") == int(hex(4) + "42B03074", 16)


@pytest.mark.parametrize(
    ("smartlock", "expected"),
    [
        (18298712180, (4, "42B03074")),
        (9095667026, (2, "1E24DD52")),
        (0x1A2B3C4D, (0, "1A2B3C4D")),
        (0x300000001, (3, "00000001")),
    ],
)
def test_split_smartlock_id_examples(smartlock: int, expected: tuple[int, str]) -> None:
    assert split_smartlock_id(smartlock) == expected


@pytest.mark.parametrize(
    "nuki_id", ["42B0307", "42B030745", "42B0307G", "", " 42B0307", "４2B03074"]
)
def test_smartlock_id_rejects_bad_nuki_id(nuki_id: str) -> None:
    with pytest.raises(RuleViolation) as info:
        smartlock_id(4, nuki_id)
    assert (info.value.field, info.value.rule) == ("nukiId", "format")
    assert nuki_id in info.value.message


@pytest.mark.parametrize("device_type", [-1, True])
def test_smartlock_id_rejects_bad_device_type(device_type: int) -> None:
    with pytest.raises(RuleViolation) as info:
        smartlock_id(device_type, "42B03074")
    assert (info.value.field, info.value.rule) == ("deviceType", "range")


def test_split_smartlock_id_rejects_negative() -> None:
    with pytest.raises(RuleViolation) as info:
        split_smartlock_id(-5)
    assert (info.value.field, info.value.rule) == ("smartlockId", "range")


@given(device_type=st.sampled_from([0, 2, 3, 4]), nuki_id=nuki_ids)
def test_smartlock_id_round_trip(device_type: int, nuki_id: str) -> None:
    sid = smartlock_id(device_type, nuki_id)
    assert split_smartlock_id(sid) == (device_type, nuki_id)
    assert smartlock_id(device_type, nuki_id.lower()) == sid


@given(device_type=st.sampled_from([2, 3, 4]), nuki_id=nuki_ids)
def test_smartlock_id_equals_hex_concatenation(device_type: int, nuki_id: str) -> None:
    assert smartlock_id(device_type, nuki_id) == int(f"{device_type:x}{nuki_id}", 16)


def test_new_nuki_id_shape() -> None:
    for _ in range(500):
        value = new_nuki_id()
        assert re.fullmatch(r"[1-9A-F][0-9A-F]{7}", value), value
        assert split_smartlock_id(smartlock_id(4, value)) == (4, value)
    assert len({new_nuki_id() for _ in range(200)}) > 190


def test_new_object_id_layout() -> None:
    now = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)
    first = new_object_id(now)
    second = new_object_id(now)
    assert re.fullmatch(r"[0-9a-f]{24}", first)
    assert int(first[:8], 16) == int(now.timestamp()) == 1796112000
    assert first[:8] == second[:8]
    assert (int(second[18:], 16) - int(first[18:], 16)) % (1 << 24) == 1


def test_new_object_id_naive_is_utc_and_offsets_respected() -> None:
    naive = datetime(2026, 12, 1, 8, 0, 0)
    vienna = datetime(2026, 12, 1, 9, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert new_object_id(naive)[:8] == f"{1796112000:08x}"
    assert new_object_id(vienna)[:8] == f"{1796112000:08x}"


def test_new_object_id_default_uses_now() -> None:
    before = int(datetime.now(UTC).timestamp())
    stamp = int(new_object_id()[:8], 16)
    after = int(datetime.now(UTC).timestamp())
    assert before <= stamp <= after


def test_object_ids_are_hex_and_unique() -> None:
    ids = [new_object_id() for _ in range(1000)]
    assert all(re.fullmatch(r"[0-9a-f]{24}", value) for value in ids)
    assert all(is_object_id(value) for value in ids)
    assert len(set(ids)) == 1000


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2106, 1, 1)))
def test_object_id_property(now: datetime) -> None:
    value = new_object_id(now)
    assert is_object_id(value)
    assert value == value.lower()
    assert int(value[:8], 16) == int(now.replace(tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5f1b2c3d4e5f60718293a4b5", True),
        ("5F1B2C3D4E5F60718293A4B5", True),
        ("5f1b2c3d4e5f60718293a4b", False),
        ("5f1b2c3d4e5f60718293a4b5c", False),
        ("5f1b2c3d4e5f60718293a4bg", False),
        ("5f1b2c3d4e5f60718293a4b\n", False),
        ("", False),
    ],
)
def test_is_object_id(value: str, expected: bool) -> None:
    assert is_object_id(value) is expected
