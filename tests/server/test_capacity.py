"""A process's connection capacity: its open-file limit raised at start, and a clean 503
beyond ``max_connections`` sockets while the health endpoints keep answering."""

from __future__ import annotations

import asyncio
import resource
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.support.caller import Caller
from tests.support.server import OPEN_LIMITS, RunningServer, run_server
from voxline.server.capacity import default_max_connections, raise_open_file_limit

MAX_CONNECTIONS = 3


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard open-file limit")
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
    try:
        assert raise_open_file_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_default_cap_leaves_descriptors_for_everything_else() -> None:
    assert default_max_connections(1024) < 1024 - 128
    assert default_max_connections(1 << 20) < 1 << 20
    assert default_max_connections(64) >= 16


async def session(server: RunningServer, key: str) -> Caller:
    caller = await Caller.open(server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    await caller.send_control({"type": "configure"})
    await caller.wait_for("hello")
    return caller


async def _once_a_socket_frees(server: RunningServer, key: str) -> Caller:
    """A session, as soon as the server has let go of a closed one (its handler finishes
    the call record first): served again within a few seconds."""
    deadline = time.monotonic() + 5
    while True:
        try:
            return await session(server, key)
        except InvalidStatus:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.e2e
async def test_sockets_beyond_the_cap_get_503_and_health_still_answers(tmp_path: Path) -> None:
    env = {**OPEN_LIMITS, "VOXLINE_MAX_CONNECTIONS": str(MAX_CONNECTIONS)}
    with run_server(tmp_path, env=env) as server:
        key = server.create_key()
        callers = [await session(server, key) for _ in range(MAX_CONNECTIONS)]

        started = time.monotonic()
        with pytest.raises(InvalidStatus) as refused:
            await Caller.open(server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
        assert time.monotonic() - started < 2
        response = refused.value.response
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert b"service_unavailable" in response.body

        async with httpx.AsyncClient(base_url=server.http, timeout=2) as client:
            assert (await client.get("/healthz")).status_code == 200

        await callers.pop().close()
        callers.append(await _once_a_socket_frees(server, key))
        for caller in callers:
            await caller.close()
