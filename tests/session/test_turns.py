"""Turn-taking from VAD probabilities."""

from voxline.session.turns import (
    Finished,
    SpeechEnded,
    SpeechStarted,
    TurnDetector,
    TurnSettings,
)

WINDOW = 0.032


def run(probabilities: list[float], **settings: int) -> list[tuple[str, float]]:
    detector = TurnDetector(TurnSettings(**settings), WINDOW)  # type: ignore[arg-type]
    found = []
    for p in probabilities:
        event = detector.feed(p)
        if isinstance(event, SpeechStarted):
            found.append(("start", round(event.at, 3)))
        elif isinstance(event, SpeechEnded):
            found.append(("end", round(event.at, 3)))
    return found


def test_speech_then_endpoint() -> None:
    probs = [0.0] * 10 + [0.9] * 20 + [0.0] * 30
    assert run(probs, endpointing_ms=320) == [("start", 0.32), ("end", 0.96)]


def test_blip_shorter_than_min_speech_is_ignored() -> None:
    assert run([0.0, 0.9, 0.0, 0.0] * 10, min_speech_ms=64) == []


def test_short_pause_does_not_end_the_turn() -> None:
    probs = [0.9] * 10 + [0.0] * 5 + [0.9] * 10 + [0.0] * 20
    assert run(probs, endpointing_ms=320) == [("start", 0.0), ("end", 0.8)]


def test_hysteresis_keeps_speech_through_mid_probabilities() -> None:
    probs = [0.9] * 5 + [0.4] * 30 + [0.0] * 20
    events = run(probs, endpointing_ms=320)
    assert events == [("start", 0.0), ("end", round(35 * WINDOW, 3))]


def test_speech_seconds_grows_while_speaking() -> None:
    detector = TurnDetector(TurnSettings(), WINDOW)
    for _ in range(10):
        detector.feed(0.95)
    assert abs(detector.speech_seconds - 10 * WINDOW) < 1e-9
    assert detector.speaking


def test_end_turn_ends_the_turn_at_the_last_speech_window() -> None:
    detector = TurnDetector(TurnSettings(endpointing_ms=500), WINDOW)
    for p in [0.9] * 10 + [0.0] * 5:
        detector.feed(p)
    ended = detector.end_turn()
    assert isinstance(ended, SpeechEnded) and abs(ended.at - 10 * WINDOW) < 1e-9
    assert not detector.speaking
    assert detector.end_turn() is None  # no turn to end
    assert detector.feed(0.0) is None  # and the silence that follows ends nothing more
    started = [detector.feed(0.9) for _ in range(3)]
    assert any(isinstance(event, SpeechStarted) for event in started)


def test_finished_sounding_turns_end_after_their_share_of_the_endpointing_silence() -> None:
    settings = TurnSettings()
    assert settings.end_silence_ms(Finished.NO) == 500
    assert settings.end_silence_ms(Finished.STATEMENT) == 400
    assert settings.end_silence_ms(Finished.QUESTION) == 250
    settings.set_endpointing(1000)  # a client that asks for patience
    assert [settings.end_silence_ms(f) for f in Finished] == [1000, 800, 500]


def interrupts_after(probabilities: list[float], **settings: float) -> int | None:
    """The window after which the run is enough to cut the agent off, if any."""
    detector = TurnDetector(TurnSettings(**settings), WINDOW)  # type: ignore[arg-type]
    for index, p in enumerate(probabilities):
        detector.feed(p)
        if detector.interrupting():
            return index
    return None


def test_a_window_the_vad_is_sure_of_interrupts_at_once() -> None:
    assert interrupts_after([0.0, 0.0, 0.95, 0.6]) == 2
    assert interrupts_after([0.0, 0.6, 0.7, 0.92]) == 3


def test_less_certain_speech_interrupts_after_barge_in_min_ms() -> None:
    assert interrupts_after([0.0] + [0.7] * 10) == 4  # 4 windows of 32 ms: 128 ms
    assert interrupts_after([0.0] + [0.7] * 10, barge_in_min_ms=64) == 2
    assert interrupts_after([0.7, 0.0, 0.0] * 5) is None  # blips never add up


def test_a_client_can_turn_the_confident_shortcut_off() -> None:
    probs = [0.0, 0.99, 0.99, 0.99, 0.99, 0.99]
    assert interrupts_after(probs, barge_in_confidence=1.0) == 4
    assert interrupts_after(probs, barge_in_confidence=1.0, barge_in_min_ms=0) == 1


def test_a_finished_run_does_not_interrupt_the_next_reply() -> None:
    detector = TurnDetector(TurnSettings(endpointing_ms=320), WINDOW)
    for p in [0.95] * 5 + [0.0] * 10:
        detector.feed(p)
    assert not detector.speaking and not detector.interrupting()
