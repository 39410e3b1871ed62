"""Callers who send too much, against a real server: each is stopped, memory stays bounded,
and a caller alongside is served as usual."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import psutil
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.caller import Caller
from tests.support.server import OPEN_LIMITS, RunningServer, run_server

pytestmark = pytest.mark.e2e

FLOOD_SECONDS = 10.0
FLOODERS = 3
MIB = 1024 * 1024


def _rss(pid: int) -> int:
    """Resident memory of the server and its children (the VAD process)."""
    process = psutil.Process(pid)
    return process.memory_info().rss + sum(
        child.memory_info().rss for child in process.children(recursive=True)
    )


async def _flood(server: RunningServer) -> tuple[int | None, str | None, list[str], float]:
    """Send 32 KiB of loud noise per message as fast as the socket takes it, for at most
    ten seconds; the close code, the error codes received, and how long until the close."""
    caller = await Caller.open(server.ws, subprotocols=[f"pyai-key.{server.create_key()}"])
    noise = np.random.default_rng(7).integers(-8000, 8000, 16 * 1024, dtype=np.int16)
    frame = noise.tobytes()
    start = time.monotonic()
    try:
        while time.monotonic() - start < FLOOD_SECONDS:
            await caller.send_pcm(frame)
    except ConnectionClosed:
        pass
    got = await caller.closed(timeout=FLOOD_SECONDS)
    errors = [str(event.get("code")) for _, event in got.events if event["event"] == "error"]
    return got.close_code, got.close_reason, errors, time.monotonic() - start


async def test_audio_floods_are_closed_and_a_caller_alongside_is_answered(
    tmp_path: Path, question: npt.NDArray[np.int16]
) -> None:
    with run_server(tmp_path, env=OPEN_LIMITS) as server:
        healthy = await Caller.open(server.ws, subprotocols=[f"pyai-key.{server.create_key()}"])
        await healthy.wait_for("hello")
        before = _rss(server.process.pid)
        peak = before
        flooding = [asyncio.create_task(_flood(server)) for _ in range(FLOODERS)]

        async def watch() -> None:
            nonlocal peak
            while not all(task.done() for task in flooding):
                peak = max(peak, _rss(server.process.pid))
                await asyncio.sleep(0.2)

        watching = asyncio.create_task(watch())
        await healthy.silence(0.3)
        await healthy.stream(question)
        await healthy.silence_until(lambda got: "turn_begin" in got.names(), timeout=10)
        floods = await asyncio.gather(*flooding)
        await watching
        await healthy.close()
    for code, reason, errors, seconds in floods:
        assert (code, reason) == (4429, "audio_too_fast")
        assert errors == ["rate_limit_exceeded"]
        assert seconds < 2.0
    assert (peak - before) / MIB < 150
