"""WAV files in and out of a session: PCM16 mono at the session's rate."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from voxline.audio.pcm import pcm16_samples
from voxline.audio.resample import resample
from voxline.client.sdk import OmniClient


def read_wav(path: str | Path, rate: int) -> bytes:
    """A 16-bit PCM WAV as PCM16 LE mono at ``rate``: channels averaged, resampled with soxr."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise ValueError(f"{path}: expected 16-bit PCM, got {8 * wav.getsampwidth()}-bit")
            channels = wav.getnchannels()
            source_rate = wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:  # EOFError: a file cut short
        raise ValueError(f"{path}: not a PCM WAV file ({str(exc) or 'cut short'})") from exc
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


async def stream_wav(
    client: OmniClient, path: str | Path, *, trailing_silence: float = 1.0
) -> None:
    """Say a WAV file into the session as a caller would: in real time, at the connection's
    rate, then ``trailing_silence`` seconds of silence. The server hears that a caller has
    finished by the silence it receives, so a file with none after it is a turn that never
    ends: the default second is enough for the default endpointing (500 ms)."""
    pcm = read_wav(path, client.rate) + bytes(2 * round(trailing_silence * client.rate))
    await client.send_audio(pcm, realtime=True)
