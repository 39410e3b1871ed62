"""Golden bytes for every frame kind, both directions (docs/protocol.md, "Framing")."""

import pytest

from voxline.protocol import events
from voxline.protocol.frames import (
    MAX_AUDIO_BYTES,
    MAX_CONTROL_BYTES,
    Audio,
    Control,
    Dropped,
    Framing,
    MessageTooLarge,
    demux,
    encode_audio,
    encode_event,
    negotiate_framing,
)


def test_text_json_is_control() -> None:
    assert demux('{"type":"configure","persona":"x"}') == Control(
        {"type": "configure", "persona": "x"}, text=True
    )


@pytest.mark.parametrize("text", ["hello", "[1,2]", '"str"', "{broken", ""])
def test_text_that_is_not_a_json_object_is_dropped(text: str) -> None:
    assert isinstance(demux(text), Dropped)


def test_tagged_control() -> None:
    frame = demux(b'\x03{"type":"dtmf","digit":"5"}')
    assert frame == Control({"type": "dtmf", "digit": "5"}, text=False)


def test_tagged_audio_strips_the_tag() -> None:
    frame = demux(b"\x01\x10\x00\xf0\xff")
    assert isinstance(frame, Audio)
    assert bytes(frame.pcm) == b"\x10\x00\xf0\xff"


def test_even_length_binary_is_raw_pcm_whole() -> None:
    frame = demux(b"\x01\x02\x03\x04")
    assert isinstance(frame, Audio)
    assert bytes(frame.pcm) == b"\x01\x02\x03\x04"


def test_control_tag_with_non_json_even_length_falls_through_to_audio() -> None:
    frame = demux(b"\x03{\x00\x00")
    assert isinstance(frame, Audio)
    assert bytes(frame.pcm) == b"\x03{\x00\x00"


@pytest.mark.parametrize("data", [b"\x05\x00\x00", b"\x03{no!", b"\x02abcd", b""])
def test_everything_else_is_dropped(data: bytes) -> None:
    assert isinstance(demux(data), Dropped)


def test_absurd_json_is_dropped_not_fatal() -> None:
    assert isinstance(demux('{"a":' + "[" * 10_000), Dropped)
    assert isinstance(demux(b"\x03{" + b'"a":' + b"[" * 10_000 + b"!"), Dropped)


def test_limits() -> None:
    demux(b"\x00" * MAX_AUDIO_BYTES)
    with pytest.raises(MessageTooLarge):
        demux(b"\x00" * (MAX_AUDIO_BYTES + 2))
    body = '{"type":"configure","persona":"' + "a" * (MAX_CONTROL_BYTES - 40) + '"}'
    assert isinstance(demux(body), Control)
    with pytest.raises(MessageTooLarge):
        demux('{"type":"configure","persona":"' + "a" * MAX_CONTROL_BYTES + '"}')
    with pytest.raises(MessageTooLarge):
        demux(b"\x03" + ('{"p":"' + "a" * MAX_CONTROL_BYTES + '"}').encode())
    with pytest.raises(MessageTooLarge):  # multi-byte characters count in bytes
        demux('{"p":"' + "é" * (MAX_CONTROL_BYTES // 2) + '"}')


def test_framing_negotiation() -> None:
    assert negotiate_framing(Control({}, text=True)) is Framing.RAW
    assert negotiate_framing(Control({}, text=False)) is Framing.TAGGED
    assert negotiate_framing(Audio(b"\x00\x00")) is Framing.TAGGED
    assert negotiate_framing(None) is Framing.TAGGED
    assert negotiate_framing(Control({}, text=True), Framing.TAGGED) is Framing.TAGGED
    assert negotiate_framing(None, Framing.RAW) is Framing.RAW


def test_outbound_golden_bytes() -> None:
    flush = events.flush()
    assert encode_event(flush, Framing.RAW) == '{"event":"flush","reason":"barge_in"}'
    assert encode_event(flush, Framing.TAGGED) == b'\x03{"event":"flush","reason":"barge_in"}'
    transcript = events.transcript("user", "hi there", final=True)
    assert (
        encode_event(transcript, Framing.TAGGED)
        == b'\x02{"event":"transcript","role":"user","text":"hi there","final":true}'
    )
    assert encode_event(transcript, Framing.RAW) == (
        '{"event":"transcript","role":"user","text":"hi there","final":true}'
    )
    assert encode_audio(b"\x01\x00", Framing.TAGGED) == b"\x01\x01\x00"
    assert encode_audio(b"\x01\x00", Framing.RAW) == b"\x01\x00"


def test_utf8_is_sent_as_is() -> None:
    assert encode_event(events.transcript("assistant", "café", final=False), Framing.TAGGED) == (
        b'\x02{"event":"transcript","role":"assistant","text":"caf\xc3\xa9","final":false}'
    )
