"""Two nodes, each its own ``voxline serve`` with its own data directory, sharing one
PostgreSQL (keys, agents, call records) and one Redis (limits, tokens): a key made for
one admits callers on both, its revocation ends them on both, its concurrency limit holds
across both, each lists every call, and the calls of a node that dies are closed as lost
by the other and their seats freed."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.support.api import get
from tests.support.caller import Caller
from tests.support.keys import create_key_with_cli
from tests.support.postgres_server import fresh_database
from tests.support.server import OPEN_LIMITS, RunningServer, run_server
from voxline.server.services import PRESENCE_INTERVAL_S, PRESENCE_TTL_S
from voxline.store.calls import CallRecords
from voxline.store.database import Database

pytestmark = pytest.mark.e2e


@contextmanager
def two_nodes(directory: Path, database_url: str, redis_url: str) -> Iterator[list[RunningServer]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                run_server(
                    directory / name,
                    env=OPEN_LIMITS,
                    args=("--redis-url", redis_url, "--node", name),
                    database_url=database_url,
                )
            )
            for name in ("node-a", "node-b")
        ]


@pytest.fixture(scope="module")
def database_url(postgres_url: str) -> Iterator[str]:
    with fresh_database(postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
def nodes(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_url: str
) -> Iterator[list[RunningServer]]:
    with two_nodes(tmp_path_factory.mktemp("nodes"), database_url, redis_url) as servers:
        yield servers


def new_key(
    database_url: str, nodes: list[RunningServer], *scopes: str, concurrency: int | None = None
) -> tuple[str, str]:
    return create_key_with_cli(
        database_url,
        servers=[node.data_dir for node in nodes],
        scopes=scopes or ("omni:session",),
        concurrency=concurrency,
    )


async def call(node: RunningServer, secret: str) -> Caller:
    caller = await Caller.open(node.ws, subprotocols=["pyai.v1", f"pyai-key.{secret}"])
    await caller.send_control({"type": "configure"})
    return caller


async def admitted(node: RunningServer, secret: str) -> tuple[Caller, str]:
    caller = await call(node, secret)
    return caller, (await caller.wait_for("hello"))["call_id"]


async def refused(node: RunningServer, secret: str) -> str:
    """The code of the error that refuses a session on ``node``."""
    caller = await call(node, secret)
    error = await caller.wait_for("error")
    await caller.closed()
    return str(error["code"])


async def test_a_key_made_for_one_node_admits_callers_on_both(
    nodes: list[RunningServer], database_url: str
) -> None:
    _, secret = new_key(database_url, nodes)
    for node in nodes:
        caller, _ = await admitted(node, secret)
        await caller.close()


async def test_revoking_a_key_ends_its_calls_on_every_node(
    nodes: list[RunningServer], database_url: str
) -> None:
    key_id, secret = new_key(database_url, nodes)
    callers = [(await admitted(node, secret))[0] for node in nodes]
    streams = [asyncio.create_task(caller.silence(10)) for caller in callers]
    revoke = [sys.executable, "-m", "voxline", "keys", "revoke", key_id]
    await asyncio.to_thread(
        subprocess.run, [*revoke, "--database-url", database_url], check=True, capture_output=True
    )
    revoked = time.monotonic()
    for caller in callers:
        got = await caller.closed(timeout=8)
        assert got.close_code == 4401
        assert got.first("session_end")["reason"] == "key_revoked"
        assert got.when("session_end") - revoked < 5
    for stream in streams:
        stream.cancel()
    assert await refused(nodes[1], secret) == "unauthorized"


async def test_a_keys_concurrency_holds_across_nodes(
    nodes: list[RunningServer], database_url: str
) -> None:
    _, secret = new_key(database_url, nodes, concurrency=1)
    first, _ = await admitted(nodes[0], secret)
    assert await refused(nodes[1], secret) == "concurrency_limit_exceeded"
    await first.close()
    await asyncio.sleep(0.3)  # the seat is given back as the session ends
    second, _ = await admitted(nodes[1], secret)
    assert await refused(nodes[0], secret) == "concurrency_limit_exceeded"
    await second.close()


async def test_every_node_lists_every_nodes_calls(
    nodes: list[RunningServer], database_url: str
) -> None:
    _, secret = new_key(database_url, nodes)
    _, reader = new_key(database_url, nodes, "calls:read_all")
    served = {}
    for node in nodes:
        caller, call_id = await admitted(node, secret)
        await caller.close()
        served[call_id] = node.data_dir.name
    for node in nodes:
        listing = (await get(node, "/v1/calls?limit=1000", reader)).json()["data"]
        assert {r["call_id"]: r["node"] for r in listing if r["call_id"] in served} == served
        for call_id, name in served.items():
            record = (await get(node, f"/v1/calls/{call_id}", reader)).json()
            assert record["node"] == name


async def test_the_calls_of_a_node_that_dies_are_lost_and_their_seats_freed(
    tmp_path: Path, postgres_database: str, redis_url: str
) -> None:
    with two_nodes(tmp_path, postgres_database, redis_url) as (survivor, victim):
        _, secret = new_key(postgres_database, [survivor, victim], concurrency=1)
        caller, call_id = await admitted(victim, secret)
        streaming = asyncio.create_task(caller.silence(60))
        await recorded(postgres_database, call_id)  # written beside the session's start
        victim.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        victim.process.wait(timeout=10)
        assert (await caller.closed()).close_code == 1006
        streaming.cancel()

        # The survivor looks for the calls of processes that are gone every 10 s.
        record = await survivor.finished_call(call_id, timeout=15)
        assert (record.close_code, record.close_reason) == (1006, "server_lost")
        assert record.node == "node-b"
        # The dead node's seat is freed once it is not heard of for PRESENCE_TTL_S (its
        # lease would have lasted 30 s), and the key's one session can be had again.
        deadline = killed + PRESENCE_TTL_S + 2 * PRESENCE_INTERVAL_S
        while (outcome := await refused_or_admitted(survivor, secret)) != "admitted":
            assert outcome == "concurrency_limit_exceeded"
            assert time.monotonic() < deadline, "the dead node's seat was not freed in time"
            await asyncio.sleep(0.5)
        with Database(postgres_database) as db:
            assert CallRecords(db).get(call_id) == record


async def test_every_node_sees_every_node(nodes: list[RunningServer], database_url: str) -> None:
    _, secret = new_key(database_url, nodes)
    _, operator = new_key(database_url, nodes, "server:read")
    caller, _ = await admitted(nodes[0], secret)
    try:
        for node in nodes:
            deadline = time.monotonic() + 2 * PRESENCE_INTERVAL_S + 1
            while True:
                listing = (await get(node, "/admin/nodes", operator)).json()["data"]
                sessions = {n["node"]: n["sessions"] for n in listing}
                if sessions == {"node-a": 1, "node-b": 0} or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert sessions == {"node-a": 1, "node-b": 0}
            assert all(len(n["processes"]) == 1 and not n["draining"] for n in listing)
            metrics = (await get(node, "/metrics")).text
            assert f'voxline_active_sessions{{node="{node.data_dir.name}"}}' in metrics
    finally:
        await caller.close()
    assert (await get(nodes[0], "/admin/nodes", secret)).status_code == 403


async def recorded(database_url: str, call_id: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    with Database(database_url) as db:
        while CallRecords(db).get(call_id) is None:
            assert time.monotonic() < deadline, f"{call_id} was never recorded"
            await asyncio.sleep(0.05)


async def refused_or_admitted(node: RunningServer, secret: str) -> str:
    caller = await call(node, secret)
    deadline = time.monotonic() + 5
    while not caller.got.events:
        assert time.monotonic() < deadline, "neither hello nor an error"
        await asyncio.sleep(0.01)
    await caller.close()
    name = caller.got.names()[0]
    return "admitted" if name == "hello" else str(caller.got.first("error")["code"])
