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

from voxline.bench.process import free_port, redis_server
from voxline.state.backend import StateBackend
from voxline.state.memory import MemoryBackend
from voxline.state.redis import RedisBackend


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
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


BackendFactory = Callable[[], StateBackend]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.e2e)])
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


class RestartableRedis:
    """A private, non-persisting ``redis-server`` that can be stopped and started again on
    the same port, as a Redis restart or outage looks to its clients: everything it held
    is gone when it returns."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.skip("redis-server is not installed")
        self._process = subprocess.Popen(
            [
                executable,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self._directory),
                "--save", "",
                "--appendonly", "no",
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, "redis-server did not start"
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path)
    server.start()
    yield server
    server.stop()
