"""A real ``redis-server`` for the test session, and state backends to run tests against.

Load it as a plugin: ``pytest_plugins = ["tests.support.redis_server"]``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from voxline.bench.process import redis_server
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
