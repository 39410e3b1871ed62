"""Callers for the speech-recognition evaluation: voices unlike the agent's, at every line rate.

espeak-ng (Debian's ``espeak-ng`` package) speaks in several accents and voice variants at
more than one speed; the packaged Piper voice, the agent's own, is the control. A clip is
rendered once into a cache directory; each rate of it is made from that clip as a caller's
line would carry it: resampled to 24, 16 or 8 kHz, the phone line's 8 kHz also through
G.711 µ-law.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import platformdirs

from voxline.audio.g711 import ulaw_decode, ulaw_encode
from voxline.audio.pcm import Int16Array
from voxline.audio.resample import resample
from voxline.bench.speech import synthesize


@dataclass(frozen=True, slots=True)
class Voice:
    name: str
    espeak: str | None
    """espeak-ng voice and variant (``en-gb-scotland+m1``); None for the packaged Piper voice."""
    words_per_minute: int = 175


@dataclass(frozen=True, slots=True)
class Line:
    """How a caller's audio reaches the session: its rate, and whether G.711 µ-law coded."""

    name: str
    rate: int
    ulaw: bool = False


VOICES: Final = (
    Voice("espeak-us-m3", "en-us+m3", 165),
    Voice("espeak-us-f2", "en-us+f2", 195),
    Voice("espeak-scotland-m1", "en-gb-scotland+m1", 140),
    Voice("espeak-rp-f4", "en-gb-x-rp+f4", 180),
    Voice("espeak-caribbean-m7", "en-029+m7", 150),
    Voice("piper-joe", None),
)
LINES: Final = (
    Line("24k", 24_000),
    Line("16k", 16_000),
    Line("8k", 8_000),
    Line("8k-ulaw", 8_000, True),
)
PIPER_RATE: Final = 22_050


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("voxline", appauthor=False)) / "stt-eval"


def render(voice: Voice, text: str, cache: Path) -> tuple[Int16Array, int]:
    """``text`` spoken by ``voice``: mono PCM16 and its rate, from ``cache`` when there."""
    key = hashlib.sha256(f"{voice}\n{text}".encode()).hexdigest()[:20]
    path = cache / voice.name / f"{key}.wav"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        if voice.espeak is None:
            _write_wav(path, synthesize(text, PIPER_RATE), PIPER_RATE)
        else:
            _espeak(voice, text, path)
    return _read_wav(path)


def over_line(samples: Int16Array, rate: int, line: Line) -> Int16Array:
    """The clip as the session receives it on ``line``."""
    out = resample(samples, rate, line.rate)
    return ulaw_decode(ulaw_encode(out)) if line.ulaw else out


def _espeak(voice: Voice, text: str, path: Path) -> None:
    executable = shutil.which("espeak-ng")
    if executable is None:
        raise RuntimeError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    assert voice.espeak is not None
    # Written to a temporary file first: espeak-ng's --stdout WAV has no length in its header,
    # and a clip cut short by an interruption must not stay in the cache.
    with tempfile.NamedTemporaryFile(suffix=".wav", dir=path.parent, delete=False) as file:
        partial = Path(file.name)
    try:
        subprocess.run(
            [executable, "-v", voice.espeak, "-s", str(voice.words_per_minute), "-w", str(partial)],
            input=text.encode(),
            check=True,
            capture_output=True,
        )
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _write_wav(path: Path, samples: Int16Array, rate: int) -> None:
    partial = path.with_suffix(".partial")
    with wave.open(str(partial), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    partial.replace(path)


def _read_wav(path: Path) -> tuple[Int16Array, int]:
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected mono 16-bit PCM")
        samples: Int16Array = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return samples.astype(np.int16), wav.getframerate()
