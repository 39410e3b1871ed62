"""How fast a caller may send: the budgets, and a paced caller stream."""

from __future__ import annotations

import pytest

from voxline.session.caller_audio import CallerStream
from voxline.session.pacing import AUDIO_BURST_SECONDS, AUDIO_RATE, Budget

RATE = 16000
FRAME = bytes(2 * RATE // 50)  # 20 ms


def test_a_budget_spends_its_burst_then_refills_with_the_clock() -> None:
    budget = Budget(rate=1.5, burst=2.0, now=0.0)
    assert budget.spend(2.0, now=0.0)
    assert not budget.spend(0.1, now=0.0)
    assert budget.spend(1.5, now=1.0)
    assert not budget.spend(0.1, now=1.0)
    assert budget.spend(2.0, now=100.0)  # never more than the burst
    assert not budget.spend(0.1, now=100.0)


@pytest.mark.parametrize(("factor", "kept"), [(1.0, True), (AUDIO_RATE * 0.9, True), (3.0, False)])
def test_audio_is_taken_up_to_its_pace(factor: float, kept: bool) -> None:
    """Ten seconds of frames, each sent at its due time at ``factor`` times real time."""
    budget = Budget(AUDIO_RATE, AUDIO_BURST_SECONDS, now=0.0)
    accepted = all(budget.spend(0.02, now=index * 0.02 / factor) for index in range(500))
    assert accepted is kept


def test_a_paced_stream_drops_a_flood_and_says_so() -> None:
    stream = CallerStream(RATE, paced=True)
    taken = sum(stream.append(FRAME) for _ in range(50 * 10))  # 10 s of audio at once
    assert stream.overrun
    assert taken <= 50 * AUDIO_BURST_SECONDS + 5
    assert stream.samples == taken * len(FRAME) // 2


def test_an_unpaced_stream_takes_audio_as_fast_as_it_comes() -> None:
    """Offline evaluation feeds whole clips at once."""
    stream = CallerStream(RATE)
    assert all(stream.append(FRAME) for _ in range(50 * 10))
    assert not stream.overrun
