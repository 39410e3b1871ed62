"""The database on both engines: its schema from the migrations, databases of an earlier
revision and SQLite files of the migrations before Alembic upgraded in place, transactions,
and a database too new."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, insert, select, text

from tests.support.postgres_server import fresh_database, postgres_server
from voxline.auth.keys import KeyStore
from voxline.store import schema
from voxline.store.agents import AgentStore
from voxline.store.calls import CallRecord, CallRecords
from voxline.store.database import (
    Database,
    DatabaseClosedError,
    DatabaseUnavailable,
    SchemaTooNewError,
    database_url,
)

#: The SQLite schema as voxline's migrations built it before Alembic, version by version
#: (``PRAGMA user_version``): the files to upgrade in place.
LEGACY_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            env TEXT NOT NULL CHECK (env IN ('test', 'live')),
            secret_digest BLOB NOT NULL UNIQUE,
            display_prefix TEXT NOT NULL,
            scopes TEXT NOT NULL,
            label TEXT NOT NULL,
            concurrency INTEGER CHECK (concurrency IS NULL OR concurrency >= 1),
            daily_audio_seconds REAL
                CHECK (daily_audio_seconds IS NULL OR daily_audio_seconds > 0),
            created_at REAL NOT NULL,
            revoked_at REAL
        )
        """,
        """
        CREATE TABLE calls (
            call_id TEXT PRIMARY KEY,
            key_id TEXT NOT NULL,
            session_label TEXT,
            transport TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            close_code INTEGER,
            close_reason TEXT,
            audio_in_seconds REAL NOT NULL,
            audio_out_seconds REAL NOT NULL,
            turns INTEGER NOT NULL,
            barge_ins INTEGER NOT NULL
        )
        """,
        "CREATE INDEX calls_by_start ON calls (started_at)",
    ),
    (
        """
        CREATE TABLE servers (
            server_id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            pid_started_at REAL NOT NULL,
            started_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL
        )
        """,
        "ALTER TABLE calls ADD COLUMN server_id TEXT",
        "CREATE INDEX open_calls_by_server ON calls (server_id) WHERE ended_at IS NULL",
    ),
    (
        "ALTER TABLE api_keys ADD COLUMN owner TEXT NOT NULL DEFAULT 'default'",
        """
        CREATE TABLE agents (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            name TEXT NOT NULL,
            settings TEXT NOT NULL,
            vocabulary TEXT NOT NULL,
            knowledge TEXT,
            knowledge_file TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )
        """,
        "CREATE INDEX agents_by_owner ON agents (owner, created_at)",
    ),
)


def legacy_database(path: Path, version: int) -> sqlite3.Connection:
    """An SQLite file as voxline left it at schema ``version``, before Alembic."""
    conn = sqlite3.connect(path)
    for migration in LEGACY_MIGRATIONS[:version]:
        for statement in migration:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    return conn


def started(call_id: str) -> CallRecord:
    return CallRecord(
        call_id=call_id, key_id="key_1", session_label=None, transport="omni", started_at=1.0
    )


def test_the_migrations_build_the_schema_the_queries_use(db: Database) -> None:
    with db.read() as conn:
        assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []


def test_sqlite_setup(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "voxline.db"
    with Database(path) as db, db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").one() == ("wal",)
        assert conn.exec_driver_sql("PRAGMA synchronous").one() == (1,)  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() > 0
        # A voxline from before Alembic refuses the file instead of misreading it.
        assert conn.exec_driver_sql("PRAGMA user_version").scalar_one() > 3
    # Opening again finds the schema current and leaves it be.
    with Database(path) as db:
        CallRecords(db).open(started("call_1"))
    with Database(f"sqlite:///{path}") as db:
        assert CallRecords(db).get("call_1") is not None


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_sqlite_file_of_the_migrations_before_alembic_upgrades_in_place(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "voxline.db"
    conn = legacy_database(path, version)
    conn.execute(
        "INSERT INTO api_keys (id, env, secret_digest, display_prefix, scopes, label, "
        "created_at) VALUES ('key_old', 'live', x'00', 'vx_live_abcd', 'omni:session', '', 0)"
    )
    conn.execute(
        "INSERT INTO calls (call_id, key_id, transport, started_at, ended_at, audio_in_seconds, "
        "audio_out_seconds, turns, barge_ins) VALUES ('call_old', 'key_old', 'omni', 1, 2, "
        "0, 0, 0, 0)"
    )
    conn.commit()
    conn.close()
    with Database(path) as db:
        key = KeyStore(db).get("key_old")
        assert key is not None and key.owner == "default"  # owners came with version 3
        old = CallRecords(db).get("call_old")
        assert old is not None and (old.ended_at, old.node, old.agent_id) == (2.0, None, None)
        assert AgentStore(db).list("default") == []
        CallRecords(db, node="here").open(started("call_new"))
        with db.read() as read:
            revision = MigrationContext.configure(read).get_current_revision()
    with Database(path) as db:  # and it stays upgraded
        new = CallRecords(db).get("call_new")
        assert new is not None and new.node == "here"
        with db.read() as read:
            assert MigrationContext.configure(read).get_current_revision() == revision


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.e2e)])
def unmigrated(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a database goes that voxline has not opened yet: an SQLite file, or a fresh
    database on a real PostgreSQL."""
    if request.param == "sqlite":
        return tmp_path / "voxline.db"
    url: str = request.getfixturevalue("postgres_database")
    return url


def _migrations(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "voxline.store:migrations")
    config.attributes["connection"] = conn
    return config


def _migrate_to(target: str | Path, revision: str) -> None:
    """``target``'s schema as voxline's migrations left it at ``revision``."""
    engine = create_engine(database_url(target))
    try:
        with engine.begin() as conn:
            command.upgrade(_migrations(conn), revision)
    finally:
        engine.dispose()


def test_calls_recorded_before_agents_were_have_none(unmigrated: str | Path) -> None:
    """A database at the revision before call records named their agent upgrades in place:
    the calls in it keep what they had and name no agent; new ones name theirs."""
    _migrate_to(unmigrated, "0004")
    engine = create_engine(database_url(unmigrated))
    try:
        with engine.begin() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == "0004"
            conn.execute(
                text(
                    "INSERT INTO calls (call_id, key_id, session_label, transport, started_at, "
                    "ended_at, close_code, close_reason, audio_in_seconds, audio_out_seconds, "
                    "turns, barge_ins, server_id, node) VALUES ('call_old', 'key_old', "
                    "'desk', 'twilio', 1, 2, 1000, 'caller_hung_up', 3.5, 4.5, 2, 1, "
                    "'server_gone', 'node-a')"
                )
            )
    finally:
        engine.dispose()
    head = ScriptDirectory.from_config(_migrations()).get_current_head()
    with Database(unmigrated) as db:
        with db.read() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head
            assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []
        calls = CallRecords(db, node="node-b")
        assert calls.get("call_old") == CallRecord(
            call_id="call_old",
            key_id="key_old",
            session_label="desk",
            agent_id=None,
            transport="twilio",
            started_at=1.0,
            ended_at=2.0,
            close_code=1000,
            close_reason="caller_hung_up",
            audio_in_seconds=3.5,
            audio_out_seconds=4.5,
            turns=2,
            barge_ins=1,
            node="node-a",
        )
        calls.open(dataclasses.replace(started("call_new"), started_at=3.0, agent_id="agent_desk"))
        assert [(r.call_id, r.agent_id) for r in calls.recent()] == [
            ("call_new", "agent_desk"),
            ("call_old", None),
        ]


def test_a_newer_sqlite_file_of_before_alembic_is_refused(tmp_path: Path) -> None:
    legacy_database(tmp_path / "voxline.db", 3).execute(
        "PRAGMA user_version = 4"
    ).connection.close()
    with pytest.raises(SchemaTooNewError):
        Database(tmp_path / "voxline.db")


def test_a_database_of_a_newer_voxline_is_refused(db: Database) -> None:
    with db.write() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaTooNewError):
        Database(db.url.render_as_string(hide_password=False))


@pytest.mark.e2e
def test_processes_starting_together_migrate_once(postgres_database: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            Database(postgres_database).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Database(postgres_database) as db:
        CallRecords(db).open(started("call_1"))


@pytest.mark.e2e
def test_a_restarted_postgresql_is_reconnected_to() -> None:
    with postgres_server() as server, fresh_database(server.url) as url, Database(url) as db:
        calls = CallRecords(db)
        calls.open(started("call_1"))
        server.stop()
        with pytest.raises(DatabaseUnavailable, match="Connection refused"):
            calls.get("call_1")
        server.start()
        # The pool's connections died with the server: each is checked before use.
        assert calls.get("call_1") == started("call_1")
        calls.open(started("call_2"))


def test_a_failed_write_rolls_back(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write() as conn:
        conn.execute(
            insert(schema.servers).values(
                server_id="s", host="h", pid=1, pid_started_at=0, started_at=0, heartbeat_at=0
            )
        )
        raise RuntimeError("boom")
    with db.read() as conn:
        assert conn.execute(select(schema.servers)).all() == []


def test_a_closed_database_refuses_use(db: Database) -> None:
    db.close()
    db.close()
    with pytest.raises(DatabaseClosedError):
        CallRecords(db).get("call_1")
