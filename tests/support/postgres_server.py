"""A real, throwaway PostgreSQL server for the test session, and fresh databases on it.

Load it as a plugin: ``pytest_plugins = ["tests.support.postgres_server"]``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
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


@contextlib.contextmanager
def postgres_server(timeout: float = 30.0) -> Iterator[str]:
    """A PostgreSQL server in a temporary directory on a free loopback port, without
    durability (no fsync); the URL of its ``postgres`` database."""
    binaries = _binaries()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed")
        pytest.skip("PostgreSQL is not installed")
    user = _run_as()
    # Not under pytest's temporary directories: as root, those are closed to other users.
    with tempfile.TemporaryDirectory(prefix="voxline-postgres-") as directory:
        data = Path(directory) / "data"
        if user is not None:
            shutil.chown(directory, user)
        subprocess.run(
            [
                binaries / "initdb",
                "--pgdata", data,
                "--username", _USER,
                "--auth", "trust",
                "--encoding", "UTF8",
                "--locale", "C",
                "--no-sync",
            ],
            check=True,
            user=user,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        port = free_port()
        process = subprocess.Popen(
            [
                binaries / "postgres",
                "-D", data,
                "-p", str(port),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "unix_socket_directories=",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
                "-c", "max_connections=200",
            ],
            user=user,
            stdout=subprocess.DEVNULL,
            stderr=(Path(directory) / "server.log").open("wb"),
        )  # fmt: skip
        url = f"postgresql://{_USER}@127.0.0.1:{port}/postgres"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    psycopg.connect(url, connect_timeout=1).close()
                    break
                except psycopg.OperationalError:
                    assert process.poll() is None, "PostgreSQL did not start"
                    assert time.monotonic() < deadline, "PostgreSQL did not start in time"
                    time.sleep(0.05)
            yield url
        finally:
            process.terminate()  # a fast shutdown: connections are cut
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a private PostgreSQL server for the whole session.

    Skips when PostgreSQL is not installed, except on CI, where it must be.
    """
    with postgres_server() as url:
        yield url


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
