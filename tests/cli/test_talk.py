"""``voxline talk`` against a scripted server, and the pieces it is made of."""

from __future__ import annotations

import asyncio
import io
import wave
from pathlib import Path

import numpy as np
import pytest
import typer
from click.testing import Result
from rich.console import Console
from typer.testing import CliRunner

from tests.support.scripted_server import KEY, ScriptedServer
from voxline.cli.talk import (
    REPLY_START_TIMEOUT,
    WORDLESS_REPLY_QUIET,
    AgentTrack,
    Display,
    Replies,
    talk,
)
from voxline.client.wav import write_wav
from voxline.protocol import events
from voxline.protocol.server_messages import ServerEvent

app = typer.Typer()
app.command()(talk)


def tone(seconds: float, rate: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return np.rint(8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


async def run_talk(*args: str) -> Result:
    """Run the command in a thread: it runs its own event loop, the server runs in ours."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


def read_out(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        return wav.getframerate(), np.frombuffer(wav.readframes(wav.getnframes()), "<i2")


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


async def test_talk_plays_wavs_and_saves_the_agent_on_the_callers_timeline(tmp_path: Path) -> None:
    write_wav(tmp_path / "one.wav", tone(0.3, 8000).tobytes(), 8000)
    write_wav(tmp_path / "two.wav", tone(0.3, 24000, hz=300).tobytes(), 24000)
    script = {
        5: [events.transcript("user", "hello", final=False)],
        10: [events.transcript("user", "hello there", final=True)],
        12: [
            events.turn_begin(call_id="c", turn=1, since_caller_end_ms=300),
            events.transcript("assistant", "hi, how can I help?", final=True),
            events.flush(),
            events.barge_in(),
        ],
    }
    async with ScriptedServer(on_audio=script) as server:
        result = await run_talk(
            "--url", server.url, "--key", KEY,
            "--wav", str(tmp_path / "one.wav"), "--wav", str(tmp_path / "two.wav"),
            "--gap", "0.2", "--wait", "0.3", "--rate", "16000", "--framing", "raw",
            "--label", "desk", "--configure", '{"greeting": "Hi!", "voice_id": "v"}',
            "--out", str(tmp_path / "agent.wav"),
        )  # fmt: skip

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.endswith("user: hello") for line in lines)  # partial, dimmed
    assert any(line.endswith("user: hello there") for line in lines)
    assert any(line.endswith("agent: hi, how can I help?") for line in lines)
    for name in ("hello", "session_started", "configured", "turn_begin", "flush", "barge_in"):
        assert any(f"s  {name}" in line for line in lines), name
    assert lines[-2].endswith('session_end {"call_id":"call_scripted","reason":"session_ending"}')
    assert "saved" in lines[-1]

    session = server.sessions[0]
    assert session.query["session_label"] == "desk"
    assert session.controls[0] == {"type": "configure", "greeting": "Hi!", "voice_id": "v"}
    assert session.controls[-1] == {"type": "session_ending"}
    timeline = 0.3 + 0.2 + 0.3 + 0.3
    assert len(session.audio_bytes()) == round(timeline * 16000) * 2

    rate, agent = read_out(tmp_path / "agent.wav")
    assert rate == 16000
    assert timeline <= len(agent) / rate < timeline + 0.2

    def level(start: float, end: float) -> float:
        return rms(agent[round(start * rate) : round(end * rate)])

    # The echoed tones sit where the caller spoke them, the gap and the wait stay silent.
    assert level(0.02, 0.2) > 4000
    assert level(0.34, 0.46) < 100
    assert level(0.55, 0.75) > 4000
    assert level(0.85, timeline) < 100


async def test_talk_waits_for_the_reply_to_the_last_wav_by_default(tmp_path: Path) -> None:
    write_wav(tmp_path / "one.wav", tone(0.2, 16000).tobytes(), 16000)  # frames 1-10
    script = {
        15: [events.turn_begin(call_id="c", turn=1, since_caller_end_ms=100), events.turn()],
        20: [events.transcript("assistant", "We open at", final=False)],
        # A pause within the reply does not end it: only its final transcript does.
        60: [events.transcript("assistant", "We open at eight.", final=True)],
    }
    async with ScriptedServer(on_audio=script) as server:
        result = await run_talk(
            "--url", server.url, "--key", KEY, "--wav", str(tmp_path / "one.wav"),
            "--rate", "16000", "--out", str(tmp_path / "agent.wav"),
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "agent: We open at eight." in result.output
    frames = len(server.sessions[0].audio)
    assert 60 <= frames <= 64  # silence after the WAV until the reply was over, then goodbye
    assert server.sessions[0].controls[-1] == {"type": "session_ending"}
    _, agent = read_out(tmp_path / "agent.wav")
    assert len(agent) >= frames * 320  # the whole call, on the caller's timeline


def test_replies_end_with_their_words_or_their_audio() -> None:
    replies = Replies()
    assert not replies.answered(1.0, 1.0)  # nothing yet: wait for the reply to start
    assert replies.answered(1.0, 1.0 + REPLY_START_TIMEOUT)  # ... but not for ever
    replies.event(2.0, ServerEvent("turn", {"role": "assistant"}))
    replies.audio(2.1)
    replies.event(
        2.1, ServerEvent("transcript", {"role": "assistant", "text": "a", "final": False})
    )
    assert not replies.answered(1.0, 9.0)  # words to come, however long the pause
    replies.event(
        9.0, ServerEvent("transcript", {"role": "assistant", "text": "a.", "final": True})
    )
    assert replies.answered(1.0, 9.0)
    assert not replies.answered(9.5, 9.5)  # a reply before the caller's last words is not one

    replies.event(10.0, ServerEvent("turn", {"role": "assistant"}))  # the echo agent's: no words
    replies.audio(10.5)
    assert not replies.answered(9.5, 11.0)
    assert replies.answered(9.5, 10.5 + WORDLESS_REPLY_QUIET)

    replies.event(12.0, ServerEvent("turn", {"role": "assistant"}))
    replies.event(12.2, ServerEvent("flush", {"reason": "barge_in"}))  # interrupted: over
    assert replies.answered(11.0, 12.2)


async def test_talk_exits_non_zero_when_the_server_refuses(tmp_path: Path) -> None:
    write_wav(tmp_path / "one.wav", tone(0.1, 16000).tobytes(), 16000)
    async with ScriptedServer() as server:
        result = await run_talk(
            "--url", server.url, "--key", "vx_test_wrong", "--wav", str(tmp_path / "one.wav"),
            "--wait", "0", "--out", str(tmp_path / "agent.wav"),
        )  # fmt: skip
    assert result.exit_code == 1
    assert "error" in result.output and "invalid API key" in result.output
    assert "the server closed the session: 4401 unauthorized" in result.output
    assert "key or token is missing" in result.output
    assert not (tmp_path / "agent.wav").exists()  # no session, nothing to save


async def test_talk_reports_a_server_it_cannot_reach(tmp_path: Path) -> None:
    write_wav(tmp_path / "one.wav", tone(0.1, 16000).tobytes(), 16000)
    async with ScriptedServer() as server:
        url = server.url
    result = await run_talk("--url", url, "--key", KEY, "--wav", str(tmp_path / "one.wav"))
    assert result.exit_code == 1
    assert "cannot connect" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--configure", "{not json"], "not JSON"),
        (["--configure", "[1]"], "must be a JSON object"),
        (["--rate", "44100"], "must be one of 8000, 16000, 24000"),
        (["--key", "two words"], "subprotocol"),
    ],
)
def test_talk_rejects_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    write_wav(tmp_path / "one.wav", b"", 16000)
    base = ["--url", "http://127.0.0.1:1", "--key", KEY, "--wav", str(tmp_path / "one.wav")]
    result = CliRunner().invoke(app, base + args)
    assert result.exit_code == 2
    assert message in result.output


# The agent's track


def pcm(seconds: float, rate: int, value: int = 1000) -> bytes:
    return np.full(round(seconds * rate), value, dtype="<i2").tobytes()


def test_agent_track_plays_chunks_back_to_back_from_their_arrival() -> None:
    track = AgentTrack()
    track.add(0.5, pcm(0.1, 1000), 1000)
    track.add(0.55, pcm(0.1, 1000, 2000), 1000)  # arrives early: queued after the first
    track.add(1.0, pcm(0.1, 1000, 3000), 1000)  # after a silence
    assert track.end == pytest.approx(1.1)
    out = np.frombuffer(track.render(1000, 2.0), dtype="<i2")
    assert len(out) == 2000
    assert set(out[:500]) == {0}
    assert set(out[500:600]) == {1000} and set(out[600:700]) == {2000}
    assert set(out[700:1000]) == {0} and set(out[1000:1100]) == {3000}
    assert set(out[1100:]) == {0}


def test_agent_track_flush_drops_what_had_not_played() -> None:
    track = AgentTrack()
    for _ in range(5):
        track.add(0.0, pcm(0.1, 1000), 1000)  # a 0.5 s reply delivered all at once
    track.flush(0.25)
    assert track.end == pytest.approx(0.25)
    assert track.speech_seconds == pytest.approx(0.25)
    track.add(0.3, pcm(0.1, 1000, 7), 1000)
    out = np.frombuffer(track.render(1000, 0.0), dtype="<i2")
    assert len(out) == 400
    assert set(out[:250]) == {1000} and set(out[250:300]) == {0} and set(out[300:]) == {7}


def test_agent_track_renders_at_the_output_rate() -> None:
    track = AgentTrack()
    track.add(0.1, tone(0.2, 16000).tobytes(), 16000)
    out = np.frombuffer(track.render(24000, 0.5), dtype="<i2")
    assert len(out) == 12000
    assert rms(out[:2400]) == 0 and rms(out[3000:6600]) > 4000


def test_display_shows_partials_in_place_on_a_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, color_system=None)
    with Display(console) as display:
        display.event(
            1.0, ServerEvent("transcript", {"role": "user", "text": "hel", "final": False})
        )
        display.event(
            1.5, ServerEvent("transcript", {"role": "user", "text": "hello", "final": True})
        )
        display.event(2.0, ServerEvent("flush", {"reason": "barge_in"}))
    printed = [line.strip() for line in buffer.getvalue().splitlines() if "s  " in line]
    assert any(line.endswith("user: hello") for line in printed)
    assert any(line.endswith('flush {"reason":"barge_in"}') for line in printed)
    assert buffer.getvalue().count("user: hel") == 2  # once live, once final
