"""The database holding API keys, agent profiles and call records: an SQLite file (the
embedded default) or a PostgreSQL server shared by several nodes, with one schema
(:mod:`voxline.store.schema`) and one migration history (:mod:`voxline.store.migrations`,
run by Alembic) for both.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

#: Before Alembic, ``PRAGMA user_version`` counted the migrations an SQLite file had run;
#: revision ``000N`` is the schema of version N, so such a file is stamped with it and
#: upgraded from there. Migrating sets ``user_version`` to the head's number, so that a
#: voxline of that time refuses a file it no longer knows.
LEGACY_VERSIONS: Final = 3
#: Serialises migrations of processes starting together on one PostgreSQL database.
_MIGRATION_LOCK: Final = 0x766F786C696E65  # "voxline"


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer voxline than this one."""


class DatabaseUnavailable(Exception):
    """The database cannot be reached or used now (PostgreSQL down or restarting, an
    SQLite file locked past the busy timeout): worth retrying later, unlike a bad query."""


class DatabaseClosedError(RuntimeError):
    """The database was closed."""


def database_url(target: str | Path) -> URL:
    """The SQLAlchemy URL of ``target``: an SQLite file's path, or a ``sqlite:///`` or
    ``postgresql://`` URL (driven by psycopg 3); ``ValueError`` for anything else."""
    if isinstance(target, Path):
        return URL.create("sqlite", database=str(target))
    url = make_url(target)
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and url.database not in (None, "", ":memory:"):
        return url.set(drivername="sqlite")
    raise ValueError("the database is an SQLite file (sqlite:///PATH) or postgresql://…")


class Database:
    """The store's engine: connections for reading (:meth:`read`) and writing
    (:meth:`write`), taken by blocking methods that callers run in worker threads
    (``asyncio.to_thread``).

    SQLite: one connection shared by every thread, serialised by a lock, as SQLite admits
    one writer at a time anyway and every statement here is a sub-millisecond primary-key
    or index lookup; waiting on the lock costs nothing where contending for the file's
    lock would sleep in SQLite's busy handler, and a pool's checkout would cost a call's
    record more than its statements do. WAL mode lets other processes (the
    CLI, a second server) read while this one writes, and the busy timeout makes
    concurrent writers wait instead of failing. PostgreSQL: a pool of connections, checked
    before use so that a restarted server is reconnected to, not failed on.
    """

    def __init__(self, target: str | Path, *, busy_timeout_s: float = 5.0) -> None:
        self.url = database_url(target)
        self._closed = False
        self._lock = threading.Lock()
        self._shared: Connection | None = None
        if self.sqlite:
            assert self.url.database is not None
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            self._engine = create_engine(
                self.url,
                connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
            )
            _sqlite_setup(self._engine, busy_timeout_s)
        else:
            self._engine = create_engine(
                self.url,
                pool_size=5,
                max_overflow=10,
                pool_pre_ping=True,
                connect_args={"connect_timeout": 5, "application_name": "voxline"},
            )
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    @property
    def sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def _migrate(self) -> None:
        with self.write() as conn:
            # Inside one write transaction, so that two processes starting at once cannot
            # both apply the same migration.
            if not self.sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK})
            config = _alembic_config(conn)
            scripts = _scripts()
            current = MigrationContext.configure(conn).get_current_revision()
            if current is None and self.sqlite:
                current = self._stamp_legacy(conn, config)
            if current is not None and current not in _known(scripts):
                raise SchemaTooNewError(
                    f"{self.url.render_as_string(hide_password=True)} has schema revision "
                    f"{current}; this voxline knows up to {scripts.get_current_head()}"
                )
            if current != scripts.get_current_head():
                command.upgrade(config, "head")
            if self.sqlite:
                conn.exec_driver_sql(f"PRAGMA user_version = {_number(scripts)}")

    def _stamp_legacy(self, conn: Connection, config: Config) -> str | None:
        """The revision of an SQLite file migrated before Alembic, stamped into it."""
        version = conn.exec_driver_sql("PRAGMA user_version").scalar_one()
        if version == 0:
            return None
        if version > LEGACY_VERSIONS:
            raise SchemaTooNewError(
                f"{self.url.database} has schema version {version} and no revision this "
                "voxline knows"
            )
        revision = f"{version:04d}"
        command.stamp(config, revision)
        return revision

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        try:
            with self._checked_out() as conn:
                yield conn
        except OperationalError as exc:
            raise DatabaseUnavailable(str(exc.orig or exc).splitlines()[0]) from exc

    @contextmanager
    def _checked_out(self) -> Iterator[Connection]:
        if self._closed:
            raise DatabaseClosedError("the database is closed")
        if not self.sqlite:
            with self._engine.connect() as conn:
                yield conn
            return
        with self._lock:
            if self._closed:
                raise DatabaseClosedError("the database is closed")
            if self._shared is None:
                self._shared = self._engine.connect()
            try:
                yield self._shared
            finally:
                if self._shared.in_transaction():  # a read's, begun by SQLAlchemy
                    self._shared.rollback()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for statements that only read."""
        with self._connection() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection inside a transaction, committed on success, rolled back on error.

        On SQLite, ``BEGIN IMMEDIATE`` takes the write lock up front: a deferred
        transaction that later upgrades from read to write can fail at once with "database
        is locked" whatever the busy timeout. It goes to the driver's connection directly:
        a ``begin`` event listener would slow every statement of the engine, and a
        statement through SQLAlchemy costs more than this one's work.
        """
        with self._connection() as conn, conn.begin():
            if self.sqlite:
                conn.connection.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
            yield conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._shared is not None:
                self._shared.close()
                self._shared = None
        self._engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _sqlite_setup(engine: Engine, busy_timeout_s: float) -> None:
    """Each new SQLite connection: WAL, and transactions begun by :meth:`Database.write`
    alone (Python's driver would begin its own, deferred, before a write; see SQLAlchemy's
    notes on pysqlite), so that reads run outside any, as single statements."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute(f"PRAGMA busy_timeout = {round(busy_timeout_s * 1000)}")
        cursor.close()


@functools.cache
def _scripts() -> ScriptDirectory:
    """The migrations, read once per process."""
    return ScriptDirectory.from_config(_alembic_config())


def _alembic_config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "voxline.store:migrations")
    config.attributes["connection"] = conn
    return config


def _known(scripts: ScriptDirectory) -> set[str]:
    return {script.revision for script in scripts.walk_revisions()}


def _number(scripts: ScriptDirectory) -> int:
    head = scripts.get_current_head()
    assert head is not None
    return int(head)
