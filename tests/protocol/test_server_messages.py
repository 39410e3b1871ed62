"""Decoding server messages: golden frames of both framings."""

from __future__ import annotations

import pytest

from voxline.protocol import events
from voxline.protocol.frames import Framing, encode_audio, encode_event
from voxline.protocol.server_messages import (
    AgentAudio,
    ServerEvent,
    audio_rate,
    close_meaning,
    decode,
    framing_of,
)

TRANSCRIPT = b'{"event":"transcript","role":"user","text":"hi","final":true}'


@pytest.mark.parametrize(
    ("message", "framing", "expected"),
    [
        (
            '{"event":"flush","reason":"barge_in"}',
            Framing.RAW,
            ServerEvent("flush", {"reason": "barge_in"}),
        ),
        (b"\x00\x01\xff\x7f", Framing.RAW, AgentAudio(b"\x00\x01\xff\x7f")),
        # Raw audio that happens to start like a tagged control frame is still audio.
        (b'\x03{"event":"x"}', Framing.RAW, AgentAudio(b'\x03{"event":"x"}')),
        (b"\x01\x00\x01\xff\x7f", Framing.TAGGED, AgentAudio(b"\x00\x01\xff\x7f")),
        (
            b"\x02" + TRANSCRIPT,
            Framing.TAGGED,
            ServerEvent("transcript", {"role": "user", "text": "hi", "final": True}),
        ),
        (
            b'\x03{"event":"session_end","reason":"session_ending"}',
            Framing.TAGGED,
            ServerEvent("session_end", {"reason": "session_ending"}),
        ),
        # Text on a tagged connection is read anyway.
        (
            '{"event":"warning","code":"c","message":"m"}',
            Framing.TAGGED,
            ServerEvent("warning", {"code": "c", "message": "m"}),
        ),
    ],
)
def test_decode_golden(message: str | bytes, framing: Framing, expected: object) -> None:
    assert decode(message, framing) == expected


@pytest.mark.parametrize(
    ("message", "framing"),
    [
        ("not json", Framing.RAW),
        ("[1, 2]", Framing.RAW),
        ('{"no_event": 1}', Framing.RAW),
        ('{"event": ""}', Framing.RAW),
        (b"\x00\x01\x02", Framing.RAW),  # odd length
        (b"", Framing.RAW),
        (b"", Framing.TAGGED),
        (b"\x01\x00", Framing.TAGGED),  # odd audio body
        (b"\x03not json", Framing.TAGGED),
        (b"\x09{}", Framing.TAGGED),  # unknown tag
    ],
)
def test_decode_rejects_malformed(message: str | bytes, framing: Framing) -> None:
    assert decode(message, framing) is None


@pytest.mark.parametrize("framing", list(Framing))
def test_decode_inverts_the_servers_encoding(framing: Framing) -> None:
    for event in (
        events.hello(call_id="c", in_rate=16000, out_rate=24000, server="voxline"),
        events.transcript("assistant", "Hello there", final=False),
        events.error("unauthorized", "bad key"),
    ):
        body = {key: value for key, value in event.items() if key != "event"}
        assert decode(encode_event(event, framing), framing) == ServerEvent(event["event"], body)
    assert decode(encode_audio(b"\x10\x20" * 240, framing), framing) == AgentAudio(
        b"\x10\x20" * 240
    )


def test_framing_of_first_message() -> None:
    assert framing_of('{"event":"hello"}') is Framing.RAW
    assert framing_of(b'\x03{"event":"hello"}') is Framing.TAGGED


def test_audio_rate() -> None:
    assert audio_rate("pcm16@16000") == 16000
    for value in ("pcm16", "mulaw@8000", "pcm16@", "pcm16@0", 24000, None):
        assert audio_rate(value) is None


def test_close_meaning() -> None:
    assert "key or token" in close_meaning(4401)
    assert "omni:session" in close_meaning(4403)
    assert close_meaning(4999) == "application-defined close code"
    assert close_meaning(3999) == "unknown close code"
