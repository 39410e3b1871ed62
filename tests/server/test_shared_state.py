"""Several server processes behind one load balancer: limits and browser tokens are shared.

The deployment exercised is the one the storage is built for: processes on one host share
one data directory, so one SQLite file holds the keys and call records (WAL mode lets them
all read and write it), and one Redis holds the state that changes per connection:
concurrency leases, connect rates and browser tokens. Separate data directories would not
make a cluster: a key is known by an id its own database assigns, so two databases never
agree on which key a limit or a token belongs to.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.api import ORIGIN
from tests.support.caller import Caller
from tests.support.server import OPEN_LIMITS, RunningServer, run_server

pytestmark = pytest.mark.e2e

CONNECTS_PER_MINUTE_PER_KEY = 3


@dataclass
class Cluster:
    a: RunningServer
    b: RunningServer


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Cluster]:
    """Two ``voxline serve`` processes on one data directory and one Redis, started at once
    as a service manager would start them."""
    data_dir = tmp_path_factory.mktemp("cluster")
    env = {
        **OPEN_LIMITS,
        "VOXLINE_LIMITS_CONNECTS_PER_MINUTE_PER_KEY": str(CONNECTS_PER_MINUTE_PER_KEY),
    }
    with ExitStack() as stack, ThreadPoolExecutor(2) as pool:
        starting = [
            pool.submit(
                stack.enter_context, run_server(data_dir, env=env, args=("--redis-url", redis_url))
            )
            for _ in range(2)
        ]
        a, b = (future.result() for future in starting)
        yield Cluster(a, b)


async def open_session(url: str, credential: str, **kwargs: Any) -> Caller:
    caller = await Caller.open(url, subprotocols=["pyai.v1", f"pyai-key.{credential}"], **kwargs)
    # Clients configure at once; the server then needs no wait for a first frame.
    await caller.send_control({"type": "configure"})
    return caller


async def admitted(url: str, credential: str, **kwargs: Any) -> Caller:
    caller = await open_session(url, credential, **kwargs)
    await caller.wait_for("hello")
    return caller


async def refused(url: str, credential: str, **kwargs: Any) -> tuple[int | None, dict[str, Any]]:
    caller = await open_session(url, credential, **kwargs)
    event = await caller.wait_for("error", timeout=5)
    got = await caller.closed()
    assert got.names() == ["error"]
    return got.close_code, event


async def call_ended(server: RunningServer, reader: str, call_id: str) -> dict[str, Any]:
    """The record of ``call_id`` through ``server``'s API, once its session has ended."""
    await server.finished_call(call_id)
    async with httpx.AsyncClient(base_url=server.http) as client:
        response = await client.get(
            f"/v1/calls/{call_id}", headers={"Authorization": f"Bearer {reader}"}
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_both_processes_are_ready_on_the_shared_backend(cluster: Cluster) -> None:
    async with httpx.AsyncClient() as client:
        for server in (cluster.a, cluster.b):
            response = await client.get(f"{server.http}/readyz")
            assert response.json() == {
                "ready": True,
                "checks": {"database": True, "state_backend": True, "accepting_sessions": True},
            }


async def test_key_concurrency_is_shared(cluster: Cluster) -> None:
    key = cluster.a.create_key(concurrency=1)
    reader = cluster.a.create_key(scopes=("calls:read_all",))
    on_a = await admitted(cluster.a.ws, key)
    call_id = on_a.got.first("hello")["call_id"]
    code, event = await refused(cluster.b.ws, key)
    assert (code, event["code"]) == (4429, "concurrency_limit_exceeded")

    await on_a.close()
    # A releases the slot before it completes the call record (which B can serve).
    record = await call_ended(cluster.b, reader, call_id)
    assert (record["call_id"], record["close_code"]) == (call_id, 1000)
    on_b = await admitted(cluster.b.ws, key)
    await on_b.close()


async def test_a_token_minted_on_one_process_works_on_another(cluster: Cluster) -> None:
    key = cluster.a.create_key()
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{cluster.a.http}/v1/omni/sessions",
            json={"allowed_origins": [ORIGIN]},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 200, response.text
    token = response.json()["token"]

    on_b = await admitted(cluster.b.ws, token, origin=ORIGIN)
    await on_b.send_control({"type": "dtmf", "digit": "5"})
    assert (await on_b.wait_for("dtmf"))["digit"] == "5"
    # The token's one session is held on B, so A refuses a second one.
    code, event = await refused(cluster.a.ws, token, origin=ORIGIN)
    assert (code, event["code"]) == (4429, "concurrency_limit_exceeded")
    # And the origin lock holds on every process.
    code, event = await refused(cluster.a.ws, token, origin="https://evil.example.com")
    assert (code, event["code"]) == (4403, "origin_not_allowed")
    await on_b.close()


async def test_the_connect_rate_is_shared(cluster: Cluster) -> None:
    key = cluster.a.create_key()
    # Alternating, each process sees fewer connects than the limit, the pair more.
    for server in (cluster.a, cluster.b, cluster.a):
        caller = await admitted(server.ws, key)
        await caller.close()
    code, event = await refused(cluster.b.ws, key)
    assert (code, event["code"]) == (4429, "rate_limit_exceeded")
    interval = 60 / CONNECTS_PER_MINUTE_PER_KEY
    assert interval - 5 <= event["retry_after"] <= interval
