"""Server events carry exactly the fields of docs/protocol.md ("Server events")."""

import pytest

from voxline.protocol import call_control, events


def test_hello_and_session_started() -> None:
    assert events.hello(call_id="c1", in_rate=16000, out_rate=24000, server="voxline/1") == {
        "event": "hello",
        "protocol": 2,
        "call_id": "c1",
        "audio_in": "pcm16@16000",
        "audio_out": "pcm16@24000",
        "server": "voxline/1",
    }
    started = events.session_started(call_id="c1", label="desk", in_rate=8000, out_rate=8000)
    assert started["session_label"] == started["agent_id"] == "desk"
    assert started["audio_in"] == "pcm16@8000"


def test_transcript_has_exactly_four_keys_and_clean_bounded_text() -> None:
    event = events.transcript("assistant", "a\x00b\nc" + "x" * 5000, final=False)
    assert set(event) == {"event", "role", "text", "final"}
    assert event["text"].startswith("a b c")
    assert len(event["text"]) == 4000


def test_assistant_interrupted_reply_is_bounded() -> None:
    event = events.assistant_interrupted(call_id="c", reply="w " * 400)
    assert len(event["reply"]) == 500


@pytest.mark.parametrize(
    ("action", "event"),
    [
        (
            call_control.Transfer(destination="+1555", reason="asked"),
            {"event": "transfer_to_human", "destination": "+1555", "reason": "asked"},
        ),
        (call_control.Transfer(), {"event": "transfer_to_human"}),
        (call_control.HangUp("bye"), {"event": "end_call", "reason": "bye"}),
        (call_control.SendDigits("12#"), {"event": "send_dtmf", "digits": "12#"}),
    ],
)
def test_call_control_spreads_the_arguments_that_are_set(
    action: call_control.CallControl, event: events.Event
) -> None:
    assert call_control.event(action) == event


def test_error_retry_after_is_whole_seconds() -> None:
    assert events.error("rate_limit_exceeded", "slow down", retry_after=0.2)["retry_after"] == 1
    # Rounded up: a client that waits retry_after seconds is never refused again for it.
    assert events.error("rate_limit_exceeded", "slow down", retry_after=1.4)["retry_after"] == 2
    assert "retry_after" not in events.error("unauthorized", "no")
