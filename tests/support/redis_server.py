"""A real ``redis-server`` for the test session, and state backends to run tests against.

Load it as a plugin: ``pytest_plugins = ["tests.support.redis_server"]``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis

from voxline.bench.process import free_port
from voxline.limits.backend import StateBackend
from voxline.limits.memory import MemoryBackend
from voxline.limits.redis import RedisBackend

_START_TIMEOUT_S = 10.0


def _start(executable: str, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    # The port can be taken between choosing and binding it; the caller retries.
    process = subprocess.Popen(
        [
            executable,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(directory),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(directory / f"redis-{port}.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    deadline = time.monotonic() + _START_TIMEOUT_S
    try:
        while process.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
                return process, url
            except redis.ConnectionError:
                time.sleep(0.02)
    finally:
        client.close()
    _stop(process)
    raise RuntimeError(f"redis-server did not start on port {port}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a private, non-persisting Redis on a loopback port, for the whole session.

    Skips when ``redis-server`` is not installed, except on CI, where it must be.
    """
    executable = shutil.which("redis-server")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    directory = tmp_path_factory.mktemp("redis")
    for attempt in range(3):
        try:
            process, url = _start(executable, directory)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        yield url
    finally:
        _stop(process)


BackendFactory = Callable[[], StateBackend]


@pytest.fixture(params=["memory", "redis"])
async def backend_factory(request: pytest.FixtureRequest) -> AsyncIterator[BackendFactory]:
    """Makes backends that share state, as server processes would: with ``memory``, the
    same in-process backend each time; with ``redis``, a new client each time, all on one
    namespace private to the test."""
    created: list[StateBackend] = []
    if request.param == "memory":
        shared = MemoryBackend()
        created.append(shared)

        def make() -> StateBackend:
            return shared

    else:
        url = request.getfixturevalue("redis_url")
        namespace = f"test-{uuid.uuid4().hex}"

        def make() -> StateBackend:
            backend = RedisBackend(url, namespace=namespace)
            created.append(backend)
            return backend

    yield make
    for backend in created:
        await backend.close()


@pytest.fixture
def backend(backend_factory: BackendFactory) -> StateBackend:
    """A state backend, once in memory and once on a real Redis."""
    return backend_factory()
