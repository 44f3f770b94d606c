"""SecretBox: stored secrets encrypted with one key, from KEYHOUSE_SECRET_KEY or a key file
made 0600 on first use, one key even when many processes start at once."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from keyhouse.store.secret_box import KEY_FILE, SecretBox, SecretKeyMissing, _key_file


def test_a_secret_goes_in_sealed_and_comes_out_whole(tmp_path: Path) -> None:
    box = SecretBox(tmp_path / "data")
    sealed = box.seal("nuki-token-123")
    assert "nuki-token-123" not in sealed
    assert SecretBox(tmp_path / "data").open(sealed) == "nuki-token-123"
    key_file = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


def test_a_given_key_is_used_and_no_file_is_made(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    sealed = SecretBox(tmp_path, key).seal("s")
    assert not (tmp_path / KEY_FILE).exists()
    assert Fernet(key.encode()).decrypt(sealed.encode()) == b"s"
    with pytest.raises(SecretKeyMissing, match="can't be decrypted"):
        SecretBox(tmp_path, Fernet.generate_key().decode()).open(sealed)
    with pytest.raises(SecretKeyMissing, match="not a Fernet key"):
        SecretBox(tmp_path, "short").seal("s")


def test_a_loosened_key_file_is_tightened(tmp_path: Path) -> None:
    SecretBox(tmp_path).seal("s")
    os.chmod(tmp_path / KEY_FILE, 0o644)
    SecretBox(tmp_path).seal("s")
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600


def _read_key(folder: str, start: Any, out: Any) -> None:
    start.wait()
    out.put(_key_file(Path(folder)))


def test_processes_starting_at_once_make_one_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for round_ in range(15):
        folder = tmp_path / f"round{round_}"
        start, out = context.Event(), context.Queue()
        workers = [
            context.Process(target=_read_key, args=(str(folder), start, out)) for _ in range(6)
        ]
        for worker in workers:
            worker.start()
        start.set()
        keys = {out.get(timeout=30) for _ in workers}
        for worker in workers:
            worker.join(30)
        assert len(keys) == 1, f"round {round_}: {len(keys)} keys"
        assert os.listdir(folder) == [KEY_FILE]  # no temporary file left behind
        assert Fernet(keys.pop())  # a whole key, never half-written
