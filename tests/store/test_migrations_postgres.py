"""The migrations on the machine's real PostgreSQL (127.0.0.1:5432, user postgres): a fresh
database per test, brought up, down and up again, compared with the models.

Skipped where no PostgreSQL answers, except under CI=true, where that is a failure."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from keyhouse.store.database import Database
from keyhouse.store.models import Base


def test_the_migrations_build_the_models_on_postgresql(postgres: Database) -> None:
    postgres.migrate()
    with postgres.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_0004_goes_down_and_up_on_postgresql_keeping_an_invite(postgres: Database) -> None:
    postgres.migrate("0003")
    with postgres.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO accounts (email, name, created_at) VALUES ('o@x', 'O', now())")
        )
        connection.execute(
            text(
                "INSERT INTO invites (account_id, auth_key, code_hash, created_at, expires_at) "
                "SELECT id, 'k', :hash, now(), now() + interval '2 days' FROM accounts"
            ),
            {"hash": "b" * 64},
        )
    postgres.migrate()
    postgres.downgrade("0003")
    postgres.migrate()
    with postgres.engine.connect() as connection:
        row = connection.execute(
            text("SELECT link_hash, expires_at = created_at FROM invites")
        ).one()
    assert row == ("b" * 64, True)


def test_0011_goes_down_and_up_on_postgresql(postgres: Database) -> None:
    from sqlalchemy import inspect

    postgres.migrate()
    assert "upstream_links" in inspect(postgres.engine).get_table_names()
    postgres.downgrade("0010")
    assert "upstream_links" not in inspect(postgres.engine).get_table_names()
    postgres.migrate()
    assert {"upstream_links", "upstream_locks", "nuki_emulation"} <= set(
        inspect(postgres.engine).get_table_names()
    )
