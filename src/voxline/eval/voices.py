"""Callers for the speech-recognition evaluation: voices unlike the agent's, at every line rate.

Four families of callers, from Debian packages, each heard differently by Whisper:

- espeak-ng (``espeak-ng``): formant synthesis, in several accents and voice variants at
  more than one speed, the hardest to hear;
- diphone voices (``festival`` with ``festvox-kallpc16k`` and ``festvox-kdlpc16k``):
  recorded speech cut into diphones and joined;
- statistical voices, close to natural speech: Festival's HTS voice of CMU ARCTIC's slt
  (``festvox-us-slt-hts``) and Flite's Clustergen voices awb (Scottish) and rms (``flite``);
- a recorded human: professional read prompts with their transcripts
  (``asterisk-core-sounds-en-g722``, :data:`RECORDED`), which speak their own sentences, not
  the set's.

The packaged Piper voice, the agent's own, is the control. A synthetic clip is rendered once
into a cache directory; each rate of a clip is made from it as a caller's line would carry
it: resampled to 24, 16 or 8 kHz, the phone line's 8 kHz also through G.711 µ-law.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final, Literal

import av
import numpy as np
import platformdirs

from voxline.audio.g711 import ulaw_decode, ulaw_encode
from voxline.audio.pcm import Int16Array
from voxline.audio.resample import resample
from voxline.bench.speech import synthesize

Engine = Literal["espeak-ng", "festival", "flite", "piper", "recorded"]


@dataclass(frozen=True, slots=True)
class Voice:
    name: str
    family: str
    engine: Engine
    voice: str | None = None
    """The engine's name for it: espeak-ng voice and variant (``en-gb-scotland+m1``),
    Festival voice function (``voice_kal_diphone``), Flite voice (``awb``)."""
    words_per_minute: int = 175
    """espeak-ng only."""

    @property
    def recorded(self) -> bool:
        """It speaks only its own recordings (:data:`RECORDED`), not the set's text."""
        return self.engine == "recorded"


@dataclass(frozen=True, slots=True)
class Line:
    """How a caller's audio reaches the session: its rate, and whether G.711 µ-law coded."""

    name: str
    rate: int
    ulaw: bool = False


ESPEAK: Final = "espeak-ng"
DIPHONE: Final = "diphone"
STATISTICAL: Final = "statistical"
HUMAN: Final = "human"
CONTROL: Final = "piper"
VOICES: Final = (
    Voice("espeak-us-m3", ESPEAK, "espeak-ng", "en-us+m3", 165),
    Voice("espeak-us-f2", ESPEAK, "espeak-ng", "en-us+f2", 195),
    Voice("espeak-scotland-m1", ESPEAK, "espeak-ng", "en-gb-scotland+m1", 140),
    Voice("espeak-rp-f4", ESPEAK, "espeak-ng", "en-gb-x-rp+f4", 180),
    Voice("espeak-caribbean-m7", ESPEAK, "espeak-ng", "en-029+m7", 150),
    Voice("festival-kal", DIPHONE, "festival", "voice_kal_diphone"),
    Voice("festival-ked", DIPHONE, "festival", "voice_ked_diphone"),
    Voice("festival-slt-hts", STATISTICAL, "festival", "voice_cmu_us_slt_arctic_hts"),
    Voice("flite-awb", STATISTICAL, "flite", "awb"),
    Voice("flite-rms", STATISTICAL, "flite", "rms"),
    Voice("human-allison", HUMAN, "recorded"),
    Voice("piper-joe", CONTROL, "piper"),
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


@dataclass(frozen=True, slots=True)
class Recording:
    id: str
    """The prompt's name in the package (``vm-sorry``)."""
    text: str


@dataclass(frozen=True, slots=True)
class Recordings:
    package: str
    directory: Path
    utterances: tuple[Recording, ...]


def _load_recordings() -> Recordings:
    data = json.loads(resources.files("voxline.eval").joinpath("stt_recorded.json").read_text())
    return Recordings(
        data["package"],
        Path(data["directory"]),
        tuple(Recording(u["id"], u["text"]) for u in data["utterances"]),
    )


RECORDED: Final = _load_recordings()
"""What the recorded voice says: its prompts and their transcripts (``stt_recorded.json``)."""


def render(voice: Voice, text: str, cache: Path) -> tuple[Int16Array, int]:
    """``text`` spoken by ``voice``: mono PCM16 and its rate, from ``cache`` when there. For
    the recorded voice, ``text`` is the id of one of its recordings."""
    if voice.recorded:
        return _recording(text)
    key = hashlib.sha256(f"{voice}\n{text}".encode()).hexdigest()[:20]
    path = cache / voice.name / f"{key}.wav"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        if voice.engine == "piper":
            _write_wav(path, synthesize(text, PIPER_RATE), PIPER_RATE)
        else:
            _synthesize(voice, text, path)
    return _read_wav(path)


def over_line(samples: Int16Array, rate: int, line: Line) -> Int16Array:
    """The clip as the session receives it on ``line``."""
    out = resample(samples, rate, line.rate)
    return ulaw_decode(ulaw_encode(out)) if line.ulaw else out


_PROGRAMS: Final = {"espeak-ng": "espeak-ng", "festival": "text2wave", "flite": "flite"}
_PACKAGES: Final = {
    "espeak-ng": "espeak-ng",
    "festival": "festival and the voice's festvox-* package",
    "flite": "flite",
}


def _synthesize(voice: Voice, text: str, path: Path) -> None:
    """``text`` by an external synthesiser, written to ``path`` whole or not at all."""
    executable = shutil.which(_PROGRAMS[voice.engine])
    if executable is None:
        raise RuntimeError(
            f"{_PROGRAMS[voice.engine]} is not installed (Debian: {_PACKAGES[voice.engine]})"
        )
    assert voice.voice is not None
    # Written to a temporary file first: espeak-ng's --stdout WAV has no length in its header,
    # and a clip cut short by an interruption must not stay in the cache.
    with tempfile.NamedTemporaryFile(suffix=".wav", dir=path.parent, delete=False) as file:
        partial = Path(file.name)
    out = str(partial)
    command = {
        "espeak-ng": [executable, "-v", voice.voice, "-s", str(voice.words_per_minute), "-w", out],
        "festival": [executable, "-eval", f"({voice.voice})", "-o", out],
        "flite": [executable, "-voice", voice.voice, "-o", out, "-t", text],
    }[voice.engine]
    # Festival and Flite write a clip in another voice when theirs is missing: ask first.
    if voice.engine != "espeak-ng" and voice.voice not in _installed_voices(executable):
        raise RuntimeError(f"{voice.name}: not installed (Debian: {_PACKAGES[voice.engine]})")
    try:
        subprocess.run(command, input=text.encode(), check=True, capture_output=True)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


@functools.cache
def _installed_voices(executable: str) -> frozenset[str]:
    """The voices of Festival (as the functions choosing them) or of Flite."""
    if Path(executable).name == "text2wave":
        listed = subprocess.run(
            [str(Path(executable).with_name("festival")), "--pipe"],
            input=b"(print (voice.list))",
            check=True,
            capture_output=True,
        ).stdout.decode()
        return frozenset(f"voice_{name}" for name in listed.strip("()\n ").split())
    flite = subprocess.run([executable, "-lv"], check=True, capture_output=True).stdout
    return frozenset(flite.decode().partition(":")[2].split())


def _recording(id: str) -> tuple[Int16Array, int]:
    """A recording of :data:`RECORDED` as PCM16 and its rate (G.722 decodes to 16 kHz)."""
    path = RECORDED.directory / f"{id}.g722"
    if not path.exists():
        raise RuntimeError(f"{path} is missing (Debian: apt-get install {RECORDED.package})")
    with av.open(str(path), format="g722") as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        rate = stream.rate
    samples: Int16Array = np.concatenate(frames).astype(np.int16)
    return samples, rate


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
