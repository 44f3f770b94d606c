"""Issue 11: secrets at rest. The data folder is 0700; keyhouse.db (and its -wal/-shm) and the
mail files 0600, on a fresh data folder, whatever the umask; a looser folder is tightened at
start with a line that says so. On PostgreSQL the data folder still holds the mail."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import tenant_with, wait_until


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # the usual default: files 0644, folders 0755
    try:
        yield
    finally:
        os.umask(previous)


def _send_an_invite(tenant: Any) -> Path:
    user = tenant.create_user("guest@example.com", "Guest")
    tenant.create_key(tenant.plain_lock, name="Guest", accountUserId=user, remoteAllowed=True)
    mail = tenant.runtime.settings.mail_dir
    return wait_until(lambda: sorted(mail.glob("*.eml")), what="the invite's .eml")[0]


def test_a_fresh_data_folder_is_private(
    tmp_path: Path, store_url: str | None, loose_umask: None
) -> None:
    with tenant_with(tmp_path, database_url=store_url) as tenant:
        data = tenant.runtime.settings.data
        eml = _send_an_invite(tenant)
        assert mode(data) == 0o700
        assert mode(eml.parent) == 0o700
        assert mode(eml) == 0o600
        assert "/guest/" in eml.read_text()  # the secret the mode protects
        if store_url is None:
            files = [data / "keyhouse.db", data / "keyhouse.db-wal", data / "keyhouse.db-shm"]
            for path in files:
                assert path.exists(), path
                assert mode(path) == 0o600, (path, oct(mode(path)))
        else:
            assert not (data / "keyhouse.db").exists()
        assert not [p for p in data.rglob("*") if mode(p) & 0o077]


def test_a_loose_data_folder_is_tightened_at_start(
    tmp_path: Path, store_url: str | None, loose_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    (data / "mail").mkdir(parents=True)
    os.chmod(data, 0o755)
    old_mail = data / "mail" / "000001-invite.eml"
    old_mail.write_text("a guest link")
    os.chmod(old_mail, 0o644)
    if store_url is None:
        (data / "keyhouse.db").touch(mode=0o644)
        os.chmod(data / "keyhouse.db", 0o644)
    with (
        caplog.at_level(logging.WARNING, logger="keyhouse.files"),
        tenant_with(tmp_path, database_url=store_url) as tenant,
    ):
        assert tenant.get("/smartlock").status_code == 200
    assert mode(data) == 0o700
    assert mode(old_mail) == 0o600
    lines = [r.getMessage() for r in caplog.records if "tightened" in r.getMessage()]
    assert any(str(data) in line and "0755" in line and "0700" in line for line in lines), lines
    if store_url is None:
        assert mode(data / "keyhouse.db") == 0o600
        assert all(mode(p) == 0o600 for p in data.glob("keyhouse.db*"))
