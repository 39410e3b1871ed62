"""Client frames (docs/protocol.md, "Client frames"): validated, with a clear error for each
malformed one."""

import dataclasses

import pytest

from voxline.protocol import client_frames
from voxline.protocol.client_frames import (
    Configure,
    Dtmf,
    InputText,
    SessionConfig,
    SessionEnding,
    ToolResult,
    parse,
)


def test_configure_keeps_unknown_keys_and_validates_known_ones() -> None:
    parsed = parse(
        {
            "type": "configure",
            "persona": "You are kind.",
            "greeting": "Hi!",
            "endpointing_ms": 700,
            "tools": [{"name": "lookup", "description": "d", "parameters": {"type": "object"}}],
            "x_custom": {"a": 1},
        }
    )
    frame = parsed.frame
    assert isinstance(frame, Configure)
    assert frame.keys == ("persona", "greeting", "endpointing_ms", "tools")
    assert frame.settings.endpointing_ms == 700
    assert frame.settings.tools[0].name == "lookup"
    assert frame.unknown == ("x_custom",)
    assert parsed.notices == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("endpointing_ms", "fast"),
        ("endpointing_ms", 10),
        ("endpointing_ms", True),
        ("persona", 5),
        ("kb_endpoint", "ftp://x"),
        ("kb_endpoint", "http://["),  # urlsplit raises on it
        ("kb_endpoint", "http://kb.example:99999/"),  # .port raises on it
        ("kb_endpoint", "http://:80/"),
        ("kb_endpoint", "http://kb.exa\tmple/"),  # urlsplit would drop the tab
        ("tools", [{"name": "t", "endpoint": "https://[::1/x"}]),
        ("tools", [{"name": "has space"}]),
        ("tools", "nope"),
        ("audio_out", "pcm16@11025"),
        ("audio_out", "pcm16@²"),  # passes str.isdigit(), then int() raises
        ("audio_out", "pcm16@１６０００"),  # fullwidth digits, which int() reads
        ("audio_out", "pcm16@+16000"),
        ("audio_out", 16000.0),
        ("vad_threshold", 2),
    ],
)
def test_malformed_configure_values_are_reported_and_not_applied(key: str, value: object) -> None:
    parsed = parse({"type": "configure", key: value, "voice_id": "v"})
    assert isinstance(parsed.frame, Configure)
    assert parsed.frame.keys == ("voice_id",)
    assert parsed.frame.rejected == (key,)
    assert parsed.frame.settings.voice_id == "v"
    [error] = parsed.notices
    assert error["event"] == "error"
    assert error["code"] == "invalid_configure"
    assert error["param"] == key


def test_a_configure_of_too_many_keys_is_refused_whole() -> None:
    keys = {f"x_{index}": index for index in range(client_frames.MAX_CONFIGURE_KEYS)}
    at_cap = parse({"type": "configure", **keys})
    assert isinstance(at_cap.frame, Configure) and len(at_cap.frame.unknown) == 64
    over = parse({"type": "configure", **keys, "voice_id": "v"})
    assert over.frame is None
    [error] = over.notices
    assert (error["event"], error["code"]) == ("error", "invalid_configure")


def test_audio_out_accepts_format_string_or_rate() -> None:
    assert parse({"type": "configure", "audio_out": "pcm16@16000"}).frame == Configure.of(
        audio_out=16000
    )
    assert parse({"type": "configure", "audio_out": 8000}).frame == Configure.of(audio_out=8000)


def test_a_later_configure_changes_only_the_keys_it_sets() -> None:
    first = parse({"type": "configure", "persona": "P", "endpointing_ms": 700}).frame
    second = parse({"type": "configure", "endpointing_ms": 300, "tools": []}).frame
    assert isinstance(first, Configure)
    assert isinstance(second, Configure)
    config = SessionConfig().merge(first).merge(second)
    assert config == SessionConfig(persona="P", endpointing_ms=300, tools=())


def test_every_session_setting_is_a_configure_key() -> None:
    """A field added to SessionConfig without a validator could never be set."""
    for field in dataclasses.fields(SessionConfig):
        assert field.name in client_frames._CONFIGURE_KEYS


def test_event_key_is_honoured_with_a_warning() -> None:
    parsed = parse({"event": "dtmf", "digit": "7"})
    assert parsed.frame == Dtmf("7")
    assert parsed.notices[0]["event"] == "warning"
    assert parsed.notices[0]["code"] == "client_used_event_key"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "dtmf", "digit": "5"}, Dtmf("5")),
        ({"type": "dtmf", "digits": "12#*a"}, Dtmf("12#*A")),
        ({"type": "input_text", "text": " hello "}, InputText("hello")),
        ({"type": "session_ending"}, SessionEnding()),
        ({"type": "tool_result", "call_id": "t1", "output": "ok"}, ToolResult("t1", "ok")),
        (
            {"type": "tool_result", "call_id": "t1", "result": {"a": 1}},
            ToolResult("t1", '{"a": 1}'),
        ),
        ({"type": "tool_result", "call_id": "t1", "content": "c"}, ToolResult("t1", "c")),
        (
            {"type": "tool_result", "call_id": "t1", "error": "boom"},
            ToolResult("t1", "", "boom"),
        ),
    ],
)
def test_valid_frames(message: dict[str, object], expected: object) -> None:
    parsed = parse(message)
    assert parsed.frame == expected
    assert parsed.notices == []


def test_tool_output_is_truncated_to_6_kb() -> None:
    frame = parse({"type": "tool_result", "call_id": "t", "output": "é" * 10_000}).frame
    assert isinstance(frame, ToolResult)
    assert len(frame.output.encode()) <= 6 * 1024


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "dtmf", "digit": "X"}, "invalid_dtmf"),
        ({"type": "dtmf"}, "invalid_dtmf"),
        ({"type": "input_text", "text": ""}, "invalid_input_text"),
        ({"type": "input_text", "text": 5}, "invalid_input_text"),
        ({"type": "tool_result", "output": "x"}, "invalid_tool_result"),
        ({"type": "teleport"}, "unknown_type"),
        ({"type": 7}, "invalid_frame"),
        ({"persona": "no type"}, "invalid_frame"),
    ],
)
def test_malformed_frames_give_a_clear_error(message: dict[str, object], code: str) -> None:
    parsed = parse(message)
    assert parsed.frame is None
    assert parsed.notices[-1]["event"] == "error"
    assert parsed.notices[-1]["code"] == code
    assert parsed.notices[-1]["message"]


def test_configure_names_a_stored_agent_by_an_agent_id_starting_agent() -> None:
    parsed = parse({"type": "configure", "agent_id": "agent_abc", "greeting": "Hi."})
    frame = parsed.frame
    assert isinstance(frame, Configure) and parsed.notices == []
    assert (frame.agent_id, frame.keys, frame.honored) == (
        "agent_abc",
        ("greeting",),
        ["greeting", "agent_id"],
    )
    label = parse({"type": "configure", "agent_id": "front-desk"}).frame
    assert isinstance(label, Configure)
    assert (label.agent_id, label.unknown) == (None, ("agent_id",))
    bad = parse({"type": "configure", "agent_id": "agent_\n"})
    assert isinstance(bad.frame, Configure) and bad.frame.rejected == ("agent_id",)
    assert bad.notices[0]["code"] == "invalid_configure"
