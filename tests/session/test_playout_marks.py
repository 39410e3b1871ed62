"""What the caller heard, capped by what the far end reports having played (Twilio marks)."""

import asyncio

import numpy as np

from voxline.session.agent import Speech
from voxline.session.playout import Playout

RATE = 8000


async def test_the_far_ends_reports_cap_the_heard_clock() -> None:
    async def send(pcm: bytes) -> None:
        pass

    playout = Playout(send, RATE)
    playout.begin()
    playout.enqueue(Speech(np.zeros(RATE, dtype=np.int16), "one two three four five six seven"))
    await asyncio.sleep(0.5)
    clock = playout.heard_samples()
    assert clock > 0.4 * RATE
    playout.played(RATE // 10)  # the phone has played only the first 100 ms
    assert playout.heard_samples() == RATE // 10
    playout.played(RATE)  # reports beyond the clock do not make the caller hear ahead of it
    assert clock <= playout.heard_samples() < RATE
    playout.played(0)
    assert playout.interrupt() == ""


async def test_reports_count_from_the_start_of_each_reply() -> None:
    async def send(pcm: bytes) -> None:
        pass

    playout = Playout(send, RATE)
    playout.begin()
    playout.enqueue(Speech(np.zeros(RATE // 5, dtype=np.int16), "first"))
    playout.close()
    await playout.wait()
    playout.played(RATE // 5)  # all of the first reply
    playout.begin()
    playout.enqueue(Speech(np.zeros(RATE, dtype=np.int16), "second reply heard in part"))
    await asyncio.sleep(0.3)
    assert playout.heard_samples() == 0  # nothing of this reply confirmed yet
    playout.played(RATE // 5 + RATE // 4)
    assert playout.heard_samples() == RATE // 4
    playout.interrupt()
