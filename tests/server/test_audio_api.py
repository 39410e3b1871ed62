"""The platform routes the public SDK (``pyai``) drives, against a real server with two voices:
voices, speech, transcription, the key's own view and the engines, their scopes and errors."""

from __future__ import annotations

import io
import time
import wave
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from pyai import PyAI, PyAIError
from pyai.cli import run_doctor

from tests.support.api import assert_envelope
from tests.support.server import RunningServer
from tests.support.voices import SLOW_VOICE_ID
from voxline.audio.g711 import ulaw_decode
from voxline.bench.speech import synthesize
from voxline.engines.voices import PACKAGED_VOICE_ID
from voxline.eval.wer import word_errors

pytestmark = pytest.mark.e2e

AUDIO_SCOPES = ("speak:synthesize", "hear:transcribe")
SENTENCE = "Please call me back tomorrow morning about the delivery."


@pytest.fixture(scope="module")
def server(voices_server: RunningServer) -> RunningServer:
    return voices_server


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[PyAI]:
    with PyAI(server.create_key(scopes=AUDIO_SCOPES), base_url=server.http) as sdk:
        yield sdk


def _close_to(expected: str, heard: str) -> bool:
    return word_errors(expected, heard).rate <= 0.2


def test_voices_are_listed_filtered_and_fetched(client: PyAI) -> None:
    voices = client.voices.list()["data"]
    assert [v["id"] for v in voices] == [PACKAGED_VOICE_ID, SLOW_VOICE_ID]
    joe = voices[0]
    assert joe["default"] and not voices[1]["default"]
    assert (joe["language"], joe["region"], joe["gender"], joe["sample_rate"]) == (
        "en_US",
        "US",
        "male",
        22050,
    )
    assert len(client.voices.list(gender="male", region="us")["data"]) == 2
    assert client.voices.list(gender="female")["data"] == []
    assert client.voices.list(region="en_GB")["data"] == []
    assert client.voices.get(SLOW_VOICE_ID)["id"] == SLOW_VOICE_ID
    with pytest.raises(PyAIError) as missing:
        client.voices.get("stock_emma_en_gb")
    assert (missing.value.status, missing.value.code) == (404, "not_found")


def test_me_shows_the_key_and_models_the_engines(server: RunningServer) -> None:
    with PyAI(server.create_key(scopes=("omni:session",)), base_url=server.http) as sdk:
        me = sdk.me()
        assert me["scopes"] == ["omni:session"] and me["env"] == "test"
        assert me["limits"]["daily_audio_seconds"] == 3600
        assert me["usage"]["audio_seconds"] == 0
        models = {model["type"]: model for model in sdk.models.list()["data"]}
    assert models["stt"]["id"] == "tiny.en" and "whisper-1" in models["stt"]["aliases"]
    assert models["tts"]["voices"] == [PACKAGED_VOICE_ID, SLOW_VOICE_ID]
    assert set(models) == {"stt", "tts", "llm"}


def test_speech_in_each_format_transcribes_back_to_its_text(client: PyAI) -> None:
    wav = client.audio.speech(input=SENTENCE)
    with wave.open(io.BytesIO(wav)) as file:
        assert (file.getframerate(), file.getnchannels(), file.getsampwidth()) == (24000, 1, 2)
        assert 2.0 < file.getnframes() / 24000 < 6.0
    heard = client.audio.transcriptions.create(file=wav)
    assert _close_to(SENTENCE, heard["text"]), heard
    assert heard["duration"] == pytest.approx(len(wav[44:]) / 48000, abs=0.01)

    pcm = client.audio.speech(input=SENTENCE, response_format="pcm", sample_rate=16000)
    assert len(pcm) == pytest.approx(len(wav[44:]) * 2 / 3, rel=0.01)
    heard = client.audio.transcriptions.create(
        file=pcm, filename="speech.pcm", content_type="audio/L16;rate=16000"
    )
    assert _close_to(SENTENCE, heard["text"]), heard

    ulaw = client.audio.speech(input=SENTENCE, response_format="g711_ulaw", sample_rate=48000)
    assert len(ulaw) == pytest.approx(len(wav[44:]) / 6, rel=0.01)  # forced to 8 kHz
    assert np.abs(ulaw_decode(ulaw).astype(np.int32)).max() > 3000
    heard = client.audio.transcriptions.create(file=ulaw, content_type="audio/basic")
    assert _close_to(SENTENCE, heard["text"]), heard

    alaw = client.audio.speech(input=SENTENCE, response_format="g711_alaw")
    heard = client.audio.transcriptions.create(file=alaw, filename="speech.alaw")
    assert _close_to(SENTENCE, heard["text"]), heard


def test_the_second_voice_speaks_more_slowly(client: PyAI) -> None:
    text = "The second voice speaks at its own pace."
    fast = client.audio.speech(input=text, response_format="pcm")
    slow = client.audio.speech(input=text, response_format="pcm", voice=SLOW_VOICE_ID)
    assert 1.3 < len(slow) / len(fast) < 1.7


def test_speech_streams_its_first_bytes_before_the_text_is_synthesised(client: PyAI) -> None:
    text = " ".join(
        f"Sentence number {n} of the streamed answer talks about parcel {n * 7}." for n in range(6)
    )
    started = time.perf_counter()
    arrivals: list[tuple[float, int]] = []
    for chunk in client.audio.speech_stream(input=text, response_format="wav", sample_rate=16000):
        arrivals.append((time.perf_counter() - started, len(chunk)))
    first, total = arrivals[0][0], arrivals[-1][0]
    audio_seconds = (sum(size for _, size in arrivals) - 44) / 32000
    print(
        f"first bytes after {first:.2f} s, all {audio_seconds:.1f} s of audio after {total:.2f} s"
    )
    assert audio_seconds > 15
    assert first < total / 3


def test_a_wav_of_any_rate_and_channels_is_transcribed(client: PyAI) -> None:
    mono = synthesize(SENTENCE, 44100)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack([mono, mono], axis=1), 44100, subtype="PCM_24", format="WAV")
    heard = client.audio.transcriptions.create(
        file=buffer.getvalue(), vocabulary=["delivery"], response_format="json"
    )
    assert _close_to(SENTENCE, heard["text"]), heard


def test_text_transcripts_are_plain_text(server: RunningServer) -> None:
    response = _transcribe(
        server,
        server.create_key(scopes=AUDIO_SCOPES),
        data={"response_format": "text"},
        files={"file": ("a.wav", _wav(synthesize(SENTENCE, 16000), 16000), "audio/wav")},
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/")
    assert _close_to(SENTENCE, response.text), response.text


def test_speech_and_transcription_count_toward_the_keys_audio(server: RunningServer) -> None:
    with PyAI(server.create_key(scopes=AUDIO_SCOPES), base_url=server.http) as sdk:
        pcm = sdk.audio.speech(input=SENTENCE, response_format="pcm", sample_rate=16000)
        sdk.audio.transcriptions.create(file=pcm, content_type="audio/L16;rate=16000")
        assert sdk.me()["usage"]["audio_seconds"] == pytest.approx(2 * len(pcm) / 32000, rel=0.01)
    capped = server.create_key(scopes=AUDIO_SCOPES, daily_audio_seconds=1)
    with PyAI(capped, base_url=server.http, max_retries=0) as sdk:
        sdk.audio.speech(input=SENTENCE, response_format="pcm")  # the first goes over the cap
        with pytest.raises(PyAIError) as spent:
            sdk.audio.speech(input="And again.")
    assert (spent.value.status, spent.value.code) == (429, "daily_cap_exceeded")


@pytest.mark.parametrize(
    ("payload", "status", "code", "param"),
    [
        ({"response_format": "mp3"}, 400, "unsupported_format", "response_format"),
        ({"response_format": "ogg"}, 400, "unsupported_format", "response_format"),
        ({"sample_rate": 22050}, 400, "invalid_request", "sample_rate"),
        ({"input": "   "}, 400, "invalid_request", "input"),
        ({"input": "x" * 4097}, 400, "invalid_request", "input"),
        ({"voice": "stock_emma_en_gb"}, 400, "invalid_request", "voice"),
        ({"speed": 1.5}, 400, "unsupported_parameter", "speed"),
        ({"model": "gpt-4o-mini-tts"}, 400, "invalid_request", "model"),
    ],
)
def test_bad_speech_requests_get_the_documented_errors(
    server: RunningServer, payload: dict[str, object], status: int, code: str, param: str
) -> None:
    key = server.create_key(scopes=AUDIO_SCOPES)
    response = httpx.post(
        f"{server.http}/v1/audio/speech",
        headers={"Authorization": f"Bearer {key}"},
        json={"input": "Hello.", **payload},
    )
    assert_envelope(response, status, code, "invalid_request_error", param)


def test_bad_transcription_requests_get_the_documented_errors(
    server: RunningServer, client: PyAI
) -> None:
    key = server.create_key(scopes=AUDIO_SCOPES)

    def post(**kwargs: Any) -> httpx.Response:
        return _transcribe(server, key, **kwargs)

    no_file = post(files={"notes": ("notes.txt", b"hi", "text/plain")}, data={"model": "pyai-hear"})
    assert_envelope(no_file, 400, "invalid_request", "invalid_request_error", "file")
    response = post(files={"file": ("a.wav", b"not audio at all", "audio/wav")})
    assert_envelope(response, 400, "invalid_request", "invalid_request_error", "file")
    too_long = _wav(np.zeros(8000 * 301, np.int16), 8000)  # 4.8 MB: under the body limit
    response = post(files={"file": ("a.wav", too_long, "audio/wav")})
    assert_envelope(response, 400, "invalid_request", "invalid_request_error", "file")
    clip = ("a.wav", _wav(synthesize("Hello.", 16000), 16000), "audio/wav")
    response = post(files={"file": clip}, data={"response_format": "srt"})
    assert_envelope(response, 400, "unsupported_format", "invalid_request_error", "response_format")
    response = post(files={"file": clip}, data={"language": "fr"})
    assert_envelope(response, 400, "invalid_request", "invalid_request_error", "language")
    with pytest.raises(PyAIError) as oversized:
        client.audio.transcriptions.create(file=b"\0" * (25 * 1024 * 1024 + 1))
    assert (oversized.value.status, oversized.value.code) == (413, "message_too_large")


def test_each_route_needs_its_scope(server: RunningServer) -> None:
    with PyAI(server.create_key(scopes=("omni:*",)), base_url=server.http) as sdk:
        assert sdk.voices.list()["data"]  # any key reads the voices
        with pytest.raises(PyAIError) as speech:
            sdk.audio.speech(input="Hello.")
        with pytest.raises(PyAIError) as hearing:
            sdk.audio.transcriptions.create(file=_wav(synthesize("Hello.", 16000), 16000))
    for refused, scope in ((speech, "speak:synthesize"), (hearing, "hear:transcribe")):
        assert (refused.value.status, refused.value.code) == (403, "forbidden")
        assert scope in refused.value.message
    with (
        PyAI("vx_test_not-a-key", base_url=server.http, max_retries=0) as sdk,
        pytest.raises(PyAIError) as stranger,
    ):
        sdk.me()
    assert (stranger.value.status, stranger.value.code) == (401, "unauthorized")


def test_the_sdks_own_doctor_finds_the_server_healthy(client: PyAI) -> None:
    lines: list[str] = []
    assert run_doctor(client, out=lines.append) == 0, lines


def _wav(samples: npt.NDArray[np.int16], rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def _transcribe(server: RunningServer, key: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(
        f"{server.http}/v1/audio/transcriptions",
        headers={"Authorization": f"Bearer {key}"},
        **kwargs,
    )
