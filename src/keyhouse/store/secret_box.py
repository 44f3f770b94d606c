"""Secrets at rest that Keyhouse must read back (an upstream API token): Fernet-encrypted.

The key is ``KEYHOUSE_SECRET_KEY`` (a Fernet key: 32 url-safe base64 bytes) when it is set,
else the file ``secret.key`` in the data folder, created 0600 on first use. Two processes that
start at once make one key between them: each writes a complete candidate to its own temporary
file and links it to the final name (``link`` fails if the name exists), so the file is never
seen half-written and the loser reads the winner's key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from keyhouse.store.files import FILE_MODE, private_file, private_folder

KEY_FILE = "secret.key"


class SecretKeyMissing(Exception):
    """The key that encrypted a stored secret is not the one at hand."""


def _key_file(data: Path) -> bytes:
    path = data / KEY_FILE
    if not path.exists():
        private_folder(data)
        candidate = data / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(Fernet.generate_key())
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(candidate, path)  # atomic: the first one wins, the others keep its key
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
    private_file(path)  # tightened to 0600 if someone loosened it
    return path.read_bytes().strip()


class SecretBox:
    """Encrypts and decrypts the secrets Keyhouse stores, with one key."""

    def __init__(self, data: Path, secret_key: str | None = None) -> None:
        self._data = data
        self._given = secret_key
        self._fernet: Fernet | None = None

    def _box(self) -> Fernet:
        if self._fernet is None:
            key = self._given.encode() if self._given else _key_file(self._data)
            try:
                self._fernet = Fernet(key)
            except ValueError:
                raise SecretKeyMissing(
                    "KEYHOUSE_SECRET_KEY is not a Fernet key (32 url-safe base64 bytes): make "
                    "one with python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'"
                ) from None
        return self._fernet

    def seal(self, secret: str) -> str:
        return self._box().encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._box().decrypt(sealed.encode("ascii")).decode()
        except InvalidToken:
            raise SecretKeyMissing(
                "a stored upstream token can't be decrypted with this secret key: use the "
                f"KEYHOUSE_SECRET_KEY or {KEY_FILE} it was stored with, or link the account "
                "again with 'keyhouse admin upstream link'"
            ) from None
