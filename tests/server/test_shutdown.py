"""SIGTERM and SIGINT drain the server before the handler they replaced (uvicorn's) runs."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from voxline.server.shutdown import drain_on_signals


@pytest.fixture
def handed_on() -> Iterator[list[int]]:
    """The signals that reached the handler installed before, standing in for uvicorn's."""
    seen: list[int] = []

    def previous(sig: int, frame: FrameType | None) -> None:
        seen.append(sig)

    originals = {sig: signal.signal(sig, previous) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield seen
    for sig, handler in originals.items():
        signal.signal(sig, handler)


async def test_a_signal_drains_first_and_is_then_handed_on(handed_on: list[int]) -> None:
    drained = asyncio.Event()
    release = asyncio.Event()

    async def drain() -> None:
        drained.set()
        await release.wait()

    undo = drain_on_signals(drain)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(drained.wait(), 2)
        assert handed_on == []  # not before the drain is done
        release.set()
        for _ in range(100):
            if handed_on:
                break
            await asyncio.sleep(0.01)
        assert handed_on == [signal.SIGTERM]
    finally:
        undo()
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler) and handler.__name__ == "previous"  # undone


async def test_a_second_signal_during_the_drain_is_handed_on_at_once(
    handed_on: list[int],
) -> None:
    drained = asyncio.Event()

    async def drain() -> None:
        drained.set()
        await asyncio.sleep(10)

    undo = drain_on_signals(drain)
    try:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.wait_for(drained.wait(), 2)
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(0.05)
        assert handed_on == [signal.SIGINT]
    finally:
        undo()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
