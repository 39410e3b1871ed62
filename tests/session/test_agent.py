"""How a ``configure`` is acknowledged when the agent cannot honour one of its settings."""

from __future__ import annotations

from voxline.protocol.client_frames import Configure
from voxline.session.agent import ConfigureReport, SessionInfo, Unusable

UNKNOWN_VOICE = Unusable("voice_id", "unknown_voice", "no voice 'zz'; speaking as joe")


def test_an_unusable_setting_is_ignored_with_a_warning_not_honoured() -> None:
    info = SessionInfo("call_1", None, 16000, 16000)
    frame = Configure.of(persona="Be brief.", voice_id="zz")
    report = ConfigureReport(voice_id="joe", unusable=(UNKNOWN_VOICE,))
    warning, configured, ack = report.acknowledgements(info, frame, endpointing_ms=500)
    assert (warning["event"], warning["code"]) == ("warning", "unknown_voice")
    assert configured["voice_id"] == ack["voice_id"] == "joe"  # the voice that speaks
    assert (ack["honored"], ack["ignored"]) == (["persona"], ["voice_id"])


def test_a_later_frame_without_the_setting_is_not_warned_about_again() -> None:
    info = SessionInfo("call_1", None, 16000, 16000)
    report = ConfigureReport(voice_id="joe", unusable=(UNKNOWN_VOICE,))
    events = report.acknowledgements(info, Configure.of(persona="Hi."), endpointing_ms=500)
    assert [event["event"] for event in events] == ["configured", "config_ack"]
    assert events[1]["ignored"] == []
