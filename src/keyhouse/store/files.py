"""Secrets at rest: the data folder is the owner's alone (0700), its files 0600.

The database holds token hashes, keypad codes and guest-link hashes; ``mail/*.eml`` hold guest
links and keypad codes in clear. Files are created with their final mode (never 0644 first), and
a folder or file found looser at start is tightened, with a log line that says so.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("keyhouse.files")

FOLDER_MODE = 0o700
FILE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _tighten(path: Path, mode: int) -> bool:
    """Take group and other permissions away from ``path``; True if it had any."""
    current = _mode(path)
    if current & 0o077 == 0:
        return False
    os.chmod(path, current & ~0o077 & 0o7777 | (mode & 0o700))
    log.warning(
        "tightened the permissions of %s from %04o to %04o: it holds secrets (tokens, keypad "
        "codes, guest links), so only its owner may read it",
        path,
        current,
        _mode(path),
    )
    return True


def private_folder(path: Path) -> Path:
    """``path`` as a folder only its owner can enter: made 0700, or tightened to it."""
    try:
        path.mkdir(parents=True, mode=FOLDER_MODE)
        os.chmod(path, FOLDER_MODE)  # mkdir's mode is filtered by the umask, never widened
    except FileExistsError:  # there already, or made by another process a moment ago
        _tighten(path, FOLDER_MODE)
    return path


def private_file(path: Path) -> Path:
    """``path`` exists with mode 0600 (created so, before anyone opens it) or tightened to it."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    except FileExistsError:
        _tighten(path, FILE_MODE)
    return path


def write_private(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` (0600) through a temporary file, replacing it at once."""
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, FILE_MODE)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
    os.chmod(temporary, FILE_MODE)  # a leftover .tmp from an older version may be looser
    temporary.replace(path)


def secure_data_folder(data: Path) -> None:
    """At start: the data folder 0700, and what is in it that holds secrets 0600."""
    private_folder(data)
    for name in ("keyhouse.db", *(f"keyhouse.db{suffix}" for suffix in SQLITE_COMPANIONS)):
        if (data / name).exists():
            _tighten(data / name, FILE_MODE)
    mail = data / "mail"
    if mail.is_dir():
        _tighten(mail, FOLDER_MODE)
        for item in mail.iterdir():
            if item.is_file():
                _tighten(item, FILE_MODE)


def secure_sqlite_file(path: Path) -> None:
    """Before SQLite first opens ``path``: its folder private if new, the file created 0600.

    SQLite gives the ``-wal`` and ``-shm`` files the mode of the database file.
    """
    if not path.parent.exists():
        private_folder(path.parent)
    private_file(path)
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            _tighten(companion, FILE_MODE)
