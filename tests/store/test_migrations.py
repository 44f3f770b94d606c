"""The Alembic migrations on a real SQLite file holding data: 0003 (invite codes, plain-text
mail) to 0004 (guest links, mail rendered from templates), and back."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from keyhouse.outbox.sender import MailSender
from keyhouse.settings import Settings
from keyhouse.store.database import Database

CREATED = "2026-11-20 10:00:00.000000"


def store_at_0003(tmp_path: Path) -> tuple[Database, Settings]:
    settings = Settings(data=tmp_path / "data")
    db = Database(settings.resolved_database_url)
    db.migrate("0003")
    with db.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO accounts (id, email, name, created_at) VALUES (1, :e, :n, :c)"),
            {"e": "owner@example.com", "n": "Owner", "c": CREATED},
        )
        connection.execute(
            text(
                "INSERT INTO outbox (id, account_id, kind, message_id, recipient, subject, body,"
                " status, attempts, created_at) VALUES (1, 1, 'invite_mail', '<old@keyhouse>',"
                " 'guest@example.com', 'Your key', 'Invite code:  123 456 789', 'pending', 0, :c)"
            ),
            {"c": CREATED},
        )
        connection.execute(
            text(
                "INSERT INTO invites (id, account_id, auth_key, code_hash, created_at, expires_at,"
                " outbox_id) VALUES (1, 1, :key, :hash, :c, '2026-11-22 10:00:00.000000', 1)"
            ),
            {"key": "6b0785335da0f2b030ef1707", "hash": "a" * 64, "c": CREATED},
        )
    return db, settings


def columns(db: Database, table: str) -> set[str]:
    return {column["name"] for column in inspect(db.engine).get_columns(table)}


def test_0004_keeps_the_data_and_ends_the_old_invite_codes(tmp_path: Path) -> None:
    db, _settings = store_at_0003(tmp_path)
    db.migrate()
    assert {"link_hash", "redeemed_at", "device_hash"} <= columns(db, "invites")
    assert "code_hash" not in columns(db, "invites")
    assert {"language", "context", "secrets", "handed_over_at"} <= columns(db, "outbox")
    with db.engine.connect() as connection:
        invite = connection.execute(text("SELECT * FROM invites")).mappings().one()
        mail = connection.execute(text("SELECT * FROM outbox")).mappings().one()
    assert invite["link_hash"] == "a" * 64
    assert invite["expires_at"] == invite["created_at"]  # a code nobody can redeem: ended
    assert invite["redeemed_at"] is None
    assert (mail["kind"], mail["language"], mail["context"]) == ("invite", "en", None)
    (index,) = [i for i in inspect(db.engine).get_indexes("invites") if i["name"].endswith("hash")]
    assert index["unique"] and index["column_names"] == ["link_hash"]
    with db.engine.connect() as connection:
        for table in ("invites", "outbox"):
            sql = connection.execute(
                text("SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table}
            ).scalar_one()
            assert "AUTOINCREMENT" in sql, f"{table} would reuse ids: {sql}"
    db.dispose()


def test_a_mail_queued_before_0004_goes_out_as_it_was_written(tmp_path: Path) -> None:
    db, settings = store_at_0003(tmp_path)
    db.migrate()
    assert MailSender(db, settings).deliver_due() == 1
    (eml,) = settings.mail_dir.glob("*.eml")
    content = eml.read_text()
    assert "Message-ID: <old@keyhouse>" in content
    assert "Invite code:  123 456 789" in content
    assert "multipart" not in content
    db.dispose()


def test_0004_goes_back_to_0003_and_up_again(tmp_path: Path) -> None:
    db, _settings = store_at_0003(tmp_path)
    db.migrate()
    db.downgrade("0003")
    assert "code_hash" in columns(db, "invites")
    assert "handed_over_at" not in columns(db, "outbox")
    with db.engine.connect() as connection:
        kind = connection.execute(text("SELECT kind FROM outbox")).scalar_one()
    assert kind == "invite_mail"
    db.migrate()
    assert "link_hash" in columns(db, "invites")
    db.dispose()


def test_the_migrations_build_exactly_the_tables_the_models_describe(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from keyhouse.store.models import Base

    db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    db.migrate()
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    db.dispose()
    assert differences == []


def test_0011_goes_back_to_0010_and_up_again(tmp_path: Path) -> None:
    from sqlalchemy import inspect

    from keyhouse.store.database import Database

    db = Database(f"sqlite:///{tmp_path / 'keyhouse.db'}")
    db.migrate()
    tables = set(inspect(db.engine).get_table_names())
    assert {"upstream_links", "upstream_locks", "nuki_emulation"} <= tables
    db.downgrade("0010")
    assert not {"upstream_links", "upstream_locks", "nuki_emulation"} & set(
        inspect(db.engine).get_table_names()
    )
    db.migrate()
    assert {"upstream_links", "upstream_locks"} <= set(inspect(db.engine).get_table_names())
    db.dispose()


def test_0012_goes_back_to_0011_and_up_again(tmp_path: Path) -> None:
    from sqlalchemy import inspect

    from keyhouse.store.database import Database

    added = {"origin", "create_marker", "accepted_revision"}
    db = Database(f"sqlite:///{tmp_path / 'keyhouse.db'}")
    db.migrate()
    columns = {c["name"] for c in inspect(db.engine).get_columns("smartlock_auths")}
    assert added <= columns
    db.downgrade("0011")
    columns = {c["name"] for c in inspect(db.engine).get_columns("smartlock_auths")}
    assert not added & columns
    db.migrate()
    columns = {c["name"] for c in inspect(db.engine).get_columns("smartlock_auths")}
    assert added <= columns
    db.dispose()


def test_0013_goes_back_to_0012_and_up_again(tmp_path: Path) -> None:
    from sqlalchemy import inspect

    from keyhouse.store.database import Database

    db = Database(f"sqlite:///{tmp_path / 'keyhouse.db'}")
    db.migrate()
    assert "sync_due_at" in {c["name"] for c in inspect(db.engine).get_columns("upstream_links")}
    db.downgrade("0012")
    assert "sync_due_at" not in {
        c["name"] for c in inspect(db.engine).get_columns("upstream_links")
    }
    db.migrate()
    assert "sync_due_at" in {c["name"] for c in inspect(db.engine).get_columns("upstream_links")}
    db.dispose()
