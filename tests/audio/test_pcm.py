"""PCM16 helpers."""

import numpy as np

from voxline.audio.pcm import pcm16_samples, to_float, to_int16, trim_trailing_silence


def test_float_round_trip_clips_instead_of_wrapping() -> None:
    samples = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    assert np.array_equal(to_int16(to_float(samples)), samples)
    assert list(to_int16(np.array([1.5, -1.5], dtype=np.float32))) == [32767, -32768]
    assert list(pcm16_samples(b"\x01\x00\xff\xff")) == [1, -1]


def test_trim_trailing_silence_keeps_a_short_tail() -> None:
    clip = np.concatenate([np.full(800, 10_000, dtype=np.int16), np.zeros(4000, dtype=np.int16)])
    assert len(trim_trailing_silence(clip, 8000, keep_ms=40)) == 800 + 320
    assert len(trim_trailing_silence(np.zeros(100, dtype=np.int16), 8000)) == 100
