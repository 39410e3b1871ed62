"""The speech-recognition evaluation: the set, the engines compared, the run and its figures.

Every clip is heard through the live session path (:mod:`voxline.eval.session_path`) by
each engine in turn, so that engines are timed interleaved, under the same load.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from faster_whisper import WhisperModel

from voxline.audio.pcm import Float32Array
from voxline.bench.load import percentile
from voxline.engines.knowledge import KnowledgeBase
from voxline.engines.stt import (
    DEFAULT_BEAM,
    PACKAGED_MODEL,
    SAMPLE_RATE,
    SHORT_WINDOW_SECONDS,
    Transcriber,
    Transcript,
    WhisperTranscriber,
    model_source,
)
from voxline.eval.session_path import SessionHearing, WatchedVad
from voxline.eval.voices import RECORDED, Line, Voice, over_line, render
from voxline.eval.wer import word_errors

THREE_SECONDS: Final = (2.5, 3.5)
"""Utterances this long (seconds, as decoded) make the "3 s utterance" figures."""


@dataclass(frozen=True, slots=True)
class Utterance:
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class EvalSet:
    business: str
    persona: str
    utterances: tuple[Utterance, ...]
    knowledge: KnowledgeBase


def load_set() -> EvalSet:
    """The packaged set (``stt_set.json``) and the knowledge file written for it."""
    folder = resources.files("voxline.eval")
    data = json.loads(folder.joinpath("stt_set.json").read_text())
    knowledge = KnowledgeBase.from_dict(
        json.loads(folder.joinpath("stt_knowledge.json").read_text())
    )
    return EvalSet(
        data["business"],
        data["persona"],
        tuple(Utterance(u["id"], u["text"]) for u in data["utterances"]),
        knowledge,
    )


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """An engine to evaluate, written ``MODEL[:key=value,...]``: ``tiny.en``,
    ``base:beam=5``, ``tiny.en:window=30,bias=off``; the model ``faster-whisper`` is tiny.en
    with faster-whisper's own defaults (beam 5, temperature fallback, 30 s window)."""

    label: str
    model: str | None = None
    beam: int = DEFAULT_BEAM
    window: float = SHORT_WINDOW_SECONDS
    bias: bool = True
    library_defaults: bool = False

    @classmethod
    def parse(cls, spec: str) -> EngineSpec:
        model, _, options = spec.partition(":")
        values: dict[str, Any] = {}
        for option in filter(None, options.split(",")):
            key, _, value = option.partition("=")
            if key == "beam":
                values["beam"] = int(value)
            elif key == "window":
                values["window"] = float(value)
            elif key == "bias" and value in ("on", "off"):
                values["bias"] = value == "on"
            else:
                raise ValueError(f"{spec!r}: unknown option {option!r} (beam=, window=, bias=)")
        if model == "faster-whisper":
            return cls(spec, None, library_defaults=True, **values)
        return cls(spec, None if model == PACKAGED_MODEL else model, **values)

    def load(self, threads: int) -> Transcriber:
        if self.library_defaults:
            return LibraryDefaults(threads=threads)
        return WhisperTranscriber(
            self.model, threads=threads, beam_size=self.beam, window_seconds=self.window
        )


class LibraryDefaults:
    """tiny.en as faster-whisper decodes by default: the "before" of the chosen settings."""

    def __init__(self, *, threads: int) -> None:
        source, files = model_source(None)
        self._model = WhisperModel(
            source, device="cpu", compute_type="int8", cpu_threads=threads, files=files
        )
        self._executor = ThreadPoolExecutor(max_workers=1)

    async def transcribe(
        self,
        audio: Float32Array,
        *,
        prompt: str | None = None,
        partial: bool = False,
        batch: bool = False,
    ) -> Transcript:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._decode, audio.copy(), prompt)

    def _decode(self, audio: Float32Array, prompt: str | None) -> Transcript:
        start = time.perf_counter()
        segments, _ = self._model.transcribe(audio, language="en", initial_prompt=prompt)
        text = " ".join("".join(segment.text for segment in segments).split())
        return Transcript(text, audio.size / SAMPLE_RATE, time.perf_counter() - start)

    async def aclose(self) -> None:
        self._executor.shutdown()


@dataclass(frozen=True, slots=True)
class Result:
    engine: str
    voice: str
    family: str
    line: str
    id: str
    reference: str
    hypothesis: str
    errors: int
    words: int
    audio_seconds: float
    decode_seconds: float


@dataclass(frozen=True, slots=True)
class Summary:
    engine: str
    voice: str
    """A voice, a family of voices, or ``"all"``."""
    line: str
    utterances: int
    wer: float
    decode_p50: float
    decode_p95: float
    decode_max: float
    decode_p95_3s: float | None
    """P95 over the utterances of about 3 s (:data:`THREE_SECONDS`)."""


async def run(
    evalset: EvalSet,
    specs: Sequence[EngineSpec],
    voices: Sequence[Voice],
    lines: Sequence[Line],
    *,
    cache: Path,
    threads: int = 1,
    progress: Callable[[Result], None] = lambda result: None,
    limit: int | None = None,
) -> list[Result]:
    """Every utterance by every voice on every line, heard by every engine in turn: the
    set's utterances by the synthetic voices, then the recorded voice's own (the first
    ``limit`` of each)."""
    synthetic = [voice for voice in voices if not voice.recorded]
    recorded = [voice for voice in voices if voice.recorded]
    jobs = [
        (voice, utterance.id, utterance.text, utterance.text)
        for utterance in evalset.utterances[:limit]
        for voice in synthetic
    ] + [
        (voice, recording.id, recording.text, recording.id)
        for recording in RECORDED.utterances[:limit]
        for voice in recorded
    ]
    hearings = [
        SessionHearing(
            spec.load(threads),
            knowledge=evalset.knowledge if spec.bias else None,
            persona=evalset.persona if spec.bias else None,
        )
        for spec in specs
    ]
    results: list[Result] = []
    try:
        async with WatchedVad() as vad:
            for voice, id, text, source in jobs:
                clip, rate = await asyncio.to_thread(render, voice, source, cache)
                for line in lines:
                    audio = over_line(clip, rate, line)
                    for spec, hearing in zip(specs, hearings, strict=True):
                        heard = await hearing.hear(audio, line.rate, vad)
                        errors = word_errors(text, heard.text)
                        result = Result(
                            spec.label,
                            voice.name,
                            voice.family,
                            line.name,
                            id,
                            text,
                            heard.text,
                            errors.errors,
                            errors.words,
                            max((t.audio_seconds for t in heard.transcripts), default=0.0),
                            sum(t.decode_seconds for t in heard.transcripts),
                        )
                        results.append(result)
                        progress(result)
    finally:
        for hearing in hearings:
            await hearing.aclose()
    return results


Grouping = Literal["voice", "family", "all"]


def summarise(results: Sequence[Result], *, by: Grouping = "voice") -> list[Summary]:
    """Figures per engine, line and voice (or family of voices), in the order first seen;
    with ``by="all"``, one row per engine and line over all voices (voice ``"all"``)."""
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for result in results:
        voice = {"voice": result.voice, "family": result.family, "all": "all"}[by]
        groups.setdefault((result.engine, voice, result.line), []).append(result)
    summaries = []
    for (engine, voice, line), group in groups.items():
        times = [r.decode_seconds for r in group]
        around_3s = [
            r.decode_seconds
            for r in group
            if THREE_SECONDS[0] <= r.audio_seconds <= THREE_SECONDS[1]
        ]
        words = sum(r.words for r in group)
        summaries.append(
            Summary(
                engine,
                voice,
                line,
                len(group),
                sum(r.errors for r in group) / words if words else 0.0,
                float(np.percentile(times, 50)),
                float(np.percentile(times, 95)),
                max(times),
                percentile(around_3s, 95),
            )
        )
    return summaries


def report(results: Sequence[Result]) -> dict[str, Any]:
    """Everything as JSON-ready data: overall, per family and per voice on each line, and
    every utterance."""
    return {
        "summary": [asdict(s) for s in summarise(results, by="all")],
        "by_family": [asdict(s) for s in summarise(results, by="family")],
        "by_voice": [asdict(s) for s in summarise(results)],
        "utterances": [asdict(r) for r in results],
    }
