"""The caller's recent audio, cut out by stream time."""

import numpy as np

from voxline.session.caller_audio import CallerAudio


def _pcm(start: int, count: int) -> bytes:
    return np.arange(start, start + count, dtype="<i2").tobytes()


def test_between_is_addressed_by_stream_time() -> None:
    audio = CallerAudio(1000)
    audio.append(_pcm(0, 500))
    audio.append(_pcm(500, 500))
    assert audio.end_time == 1.0
    assert list(audio.between(0.25, 0.255)) == [250, 251, 252, 253, 254]
    assert audio.between(0.9, 2.0).size == 100


def test_forgotten_audio_is_gone_but_times_stay_put() -> None:
    audio = CallerAudio(1000)
    audio.append(_pcm(0, 1000))
    audio.forget_before(0.8)
    assert audio.between(0.0, 0.8).size == 0
    assert list(audio.between(0.8, 0.802)) == [800, 801]
    assert audio.end_time == 1.0


def test_overflow_drops_the_oldest_audio_in_blocks() -> None:
    audio = CallerAudio(1000, max_seconds=1.0)
    for start in range(0, 3000, 20):
        audio.append(_pcm(start, 20))
    assert audio.end_time == 3.0
    kept = audio.between(0.0, 3.0)
    assert 750 <= kept.size <= 1000  # never more than the limit, never much less
    assert kept[-1] == 2999 and kept[0] == 3000 - kept.size
