"""Caller speech for benchmarks and tests, synthesized offline with the packaged Piper voice."""

from __future__ import annotations

import functools

from voxline.audio.pcm import Int16Array
from voxline.audio.resample import resample
from voxline.engines.tts import PiperSynthesizer


@functools.cache
def _synthesizer() -> PiperSynthesizer:
    return PiperSynthesizer(deterministic=True)


@functools.cache
def synthesize(text: str, rate: int = 16_000) -> Int16Array:
    """Speak ``text`` as mono int16 PCM at ``rate`` Hz, as the agent would (see
    :class:`~voxline.engines.tts.PiperSynthesizer`), but always the same audio for the same
    text. Cached: the array is read-only."""
    synthesizer = _synthesizer()
    pcm = resample(synthesizer.synthesize_blocking(text), synthesizer.sample_rate, rate)
    pcm.setflags(write=False)
    return pcm
