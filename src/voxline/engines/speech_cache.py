"""A synthesizer that remembers what it has said.

A voice line says the same sentences over and over: the greeting on every call, the answers
of its knowledge file to the questions callers ask most. Synthesising one of them again costs
100-500 ms of CPU before the first audio of a reply; remembering it costs a few hundred KB.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from voxline.audio.pcm import Int16Array
from voxline.engines.tts import Synthesizer

DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024


class CachingSynthesizer:
    """A :class:`~voxline.engines.tts.Synthesizer` over another, keeping the audio of the
    sentences it synthesised, least recently used dropped first beyond ``max_bytes``.

    Only for synthesizers that always say a text the same way (Piper's noise makes takes
    differ slightly, which a caller never notices)."""

    def __init__(self, inner: Synthesizer, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._inner = inner
        self._max_bytes = max_bytes
        self._audio: OrderedDict[str, Int16Array] = OrderedDict()
        self._bytes = 0
        self.sample_rate = inner.sample_rate
        self.hits = 0
        self.misses = 0

    async def synthesize(self, text: str, *, batch: bool = False) -> Int16Array:
        audio = self._audio.get(text)
        if audio is not None:
            self._audio.move_to_end(text)
            self.hits += 1
            return audio
        self.misses += 1
        audio = await self._inner.synthesize(text, batch=batch)
        audio.setflags(write=False)  # shared from now on
        self._remember(text, audio)
        return audio

    def _remember(self, text: str, audio: Int16Array) -> None:
        if audio.nbytes > self._max_bytes or text in self._audio:
            return
        self._audio[text] = audio
        self._bytes += audio.nbytes
        while self._bytes > self._max_bytes:
            _, dropped = self._audio.popitem(last=False)
            self._bytes -= dropped.nbytes

    async def aclose(self) -> None:
        await self._inner.aclose()
