"""KEYHOUSE_SIM_LATENCY_MS and KEYHOUSE_SIM_FLAKINESS: slow, unreliable locks still converge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import Tenant, tenant_with, wait_until
from keyhouse.store.models import SimulatedAuth


@pytest.fixture
def flaky(tmp_path: Path) -> Iterator[Tenant]:
    with tenant_with(
        tmp_path,
        sim_latency_ms=30,
        sim_flakiness=0.5,
        confirm_wait_seconds=0.05,
        worker_interval_seconds=0.05,
    ) as tenant:
        yield tenant


def test_keys_on_a_slow_flaky_lock_end_applied_in_order(flaky: Tenant) -> None:
    user = flaky.create_user()
    lock = flaky.plain_lock
    for index in range(5):
        answer = flaky.put(
            f"/smartlock/{lock}/auth",
            json={"name": f"Guest {index}", "accountUserId": user, "remoteAllowed": False},
        )
        assert answer.status_code == 204, answer.text
    key = flaky.keys(lock)[0]
    for name in ("first", "second", "last"):
        answer = flaky.post(f"/smartlock/{lock}/auth/{key['id']}", json={"name": name})
        assert answer.status_code == 204, answer.text

    def all_applied() -> list[dict] | None:
        keys = flaky.keys(lock)
        return keys if {k["syncState"] for k in keys} == {"applied"} else None

    keys = wait_until(all_applied, timeout=30, what="every key to be applied")
    assert len(keys) == 5
    assert len({k["authId"] for k in keys}) == 5
    with flaky.runtime.db.session() as session:  # the device's own table, read directly
        held = session.scalars(select(SimulatedAuth).where(SimulatedAuth.auth_key == key["id"]))
        assert [row.data["name"] for row in held] == ["last"]


def test_the_settings_make_device_calls_slow_and_unreliable(flaky: Tenant) -> None:
    from keyhouse.devices.link import DeviceUnreachable

    outcomes = []
    for _ in range(40):
        try:
            flaky.runtime.link.read_all(flaky.plain_lock)
            outcomes.append(True)
        except DeviceUnreachable:
            outcomes.append(False)
    assert 5 <= outcomes.count(False) <= 35  # about half go unanswered
