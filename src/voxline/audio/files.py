"""Audio as files carry it: a WAV header for PCM16 written as it is produced, and uploaded
clips (WAV, FLAC or Ogg through libsndfile; headerless PCM16 and G.711) read as mono PCM16.
"""

from __future__ import annotations

import io
import struct
from typing import Final, Literal

import numpy as np
import soundfile

from voxline.audio.g711 import alaw_decode, ulaw_decode
from voxline.audio.pcm import Int16Array, pcm16_samples

RawEncoding = Literal["pcm16", "ulaw", "alaw"]

STREAMED_SIZE: Final = 0xFFFFFFFF
"""The RIFF and data sizes of a WAV written before its length is known: "to the end"."""


class UnreadableAudio(ValueError):
    """Bytes that are not audio of a format this module reads."""


def wav_header(rate: int, data_bytes: int | None = None) -> bytes:
    """The 44-byte header of a PCM16 mono WAV of ``data_bytes`` (None: not known yet, as
    for a stream; readers then read to the end)."""
    if data_bytes is None:
        riff = data = STREAMED_SIZE
    else:
        riff, data = 36 + data_bytes, data_bytes
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", riff, b"WAVE", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16, b"data", data,
    )  # fmt: skip


def read_audio_file(data: bytes) -> tuple[Int16Array, int]:
    """The samples of a WAV, FLAC or Ogg file (any sample format, channels averaged) and its
    rate."""
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as file:
            rate = int(file.samplerate)
            samples = file.read(dtype="int16", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise UnreadableAudio(f"not a WAV, FLAC or Ogg file ({error})") from None
    if samples.shape[1] == 1:
        mono: Int16Array = samples[:, 0]
    else:
        mono = np.rint(samples.mean(axis=1)).astype(np.int16)
    return mono, rate


def read_raw(data: bytes, encoding: RawEncoding) -> Int16Array:
    """Headerless audio: PCM16 little-endian, or G.711 µ-law or A-law, mono."""
    if encoding == "ulaw":
        return ulaw_decode(data)
    if encoding == "alaw":
        return alaw_decode(data)
    if len(data) % 2:
        raise UnreadableAudio(f"{len(data)} bytes is not whole 16-bit samples")
    return pcm16_samples(data)
