"""The SQLite database holding API keys, agent profiles and call records."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

#: Each entry moves the schema one version up; ``PRAGMA user_version`` records how many ran.
#: Append new migrations, never edit shipped ones.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
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
        # The server processes writing call records (see voxline.store.servers), and which
        # one each call is on, so that a process that starts can close the calls of one
        # that died.
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
        # Stored agent profiles (see voxline.store.agents), and the owner each key acts
        # for: a key sees and uses its owner's agents only.
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

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer voxline than this one."""


class Database:
    """One SQLite connection shared by every thread, serialised by a lock.

    Callers run these methods in worker threads (``asyncio.to_thread``), whose threads come
    and go. One connection behind a lock, rather than one per thread, leaves nothing to leak
    when a pool thread exits, lets :meth:`close` close everything deterministically, and
    costs nothing: SQLite admits one writer at a time anyway, and every statement here is a
    sub-millisecond primary-key or index lookup. WAL mode lets other processes (the CLI, a
    second server) read while this one writes, and the busy timeout makes concurrent writers
    wait instead of failing.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        # Autocommit mode: transactions are begun explicitly in write().
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute(f"PRAGMA busy_timeout = {round(busy_timeout_s * 1000)}")
            self._migrate()
        except BaseException:
            self.close()
            raise

    def _migrate(self) -> None:
        with self.write() as conn:
            # Read inside the write transaction so that two processes starting at once
            # cannot both apply the same migration.
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise SchemaTooNewError(
                    f"{self.path} has schema version {version}; this voxline knows up to "
                    f"{SCHEMA_VERSION}"
                )
            for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("the database is closed")
        return self._conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection, for statements that only read."""
        with self._lock:
            yield self._connection()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """The connection inside a transaction, committed on success, rolled back on error.

        ``BEGIN IMMEDIATE`` takes the write lock up front: a deferred transaction that
        later tries to upgrade from read to write can fail at once with "database is
        locked" whatever the busy timeout.
        """
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                # SQLite may already have rolled back by itself (for example on SQLITE_FULL).
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
