"""A recogniser loaded when first used, for a server whose calls do not transcribe."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from voxline.audio.pcm import Float32Array

if TYPE_CHECKING:  # faster-whisper loads with the recogniser, not before
    from voxline.engines.stt import Transcriber, Transcript


class LazyTranscriber:
    """A :class:`~voxline.engines.stt.Transcriber` loaded in a worker thread when first used:
    for a server whose calls do not transcribe (the echo agent) but whose HTTP API may."""

    def __init__(self, load: Callable[[], Transcriber]) -> None:
        self._load = load
        self._loaded: Transcriber | None = None
        self._lock = asyncio.Lock()

    async def transcribe(
        self,
        audio: Float32Array,
        *,
        prompt: str | None = None,
        partial: bool = False,
        batch: bool = False,
    ) -> Transcript:
        if self._loaded is None:
            async with self._lock:
                if self._loaded is None:  # else loaded while this call waited
                    self._loaded = await asyncio.to_thread(self._load)
        return await self._loaded.transcribe(audio, prompt=prompt, partial=partial, batch=batch)

    async def aclose(self) -> None:
        if self._loaded is not None:
            await self._loaded.aclose()
