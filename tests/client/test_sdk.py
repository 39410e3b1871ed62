"""The Python SDK against a scripted server, and its WAV helpers."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from tests.support.scripted_server import KEY, ScriptedServer
from voxline.client import (
    AgentAudio,
    ClientEvent,
    Closed,
    OmniClient,
    ServerEvent,
    realtime_subprotocols,
    realtime_url,
    stream_pcm,
    stream_wav,
)
from voxline.client.wav import read_wav, write_wav
from voxline.protocol.frames import Framing


def tone(seconds: float, rate: int, hz: float = 440.0, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def write_raw_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(samples.dtype.itemsize)
        wav.setframerate(rate)
        wav.writeframes(samples.astype(samples.dtype.newbyteorder("<")).tobytes())


async def collect(client: OmniClient) -> list[ClientEvent]:
    return [item async for item in client.events()]


def names(items: list[ClientEvent]) -> list[str]:
    return [item.name for item in items if isinstance(item, ServerEvent)]


# URL and subprotocols


def test_realtime_url_from_http_base() -> None:
    url = realtime_url("http://127.0.0.1:8000")
    assert url == "ws://127.0.0.1:8000/v1/omni?format=pcm16&rate=24000"


def test_realtime_url_keeps_a_base_path_and_encodes_options() -> None:
    url = realtime_url(
        "https://voice.example.com/agents/",
        session_label="front desk/1",
        rate=16000,
        framing="raw",
        api_key="vx_live_abc",
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "wss",
        "voice.example.com",
        "/agents/v1/omni",
    )
    assert parse_qs(parts.query) == {
        "format": ["pcm16"],
        "rate": ["16000"],
        "session_label": ["front desk/1"],
        "framing": ["raw"],
        "api_key": ["vx_live_abc"],
    }


def test_realtime_url_accepts_a_socket_url() -> None:
    url = realtime_url("ws://h:1/v1/omni?session_label=a", rate=8000, framing=Framing.TAGGED)
    assert url == "ws://h:1/v1/omni?session_label=a&format=pcm16&rate=8000&framing=tagged"


@pytest.mark.parametrize(
    ("base", "options"),
    [
        ("ftp://h", {}),
        ("127.0.0.1:8000", {}),
        ("http://h", {"rate": 44100}),
        ("http://h", {"framing": "json"}),
    ],
)
def test_realtime_url_rejects(base: str, options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        realtime_url(base, **options)  # type: ignore[arg-type]


def test_realtime_subprotocols() -> None:
    assert realtime_subprotocols("vx_test_abc.123") == ["pyai.v1", "pyai-key.vx_test_abc.123"]
    for bad in ("", "has space", "a,b"):
        with pytest.raises(ValueError):
            realtime_subprotocols(bad)


# Sessions end to end


@pytest.mark.parametrize("framing", list(Framing))
async def test_session_end_to_end(framing: Framing) -> None:
    audio = [bytes([n, 0]) * 320 for n in range(1, 4)]
    async with ScriptedServer() as server:
        url = realtime_url(server.url, session_label="desk", rate=16000)
        async with OmniClient.connect(
            url, KEY, framing=framing, configure={"voice_id": "v1"}
        ) as client:
            assert client.subprotocol == "pyai.v1"
            collector = asyncio.create_task(collect(client))
            for chunk in audio:
                await client.send_audio(chunk)
            await client.dtmf("12#")
            await client.input_text("hello")
            await client.tool_result("call_1", {"ok": True})
            await client.configure(language="en", unknown_key=1)
            await client.end()
            items = await collector
            assert (client.close_code, client.close_reason) == (1000, "session_ending")

    session = server.sessions[0]
    assert session.offered == ["pyai.v1", f"pyai-key.{KEY}"]
    assert session.query == {"format": "pcm16", "rate": "16000", "session_label": "desk"}
    assert session.framing is framing
    # The first frame is the configure, as text JSON (raw) or tagged 0x03 (tagged).
    first = session.messages[0][1]
    if framing is Framing.RAW:
        assert first == '{"type":"configure","voice_id":"v1"}'
        assert all(isinstance(m, bytes) for _, m in session.messages[1:4])
    else:
        assert first == b'\x03{"type":"configure","voice_id":"v1"}'
        assert all(isinstance(m, bytes) and m[0] == 0x01 for _, m in session.messages[1:4])
        assert all(isinstance(m, bytes) for _, m in session.messages)
    assert session.audio_bytes() == b"".join(audio)
    assert [c["type"] for c in session.controls] == [
        "configure",
        "dtmf",
        "input_text",
        "tool_result",
        "configure",
        "session_ending",
    ]
    assert session.controls[3] == {
        "type": "tool_result",
        "call_id": "call_1",
        "output": {"ok": True},
    }

    assert names(items) == [
        "hello", "session_started", "configured", "config_ack",
        "dtmf", "dtmf", "dtmf", "transcript", "transcript", "transcript",
        "configured", "config_ack", "session_end",
    ]  # fmt: skip
    events = [item for item in items if isinstance(item, ServerEvent)]
    assert events[0].data["audio_out"] == "pcm16@16000"
    assert events[3].data == {"voice_id": "v1", "honored": ["voice_id"], "ignored": []}
    assert [e.data["digit"] for e in events if e.name == "dtmf"] == ["1", "2", "#"]
    assert events[9].data == {"role": "assistant", "text": "you typed hello", "final": True}
    assert events[11].data["ignored"] == ["unknown_key"]
    assert b"".join(item.pcm for item in items if isinstance(item, AgentAudio)) == b"".join(audio)
    assert items[-1] == Closed(1000, "session_ending")


async def test_connect_by_await_and_events_after_the_end() -> None:
    async with ScriptedServer() as server:
        client = await OmniClient.connect(realtime_url(server.url), KEY, framing="raw")
        async with client:
            await client.end()
            first = await collect(client)
            again = await collect(client)
    assert names(first) == ["hello", "session_started", "configured", "config_ack", "session_end"]
    assert again == [Closed(1000, "session_ending")]
    assert server.sessions[0].controls[0] == {"type": "configure"}


async def test_refusal_after_the_upgrade_surfaces_as_events() -> None:
    async with (
        ScriptedServer() as server,
        OmniClient.connect(realtime_url(server.url), "vx_test_wrong") as client,
    ):
        items = await collect(client)
    assert items == [
        ServerEvent("error", {"code": "unauthorized", "message": "invalid API key"}),
        Closed(4401, "unauthorized"),
    ]
    assert (client.close_code, client.close_reason) == (4401, "unauthorized")
    with pytest.raises(Exception, match="4401"):
        await client.send_audio(b"\x00\x00")


async def test_client_side_validation() -> None:
    async with (
        ScriptedServer() as server,
        OmniClient.connect(realtime_url(server.url), KEY) as client,
    ):
        with pytest.raises(ValueError):
            await client.send_audio(b"\x00")
        with pytest.raises(ValueError):
            await client.dtmf("12x")


# Pacing


async def test_stream_pcm_paces_one_second_in_real_time() -> None:
    rate = 16000
    async with (
        ScriptedServer() as server,
        OmniClient.connect(realtime_url(server.url, rate=rate), KEY) as client,
    ):
        began = time.monotonic()
        await stream_pcm(client, tone(1.0, rate).tobytes(), rate)
        elapsed = time.monotonic() - began
        await client.end()
    assert 0.95 <= elapsed < 1.2  # the last of 50 frames leaves at 0.98 s
    audio = server.sessions[0].audio
    assert [len(pcm) for _, pcm in audio] == [640] * 50
    offsets = [(at - audio[0][0]) - index * 0.02 for index, (at, _) in enumerate(audio)]
    assert max(abs(offset) for offset in offsets) < 0.05


async def test_stream_pcm_schedules_by_deadlines_not_by_sleeps() -> None:
    """Sends that each take 8 ms would add 0.2 s over 25 frames if pacing slept 20 ms each."""

    class SlowClient:
        def __init__(self) -> None:
            self.sent: list[bytes] = []

        async def send_audio(self, pcm: bytes) -> None:
            await asyncio.sleep(0.008)
            self.sent.append(pcm)

    client = SlowClient()
    began = time.monotonic()
    await stream_pcm(client, bytes(8000), 8000)  # type: ignore[arg-type]
    elapsed = time.monotonic() - began
    assert len(client.sent) == 25
    assert 0.48 <= elapsed < 0.6


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
async def test_send_audio_takes_any_length_in_20_ms_frames(rate: int) -> None:
    """A WAV's worth in one call (the server refuses a message over 64 KiB) goes out as
    frames of 20 ms at the connection's rate, unpaced unless asked."""
    pcm = tone(3.3, rate).tobytes()
    async with (
        ScriptedServer() as server,
        OmniClient.connect(realtime_url(server.url, rate=rate), KEY) as client,
    ):
        assert client.rate == rate
        began = time.monotonic()
        await client.send_audio(pcm)
        assert time.monotonic() - began < 0.5
        await client.end()
    sizes = [len(frame) for _, frame in server.sessions[0].audio]
    assert sizes[:-1] == [2 * rate // 50] * (len(sizes) - 1)
    assert 0 < sizes[-1] <= 2 * rate // 50
    assert server.sessions[0].audio_bytes() == pcm


async def test_send_audio_in_real_time_keeps_one_clock_across_calls() -> None:
    rate = 16000
    async with (
        ScriptedServer() as server,
        OmniClient.connect(realtime_url(server.url, rate=rate), KEY) as client,
    ):
        began = time.monotonic()
        for _ in range(5):  # 0.2 s each: one second of audio in all
            await client.send_audio(tone(0.2, rate).tobytes(), realtime=True)
        elapsed = time.monotonic() - began
        await client.end()
    assert 0.95 <= elapsed < 1.2  # the last frame leaves at 0.98 s
    audio = server.sessions[0].audio
    assert len(audio) == 50
    offsets = [(at - audio[0][0]) - index * 0.02 for index, (at, _) in enumerate(audio)]
    assert max(abs(offset) for offset in offsets) < 0.05


async def test_stream_wav_says_a_file_then_its_trailing_silence(tmp_path: Path) -> None:
    write_wav(tmp_path / "q.wav", tone(0.4, 8000).tobytes(), 8000)
    async with (
        ScriptedServer() as server,
        OmniClient.connect(realtime_url(server.url, rate=16000), KEY) as client,
    ):
        began = time.monotonic()
        await stream_wav(client, tmp_path / "q.wav", trailing_silence=0.2)
        elapsed = time.monotonic() - began
        await client.end()
    assert 0.55 <= elapsed < 0.8  # 0.6 s of audio in real time
    samples = np.frombuffer(server.sessions[0].audio_bytes(), dtype="<i2")
    assert len(samples) == round(0.6 * 16000)
    assert np.abs(samples[: round(0.35 * 16000)]).max() > 7000  # the tone, resampled
    assert not samples[round(0.4 * 16000) :].any()


def test_stream_pcm_rejects_bad_frames() -> None:
    with pytest.raises(ValueError):
        asyncio.run(stream_pcm(None, bytes(10), 44100, frame_ms=15))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        asyncio.run(stream_pcm(None, bytes(11), 16000))  # type: ignore[arg-type]


# WAV


def test_wav_round_trip(tmp_path: Path) -> None:
    pcm = tone(0.25, 16000).tobytes()
    write_wav(tmp_path / "a.wav", pcm, 16000)
    with wave.open(str(tmp_path / "a.wav")) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
    assert read_wav(tmp_path / "a.wav", 16000) == pcm


def test_read_wav_mixes_stereo_to_mono(tmp_path: Path) -> None:
    left = np.array([100, -200, 3000, 32767], dtype=np.int16)
    right = np.array([300, -400, -3000, 32767], dtype=np.int16)
    write_raw_wav(tmp_path / "s.wav", np.column_stack([left, right]).ravel(), 8000, channels=2)
    mono = np.frombuffer(read_wav(tmp_path / "s.wav", 8000), dtype="<i2")
    assert mono.tolist() == [200, -300, 0, 32767]


def test_read_wav_resamples_to_the_session_rate(tmp_path: Path) -> None:
    samples = tone(1.0, 48000, hz=1000)
    write_raw_wav(tmp_path / "hi.wav", np.column_stack([samples, samples]).ravel(), 48000, 2)
    mono = np.frombuffer(read_wav(tmp_path / "hi.wav", 16000), dtype="<i2")
    assert len(mono) == 16000
    spectrum = np.abs(np.fft.rfft(mono.astype(np.float64)))
    assert np.argmax(spectrum) == 1000  # bins are 1 Hz apart over one second
    assert np.abs(mono).max() == pytest.approx(8000, rel=0.05)


def test_read_wav_rejects_other_sample_widths(tmp_path: Path) -> None:
    write_raw_wav(tmp_path / "u8.wav", np.full(100, 128, dtype=np.uint8), 8000)
    with pytest.raises(ValueError, match="16-bit"):
        read_wav(tmp_path / "u8.wav", 8000)
    (tmp_path / "junk.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(ValueError, match="not a PCM WAV"):
        read_wav(tmp_path / "junk.wav", 8000)
