"""The synthesizer that remembers what it said."""

from __future__ import annotations

import numpy as np
import pytest

from voxline.audio.pcm import Int16Array
from voxline.engines.speech_cache import CachingSynthesizer


class CountingSynthesizer:
    sample_rate = 22050

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.batch: list[bool] = []

    async def synthesize(self, text: str, *, batch: bool = False) -> Int16Array:
        self.calls.append(text)
        self.batch.append(batch)
        return np.full(len(text) * 100, len(text), dtype=np.int16)

    async def aclose(self) -> None:
        pass


async def test_a_sentence_said_again_is_not_synthesised_again() -> None:
    inner = CountingSynthesizer()
    cache = CachingSynthesizer(inner)
    first = await cache.synthesize("Hello there.")
    again = await cache.synthesize("Hello there.")
    assert inner.calls == ["Hello there."]
    assert again is first and (cache.hits, cache.misses) == (1, 1)
    assert cache.sample_rate == 22050
    with pytest.raises(ValueError):
        again[0] = 1  # shared audio is read-only


async def test_least_recently_used_goes_first_beyond_the_byte_budget() -> None:
    inner = CountingSynthesizer()
    cache = CachingSynthesizer(inner, max_bytes=2 * 1000 * 2)  # two 10-character sentences
    for text in ("aaaaaaaaaa", "bbbbbbbbbb", "aaaaaaaaaa", "cccccccccc"):
        await cache.synthesize(text)
    inner.calls.clear()
    await cache.synthesize("aaaaaaaaaa")  # kept: used more recently than b
    await cache.synthesize("bbbbbbbbbb")  # dropped for c
    assert inner.calls == ["bbbbbbbbbb"]


async def test_audio_bigger_than_the_budget_is_not_kept() -> None:
    inner = CountingSynthesizer()
    cache = CachingSynthesizer(inner, max_bytes=10)
    await cache.synthesize("long sentence")
    await cache.synthesize("long sentence")
    assert len(inner.calls) == 2


async def test_a_miss_is_synthesised_at_the_asked_priority_and_serves_calls_after() -> None:
    inner = CountingSynthesizer()
    cache = CachingSynthesizer(inner)
    spoken = await cache.synthesize("Thank you for calling.", batch=True)
    await cache.synthesize("Goodbye.")
    assert inner.batch == [True, False]
    assert await cache.synthesize("Thank you for calling.") is spoken
    assert inner.calls == ["Thank you for calling.", "Goodbye."]
