"""Fixtures of the store's tests: a fresh database on the machine's PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from keyhouse.store.database import Database

SERVER = os.environ.get("KEYHOUSE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")


@pytest.fixture
def postgres() -> Iterator[Database]:
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    name = f"keyhouse_test_{secrets.token_hex(4)}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL at {SERVER}: {exc.orig}")
    db = Database(f"{SERVER}/{name}")
    try:
        yield db
    finally:
        db.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
