"""The cap on a key's HTTP speech and transcription requests under way, against a real
server: the excess is refused, the rest complete, and a slot comes back when its request
ends, whether it ran to its end or its client left mid-stream."""

from __future__ import annotations

import io
import wave

import httpx
import pytest

from tests.support.api import (
    assert_envelope,
    long_text,
    open_speech,
    seconds_until_admitted,
    speech,
)
from tests.support.server import RunningServer
from voxline.config import LimitSettings

pytestmark = pytest.mark.e2e

SCOPES = ("speak:synthesize", "hear:transcribe")
CAP = LimitSettings().max_http_audio_requests_per_key
#: Bytes of 8 kHz PCM16 a long text makes at the least: six sentences of 2 s or more.
LONG_AUDIO_BYTES = 6 * 2 * 8000 * 2


def _silence_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(bytes(32000))
    return buffer.getvalue()


async def test_a_key_past_its_cap_is_refused_while_its_requests_complete(
    echo_server: RunningServer,
) -> None:
    key = echo_server.create_key(scopes=SCOPES)
    other = echo_server.create_key(scopes=SCOPES)
    async with httpx.AsyncClient(base_url=echo_server.http, timeout=120) as client:
        streams = [await open_speech(client, key, long_text(f"cap-{n}")) for n in range(CAP)]
        refused = await speech(client, key, "One request too many.")
        assert refused.status_code == 429, f"answered {refused.status_code}"
        assert_envelope(refused, 429, "concurrency_limit_exceeded", "rate_limit_error")
        assert refused.headers["retry-after"] == "1"
        assert str(CAP) in refused.json()["error"]["message"]
        # Transcriptions count toward the same cap.
        hearing = await client.post(
            "/v1/audio/transcriptions",
            headers={"Authorization": f"Bearer {key}"},
            files={"file": ("a.wav", _silence_wav(), "audio/wav")},
        )
        assert_envelope(hearing, 429, "concurrency_limit_exceeded", "rate_limit_error")
        # Another key has slots of its own.
        answered = await speech(client, other, "Another key is answered.")
        assert answered.status_code == 200 and answered.content
        for stream in streams:
            body = await stream.aread()
            await stream.aclose()
            assert len(body) >= LONG_AUDIO_BYTES
        # Done, they give their slots back.
        await seconds_until_admitted(client, key, within=5)
        transcribed = await client.post(
            "/v1/audio/transcriptions",
            headers={"Authorization": f"Bearer {key}"},
            files={"file": ("a.wav", _silence_wav(), "audio/wav")},
        )
        assert transcribed.status_code == 200, transcribed.text


async def test_a_stream_its_client_abandons_gives_its_slot_back(
    echo_server: RunningServer,
) -> None:
    key = echo_server.create_key(scopes=SCOPES)
    async with httpx.AsyncClient(base_url=echo_server.http, timeout=120) as client:
        streams = [await open_speech(client, key, long_text(f"gone-{n}")) for n in range(CAP)]
        assert (await speech(client, key, "Refused.")).status_code == 429
        abandoned = streams.pop(0)
        assert await anext(abandoned.aiter_raw())  # its audio has begun
        await abandoned.aclose()
        # Freed by its end, not by its lease lapsing (30 s).
        assert await seconds_until_admitted(client, key, within=10) < 10
        for stream in streams:
            assert len(await stream.aread()) >= LONG_AUDIO_BYTES
            await stream.aclose()
    assert "Traceback" not in echo_server.log()
