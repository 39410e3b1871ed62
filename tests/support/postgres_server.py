"""A real, throwaway PostgreSQL server for the test session, and fresh databases on it.

Load it as a plugin: ``pytest_plugins = ["tests.support.postgres_server"]``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from voxline.bench.process import free_port

#: The superuser of the test server: trusted on loopback, no password.
_USER = "voxline"


def _binaries() -> Path | None:
    """The directory of ``initdb`` and ``postgres``: on the PATH, else Debian's newest."""
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).parent
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    return installed[-1].parent if installed else None


def _run_as() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as its own system user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres").pw_name
    except KeyError:
        pytest.skip("running as root and there is no postgres user to run PostgreSQL as")


class PostgresServer:
    """A PostgreSQL server of its own in a temporary directory, on a free loopback port,
    without durability (no fsync). It can be stopped and started again on the same port
    with its data, as a restart looks to its clients."""

    def __init__(self) -> None:
        binaries = _binaries()
        if binaries is None:
            if os.environ.get("CI"):
                pytest.fail("PostgreSQL is not installed")
            pytest.skip("PostgreSQL is not installed")
        self._binaries = binaries
        self._user = _run_as()
        # Not under pytest's temporary directories: as root, those are closed to others.
        self._directory = tempfile.TemporaryDirectory(prefix="voxline-postgres-")
        root = Path(self._directory.name)
        if self._user is not None:
            shutil.chown(root, self._user)
        self._data = root / "data"
        self._log = root / "server.log"
        subprocess.run(
            [
                binaries / "initdb",
                "--pgdata", self._data,
                "--username", _USER,
                "--auth", "trust",
                "--encoding", "UTF8",
                "--locale", "C",
                "--no-sync",
            ],
            check=True,
            user=self._user,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.port = free_port()
        #: The URL of its ``postgres`` database.
        self.url = f"postgresql://{_USER}@127.0.0.1:{self.port}/postgres"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    self._binaries / "postgres",
                    "-D", self._data,
                    "-p", str(self.port),
                    "-c", "listen_addresses=127.0.0.1",
                    "-c", "unix_socket_directories=",
                    "-c", "fsync=off",
                    "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off",
                    "-c", "max_connections=200",
                ],
                user=self._user,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                assert self._process.poll() is None, f"PostgreSQL did not start: {self.log()}"
                assert time.monotonic() < deadline, "PostgreSQL did not start in time"
                time.sleep(0.05)

    def stop(self) -> None:
        """A fast shutdown: its clients' connections are cut."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def log(self) -> str:
        return self._log.read_text(errors="replace")

    def close(self) -> None:
        self.stop()
        self._directory.cleanup()


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A running :class:`PostgresServer`, removed after."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a private PostgreSQL server for the whole session.

    Skips when PostgreSQL is not installed, except on CI, where it must be.
    """
    with postgres_server() as server:
        yield server.url


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``server_url``; its URL. Dropped after."""
    name = f"test_{uuid.uuid4().hex}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty database of its own for the test."""
    with fresh_database(postgres_url) as url:
        yield url
