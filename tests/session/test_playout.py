"""Agent audio paced to real time with a small lead; what the caller heard."""

import asyncio
import time

import numpy as np

from voxline.session.agent import Speech
from voxline.session.playout import Playout, heard_prefix

RATE = 8000


def test_heard_prefix_cuts_at_a_word_end() -> None:
    text = "hello there my friend"
    assert heard_prefix(text, 1.0) == text
    assert heard_prefix(text, 0.0) == ""
    assert heard_prefix(text, 0.55) == "hello there"
    assert heard_prefix(text, 0.5) == "hello"  # "there" not yet finished
    assert heard_prefix(text, 0.1) == ""


async def test_paced_in_real_time_with_a_small_lead() -> None:
    sent: list[tuple[float, int]] = []

    async def send(pcm: bytes) -> None:
        sent.append((time.monotonic(), len(pcm) // 2))

    playout = Playout(send, RATE, chunk_ms=20, lead_ms=60)
    started = time.monotonic()
    playout.begin()
    playout.enqueue(Speech(np.zeros(RATE // 2, dtype=np.int16), "half a second"))
    playout.close()
    await playout.wait()
    took = time.monotonic() - started
    assert 0.48 <= took < 0.65  # waits until the caller has heard it all
    assert len(sent) == 25 and all(n == 160 for _, n in sent)
    samples = 0  # never more than the lead (plus scheduling slack) ahead of real time
    for t, n in sent:
        ahead = samples / RATE - (t - sent[0][0])
        assert ahead <= 0.06 + 0.005
        samples += n
    assert playout.samples_sent_total == RATE // 2


async def test_interrupt_stops_sending_and_reports_what_was_heard() -> None:
    sent: list[int] = []

    async def send(pcm: bytes) -> None:
        sent.append(len(pcm))

    playout = Playout(send, RATE, chunk_ms=20, lead_ms=40)
    playout.begin()
    playout.enqueue(Speech(np.zeros(RATE, dtype=np.int16), "one two three four five six seven"))
    playout.enqueue(Speech(np.zeros(RATE, dtype=np.int16), "never heard at all"))
    await asyncio.sleep(0.5)
    heard = playout.interrupt()
    count = len(sent)
    await asyncio.sleep(0.1)
    assert len(sent) == count  # nothing after the interrupt
    assert heard.startswith("one two")
    assert "seven" not in heard and "never" not in heard
    assert not playout.active
