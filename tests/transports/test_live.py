"""The live calls of a process: a drain ends every one, and any that arrives during it."""

from __future__ import annotations

import asyncio

from voxline.transports.live import LiveCalls


class FakeSession:
    def __init__(self) -> None:
        self.ended: list[tuple[str, int]] = []

    async def end(self, reason: str, *, code: int = 1000) -> None:
        self.ended.append((reason, code))


async def test_a_drain_ends_every_session_and_waits_for_their_records() -> None:
    live = LiveCalls()
    sessions = [FakeSession() for _ in range(3)]
    for session in sessions:
        await live.enter(session)  # type: ignore[arg-type]

    async def records_finished() -> None:
        await asyncio.sleep(0.1)
        for session in sessions:
            live.leave(session)  # type: ignore[arg-type]

    finishing = asyncio.create_task(records_finished())
    assert await live.drain("server_shutdown", code=1001, grace_s=5) == 0
    await finishing
    assert all(s.ended == [("server_shutdown", 1001)] for s in sessions)

    late = FakeSession()
    await live.enter(late)  # type: ignore[arg-type]
    assert late.ended == [("server_shutdown", 1001)]


async def test_a_drain_gives_up_after_the_grace_period() -> None:
    live = LiveCalls()
    await live.enter(FakeSession())  # type: ignore[arg-type]
    started = asyncio.get_running_loop().time()
    assert await live.drain("server_shutdown", code=1001, grace_s=0.2) == 1
    assert asyncio.get_running_loop().time() - started < 1
