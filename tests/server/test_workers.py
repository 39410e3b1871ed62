"""``voxline serve --workers N``: several processes on one port, sharing state through Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from pydantic import ValidationError

from tests.support.api import (
    ORIGIN,
    assert_envelope,
    long_text,
    mint_token,
    open_speech,
    open_with_token,
    scrape,
    seconds_until_admitted,
    speech,
    value,
)
from tests.support.caller import Caller
from tests.support.server import OPEN_LIMITS, RunningServer, run_server
from tests.support.workers import worker_of, worker_of_port, workers_of
from voxline.config import LimitSettings, Settings
from voxline.store.calls import CallRecords
from voxline.store.database import Database

pytestmark = pytest.mark.e2e

WORKERS = 2


@pytest.fixture(scope="module")
def workers_server(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[RunningServer]:
    args = ("--workers", str(WORKERS), "--redis-url", redis_url)
    with run_server(tmp_path_factory.mktemp("workers"), env=OPEN_LIMITS, args=args) as server:
        yield server


async def callers_on_every_worker(
    server: RunningServer, key: str, *, in_query: bool = False
) -> dict[int, list[Caller]]:
    """Open sessions, the key in a subprotocol (or ``?api_key=``), until each worker holds
    at least one."""
    held: dict[int, list[Caller]] = {}
    for _ in range(60):
        if in_query:
            caller = await Caller.open(f"{server.ws}?api_key={key}")
        else:
            caller = await Caller.open(server.ws, subprotocols=[f"pyai-key.{key}"])
        await caller.wait_for("hello")
        held.setdefault(worker_of(server, caller), []).append(caller)
        if len(held) == WORKERS:
            return held
    raise AssertionError(f"60 sessions all landed on {list(held)}")


async def wait_for(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


@pytest.fixture
def key(workers_server: RunningServer) -> str:
    return workers_server.create_key(scopes=("omni:session", "calls:read"))


def test_several_workers_need_a_shared_state_backend(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="workers above 1 need redis_url"):
        Settings(workers=2)
    result = subprocess.run(
        [sys.executable, "-m", "voxline", "serve", "--workers", "2", "--agent", "echo"],
        env={**os.environ, "VOXLINE_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "workers above 1 need redis_url" in result.stderr


async def test_metrics_and_call_records_cover_every_worker(
    workers_server: RunningServer, key: str
) -> None:
    held = await callers_on_every_worker(workers_server, key)
    callers = [c for group in held.values() for c in group]
    # Each worker knows only its own sessions: every answer adds them all up.
    for _ in range(8):
        assert value(await scrape(workers_server), "voxline_active_sessions") == len(callers)
    call_ids = {c.got.first("hello")["call_id"] for c in callers}
    for caller in callers:
        await caller.send_control({"type": "session_ending"})
        assert (await caller.closed()).close_code == 1000

    async def all_recorded() -> bool:
        async with httpx.AsyncClient(base_url=workers_server.http) as client:
            response = await client.get(
                "/v1/calls?limit=1000", headers={"Authorization": f"Bearer {key}"}
            )
        finished = {r["call_id"] for r in response.json()["data"] if r["ended_at"] is not None}
        return call_ids <= finished

    await wait_for(all_recorded, "every worker's call records")
    samples = await scrape(workers_server)
    assert value(samples, "voxline_active_sessions") == 0
    assert value(samples, "voxline_sessions_total", close_code="1000") >= len(callers)


async def test_no_worker_logs_a_secret(workers_server: RunningServer, key: str) -> None:
    held = await callers_on_every_worker(workers_server, key, in_query=True)
    for callers in held.values():
        for caller in callers:
            await caller.close()
    await asyncio.sleep(0.3)  # the workers' access log lines
    log = workers_server.log()
    assert log.count(f"api_key={key[:10]}...[redacted]") >= WORKERS
    assert key not in log


async def test_a_browser_token_is_one_session_across_workers(
    workers_server: RunningServer, key: str
) -> None:
    token = (await mint_token(workers_server, key))["token"]
    first = await open_with_token(workers_server, token)
    await first.wait_for("hello")
    home = worker_of(workers_server, first)
    # The same token on the other worker is refused: the token's session is in Redis.
    for _ in range(60):
        again = await Caller.open(
            workers_server.ws, subprotocols=["pyai.v1", f"pyai-key.{token}"], origin=ORIGIN
        )
        elsewhere = worker_of(workers_server, again) != home
        await again.send_control({"type": "configure"})
        refusal = await again.wait_for("error")
        assert refusal["code"] == "concurrency_limit_exceeded"
        assert (await again.closed()).close_code == 4429
        if elsewhere:
            break
    else:
        raise AssertionError("60 connections all landed on the first session's worker")
    await first.close()


async def test_a_keys_speech_requests_under_way_are_capped_across_workers(
    workers_server: RunningServer,
) -> None:
    cap = LimitSettings().max_http_audio_requests_per_key
    key = workers_server.create_key(scopes=("speak:synthesize",))

    def home(response: httpx.Response) -> int:
        _, port = response.extensions["network_stream"].get_extra_info("client_addr")
        return worker_of_port(workers_server, port)

    async with httpx.AsyncClient(base_url=workers_server.http, timeout=120) as client:
        streams = [await open_speech(client, key, long_text(f"w-{n}")) for n in range(cap)]
        for attempt in range(30):
            if len({home(stream) for stream in streams}) == WORKERS:
                break
            await streams.pop().aclose()
            await seconds_until_admitted(client, key, within=10)  # its slot is back
            streams.append(await open_speech(client, key, long_text(f"w-again-{attempt}")))
        else:
            raise AssertionError(f"30 tries all landed {cap} requests on one worker")
        # Each worker holds fewer than the cap itself, yet the key is refused.
        refused = await speech(client, key, "One too many.")
        assert refused.status_code == 429, f"answered {refused.status_code}"
        assert_envelope(refused, 429, "concurrency_limit_exceeded", "rate_limit_error")
        for stream in streams:
            assert len(await stream.aread()) > 0
            await stream.aclose()
        await seconds_until_admitted(client, key, within=5)


async def test_a_worker_that_dies_is_replaced_and_its_sessions_no_longer_count(
    workers_server: RunningServer, key: str
) -> None:
    held = await callers_on_every_worker(workers_server, key)
    victim, survivor = sorted(held, key=lambda pid: len(held[pid]))
    orphans = psutil.Process(victim).children()  # its voice activity detection process
    assert orphans
    os.kill(victim, signal.SIGKILL)

    async def replaced() -> bool:
        pids = {w.pid for w in workers_of(workers_server)}
        return len(pids) == WORKERS and victim not in pids

    await wait_for(replaced, "a replacement worker")

    async def counted_right() -> bool:
        samples = await scrape(workers_server)
        return value(samples, "voxline_active_sessions") == len(held[survivor])

    await wait_for(counted_right, "the dead worker's sessions to drop out of the count")

    async def orphans_gone() -> bool:
        return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in orphans)

    await wait_for(orphans_gone, "the dead worker's child process to leave", timeout=10)
    for caller in held[victim]:
        assert (await caller.closed()).close_code == 1006

    async def victims_closed() -> bool:
        with Database(workers_server.data_dir / "voxline.db") as db:
            calls = CallRecords(db)
            lost = [calls.get(c.got.first("hello")["call_id"]) for c in held[victim]]
        return all(r is not None and r.close_reason == "server_lost" for r in lost)

    # Its replacement, starting, closes the records it left open.
    await wait_for(victims_closed, "the dead worker's calls to be closed as server_lost")
    # The survivor's sessions were not disturbed, and new callers are served.
    for caller in held[survivor]:
        await caller.send_control({"type": "dtmf", "digit": "5"})
        assert (await caller.wait_for("dtmf"))["digit"] == "5"
        await caller.close()
    newcomer = await Caller.open(workers_server.ws, subprotocols=[f"pyai-key.{key}"])
    await newcomer.wait_for("hello")
    await newcomer.close()


def test_stopping_the_server_ends_every_workers_sessions(tmp_path: Path, redis_url: str) -> None:
    async def run(server: RunningServer) -> set[str]:
        key = server.create_key()
        held = await callers_on_every_worker(server, key)
        callers = [c for group in held.values() for c in group]
        streams = [asyncio.create_task(c.silence(5)) for c in callers]
        await asyncio.sleep(0.5)
        server.process.terminate()
        for caller in callers:
            got = await caller.closed(timeout=10)
            assert got.first("session_end")["reason"] == "server_shutdown"
            assert got.close_code == 1001
        for stream in streams:
            stream.cancel()
        return {c.got.first("hello")["call_id"] for c in callers}

    args = ("--workers", str(WORKERS), "--redis-url", redis_url)
    with run_server(tmp_path / "data", env=OPEN_LIMITS, args=args) as server:
        call_ids = asyncio.run(run(server))
        server.process.wait(timeout=15)
    with Database(server.data_dir / "voxline.db") as db:
        records = [CallRecords(db).get(call_id) for call_id in call_ids]
    assert all(r is not None and r.ended_at is not None for r in records)
    assert all(r is not None and r.close_code == 1001 for r in records)
    assert all(r is not None and r.close_reason == "server_shutdown" for r in records)
