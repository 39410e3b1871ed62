"""WAV files in and out of a session: PCM16 mono at the session's rate."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from voxline.audio.pcm import pcm16_samples
from voxline.audio.resample import resample


def read_wav(path: str | Path, rate: int) -> bytes:
    """A 16-bit PCM WAV as PCM16 LE mono at ``rate``: channels averaged, resampled with soxr."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise ValueError(f"{path}: expected 16-bit PCM, got {8 * wav.getsampwidth()}-bit")
            channels = wav.getnchannels()
            source_rate = wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except wave.Error as exc:
        raise ValueError(f"{path}: not a PCM WAV file ({exc})") from exc
    samples = pcm16_samples(frames)
    if channels > 1:
        mixed = samples.reshape(-1, channels).mean(axis=1)
        samples = np.rint(mixed).astype(np.int16)
    return resample(samples, source_rate, rate).astype("<i2").tobytes()


def write_wav(path: str | Path, pcm: bytes, rate: int) -> None:
    """Write PCM16 LE mono samples as a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
