"""The turn-taking core, driven with plain inputs: no model, no event loop, no sleeps.

Windows are Silero's 32 ms at 16 kHz; the settings are the defaults (speech after 64 ms above
0.5, a turn ends after 500 ms below 0.35, or 400/250 ms when the words sound finished; a
window at 0.9 interrupts at once, less sure speech after 128 ms).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from voxline.session.floor import (
    PRE_ROLL_SECONDS,
    RESUME_GRACE_SECONDS,
    TAIL_SECONDS,
    BargeIn,
    CheckWords,
    CloseIdle,
    Decision,
    DropReply,
    FillSilence,
    Floor,
    Greet,
    JoinTurns,
    Listen,
    Respond,
    Resume,
    Stretch,
)
from voxline.session.turns import Finished, TurnSettings

WINDOW = 0.032
SURE, UNSURE, QUIET = 0.95, 0.7, 0.0


def windows(probability: float, milliseconds: int) -> list[float]:
    return [probability] * round(milliseconds / 1000 / WINDOW)


def floor(**settings: int | float) -> Floor:
    return Floor(TurnSettings(**settings), WINDOW)  # type: ignore[arg-type]


def replying_audibly(f: Floor) -> Floor:
    assert f.typed("input_text") == [Respond(None)]
    f.reply_audible()
    return f


def stretch_of(decisions: list[Decision]) -> Stretch:
    [respond] = [d for d in decisions if isinstance(d, Respond)]
    assert respond.stretch is not None
    return respond.stretch


# ---- endpointing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("silence_ms", "verdict", "ends"),
    [
        (512, Finished.NO, True),  # the full endpointing silence ends any turn
        (448, Finished.NO, False),
        (416, Finished.STATEMENT, True),  # a finished statement: 400 ms
        (384, Finished.STATEMENT, False),
        (256, Finished.QUESTION, True),  # a question: 250 ms
        (224, Finished.QUESTION, False),
    ],
)
def test_a_turn_ends_after_the_silence_its_words_call_for(
    silence_ms: int, verdict: Finished, ends: bool
) -> None:
    f = floor()
    decisions = f.vad(windows(SURE, 640) + windows(QUIET, silence_ms))
    if decisions and isinstance(decisions[-1], Listen):
        assert decisions[-1].paused
        decisions = f.verdict(verdict)
    assert any(isinstance(d, Respond) for d in decisions) is ends


def test_the_turn_covers_a_pre_roll_before_the_speech_and_a_tail_after_it() -> None:
    f = floor()
    f.vad(windows(QUIET, 1024))
    stretch = stretch_of(f.vad(windows(SURE, 640) + windows(QUIET, 512)))
    assert stretch.start == pytest.approx(1.024 - PRE_ROLL_SECONDS)
    assert stretch.speech_end == pytest.approx(1.664)
    assert stretch.end == pytest.approx(1.664 + TAIL_SECONDS)
    assert f.turns == 1


def test_the_agent_hears_the_turn_as_it_goes_and_is_asked_at_each_pause() -> None:
    f = floor()
    assert f.vad(windows(SURE, 320)) == [Listen(paused=False)]
    assert f.vad(windows(QUIET, 32)) == [Listen(paused=True)]
    assert f.verdict(Finished.NO) == []
    assert f.vad(windows(SURE, 64)) == [Listen(paused=False)]


def test_a_blip_shorter_than_speech_is_not_a_turn() -> None:
    f = floor()
    assert f.vad(windows(SURE, 32) + windows(QUIET, 1000)) == []
    assert f.turns == 0


def test_caller_audio_is_forgotten_only_outside_a_turn() -> None:
    f = floor()
    f.vad(windows(QUIET, 640))
    assert f.forget_before(0.64) == pytest.approx(0.64 - PRE_ROLL_SECONDS - WINDOW)
    f.vad(windows(SURE, 320))
    assert f.forget_before(0.96) is None


# ---- barge-in ------------------------------------------------------------------------------

BargeInCase = tuple[Callable[[], Floor], list[float], list[Decision]]


@pytest.mark.parametrize(
    ("make", "probabilities", "expected"),
    [
        # A window Silero is all but sure of interrupts at once, before it counts as speech.
        (lambda: replying_audibly(floor()), windows(SURE, 32), [BargeIn("barge_in")]),
        # Less sure speech interrupts once it has lasted 128 ms...
        (lambda: replying_audibly(floor()), windows(UNSURE, 96), []),
        # (the interruption is the caller's new turn: the agent hears it from there).
        (
            lambda: replying_audibly(floor()),
            windows(UNSURE, 128),
            [BargeIn("barge_in"), Listen(paused=False)],
        ),
        # ... and only that way when sure windows are not trusted on their own.
        (
            lambda: replying_audibly(floor(barge_in_confidence=1.0)),
            windows(SURE, 96),
            [],
        ),
        # A cough under the agent's voice: neither an interruption nor a turn.
        (
            lambda: replying_audibly(floor()),
            windows(UNSURE, 96) + windows(QUIET, 640),
            [],
        ),
        # Silence is not an interruption.
        (lambda: replying_audibly(floor()), windows(QUIET, 640), []),
    ],
)
def test_barge_in_rule(
    make: Callable[[], Floor], probabilities: list[float], expected: list[Decision]
) -> None:
    assert make().vad(probabilities) == expected


def test_an_interruption_becomes_the_callers_next_turn() -> None:
    f = replying_audibly(floor())
    decisions = f.vad(windows(SURE, 640) + windows(QUIET, 512))
    assert decisions[0] == BargeIn("barge_in")
    check = decisions[-1]
    assert isinstance(check, CheckWords)  # soon after the barge-in: did it hold words?
    assert isinstance(f.words(check.stretch, True)[-1], Respond) and f.turns == 2


@pytest.mark.parametrize(("reason", "audible"), [("dtmf", True), ("input_text", False)])
def test_typed_turns_interrupt_only_a_reply_being_heard(reason: str, audible: bool) -> None:
    f = floor()
    f.typed("input_text")
    if audible:
        f.reply_audible()
    expected: list[Decision] = [BargeIn(reason)] if audible else []
    assert f.typed(reason) == [*expected, Respond(None)]


# ---- drafts: replies not heard yet ---------------------------------------------------------


def test_a_caller_who_goes_on_talking_makes_one_longer_turn() -> None:
    f = floor()
    f.vad(windows(QUIET, 640))
    first = stretch_of(f.vad(windows(SURE, 640) + windows(QUIET, 512)))
    # The reply is not heard yet when the caller speaks again.
    assert f.vad(windows(SURE, 64)) == [JoinTurns(), Listen(paused=False)]
    joined = stretch_of(f.vad(windows(SURE, 320) + windows(QUIET, 512)))
    assert joined.start == first.start
    assert joined.speech_end > first.speech_end


def test_a_joined_turn_is_not_joined_once_the_reply_is_heard() -> None:
    f = floor()
    f.vad(windows(SURE, 640) + windows(QUIET, 512))
    f.reply_audible()
    assert f.vad(windows(SURE, 32)) == [BargeIn("barge_in")]


def test_a_reply_that_is_over_leaves_the_floor_to_the_caller() -> None:
    f = floor()
    f.vad(windows(SURE, 640) + windows(QUIET, 512))
    f.reply_audible()
    f.reply_finished(now=1.0)
    assert not f.replying
    assert f.vad(windows(SURE, 64)) == [Listen(paused=False)]


# ---- false interruptions: a sound with no words resumes the reply --------------------------


def check_of(decisions: list[Decision]) -> CheckWords:
    [check] = [d for d in decisions if isinstance(d, CheckWords)]
    return check


# A cough the VAD takes for speech: 160 ms of unsure windows cut the reply off at 128 ms.
COUGH = windows(UNSURE, 160) + windows(QUIET, 512)


@pytest.mark.parametrize(
    ("caller", "held", "expected"),
    [
        # A cough: the turn ends 0.54 s after the cut, the agent finds no words: resume.
        (COUGH, False, [Resume]),
        # Real words ("Wait, stop"): answered as today.
        (windows(UNSURE, 128) + windows(SURE, 800) + windows(QUIET, 512), True, [Respond]),
        # A sound longer than the grace is answered without asking (the agent finds what
        # it finds in it, as today).
        (windows(UNSURE, 128) + windows(SURE, 2000) + windows(QUIET, 512), None, [Respond]),
    ],
)
def test_a_barge_in_that_held_no_words_resumes_the_reply(
    caller: list[float], held: bool | None, expected: list[type]
) -> None:
    f = replying_audibly(floor())
    decisions = f.vad(caller)
    assert decisions[0] == BargeIn("barge_in")
    decisions = decisions[1:]
    if held is not None:
        assert kinds(decisions) == [CheckWords]
        assert f.turns == 1  # not answered (yet)
        decisions = f.words(check_of(decisions).stretch, held)
    assert kinds(decisions) == expected
    assert f.turns == (2 if expected == [Respond] else 1)
    assert f.replying


def test_no_resume_once_the_grace_has_run_out_while_the_agent_listened() -> None:
    f = replying_audibly(floor())
    check = check_of(f.vad(COUGH))
    f.vad(windows(QUIET, round(RESUME_GRACE_SECONDS * 1000)))  # a slow transcription
    assert f.words(check.stretch, False) == [Respond(check.stretch)]


def test_a_sound_that_never_became_a_turn_resumes_after_the_endpointing_silence() -> None:
    f = replying_audibly(floor())
    assert f.vad(windows(SURE, 32)) == [BargeIn("barge_in")]  # one sure window: no turn
    assert f.vad(windows(QUIET, 448)) == []
    assert f.vad(windows(QUIET, 64)) == [Resume()]
    assert f.turns == 1 and f.replying


def test_typed_turns_never_resume() -> None:
    f = replying_audibly(floor())
    assert f.typed("dtmf") == [BargeIn("dtmf"), Respond(None)]
    f.reply_audible()
    assert f.vad(windows(QUIET, 2000)) == []
    assert f.turns == 2


def test_a_caller_who_goes_on_after_the_cough_makes_one_turn_of_both() -> None:
    f = replying_audibly(floor())
    first = check_of(f.vad(COUGH))
    assert f.vad(windows(SURE, 64)) == [JoinTurns(), Listen(paused=False)]
    assert f.words(first.stretch, False) == []  # that check was given up
    joined = check_of(f.vad(windows(SURE, 320) + windows(QUIET, 512)))
    assert joined.stretch.start == first.stretch.start
    assert kinds(f.words(joined.stretch, True)) == [Respond]


def test_the_turn_being_checked_keeps_its_audio() -> None:
    f = replying_audibly(floor())
    f.vad(COUGH)
    assert f.forget_before(10.0) is None


def test_a_second_barge_in_during_the_resumed_reply_is_like_any_other() -> None:
    f = replying_audibly(floor())
    f.words(check_of(f.vad(COUGH)).stretch, False)
    f.reply_audible()
    decisions = f.vad(COUGH)  # another cough: cut off, and resumed again
    assert decisions[0] == BargeIn("barge_in")
    assert f.words(check_of(decisions).stretch, False) == [Resume()]
    f.reply_audible()
    words = windows(SURE, 800) + windows(QUIET, 512)
    decisions = f.vad(words)  # real words: answered
    assert decisions[0] == BargeIn("barge_in")
    assert kinds(f.words(check_of(decisions).stretch, True)) == [Respond]


def test_a_reply_dropped_before_it_was_heard_does_not_resume() -> None:
    f = floor()
    f.typed("input_text")  # answered, not heard yet
    assert kinds(f.vad(COUGH)) == [DropReply, Respond]


# ---- greeting ------------------------------------------------------------------------------


def test_the_first_configure_with_a_greeting_greets_once() -> None:
    f = floor()
    assert f.configured(greeting=False) == []
    assert f.configured(greeting=True) == [Greet()]
    assert f.replying
    assert f.configured(greeting=True) == []


def test_no_greeting_once_the_caller_has_taken_a_turn() -> None:
    f = floor()
    f.typed("dtmf")
    assert f.configured(greeting=True) == []


def greeting(f: Floor) -> Floor:
    assert f.configured(greeting=True) == [Greet()]
    f.reply_audible()
    return f


def kinds(decisions: list[Decision]) -> list[type]:
    return [type(d) for d in decisions if not isinstance(d, Listen)]


def test_turn_0_starts_even_when_the_caller_is_already_talking() -> None:
    f = floor()
    f.vad(windows(SURE, 320))
    assert f.configured(greeting=True) == [Greet()]


@pytest.mark.parametrize(
    ("caller", "then", "expected"),
    [
        # Speech under turn 0 neither cuts it off nor is lost: the turn is held...
        (windows(SURE, 640) + windows(QUIET, 512), "vad", []),
        # ...and answered once the greeting may be interrupted, cutting the rest off,
        (windows(SURE, 640) + windows(QUIET, 512), "heard", [BargeIn, Respond]),
        # or once turn 0 is over (a consent line played in full, or a short greeting).
        (windows(SURE, 640) + windows(QUIET, 512), "finished", [Respond]),
        # A caller still talking when the greeting may be interrupted interrupts it.
        (windows(SURE, 640), "heard", [BargeIn]),
        (windows(SURE, 640), "finished", []),
        # A cough under turn 0 is no turn, as under any reply.
        (windows(UNSURE, 64) + windows(QUIET, 512), "heard", []),
        (windows(UNSURE, 64) + windows(QUIET, 512), "finished", []),
    ],
)
def test_speech_under_turn_0(caller: list[float], then: str, expected: list[type]) -> None:
    f = greeting(floor())
    decisions = f.vad(caller)
    assert kinds(decisions) == []
    if then == "heard":
        decisions = f.greeting_heard()
    elif then == "finished":
        decisions = f.reply_finished(now=1.0)
    assert kinds(decisions) == expected


def test_a_turn_held_under_turn_0_covers_all_the_caller_said() -> None:
    f = greeting(floor())
    f.vad(windows(QUIET, 320) + windows(SURE, 640) + windows(QUIET, 512))
    f.vad(windows(SURE, 320) + windows(QUIET, 512))  # they went on: one turn
    stretch = stretch_of(f.reply_finished(now=1.0))
    assert stretch.start == pytest.approx(0.320 - PRE_ROLL_SECONDS)
    assert stretch.speech_end == pytest.approx(0.320 + 0.640 + 0.512 + 0.320)


def test_a_held_turn_keeps_its_audio() -> None:
    f = greeting(floor())
    f.vad(windows(SURE, 640) + windows(QUIET, 512))
    assert f.forget_before(10.0) is None


def test_once_heard_the_greeting_is_interrupted_like_any_reply() -> None:
    f = greeting(floor())
    assert f.vad(windows(SURE, 32)) == []
    assert f.greeting_heard() == [BargeIn("barge_in")]
    f = greeting(floor())
    assert f.greeting_heard() == []
    assert f.vad(windows(SURE, 32)) == [BargeIn("barge_in")]


@pytest.mark.parametrize(("held", "expected"), [(False, [Resume]), (True, [Respond])])
def test_a_greeting_cut_off_by_a_sound_without_words_resumes(
    held: bool, expected: list[type]
) -> None:
    f = greeting(floor())
    assert f.greeting_heard() == []
    decisions = f.vad(COUGH)
    assert decisions[0] == BargeIn("barge_in")
    assert kinds(f.words(check_of(decisions).stretch, held)) == expected


def test_a_turn_held_under_turn_0_is_answered_without_a_check() -> None:
    """The end of the protection cut the greeting off, not the sound: nothing resumes."""
    f = greeting(floor())
    f.vad(windows(UNSURE, 160) + windows(QUIET, 512))  # a cough under the greeting's start
    assert kinds(f.greeting_heard()) == [BargeIn, Respond]


def test_a_turn_held_until_turn_0_is_over_is_answered_without_a_check() -> None:
    f = greeting(floor())
    f.vad(windows(UNSURE, 160) + windows(QUIET, 512))
    assert kinds(f.reply_finished(now=1.0)) == [Respond]  # nothing was cut off


def test_a_turn_answered_before_turn_0_is_not_held() -> None:
    f = floor()
    f.vad(windows(SURE, 640) + windows(QUIET, 512))
    f.reply_finished(now=1.0)
    assert f.configured(greeting=True) == []


def test_speech_begun_under_a_reply_that_ends_is_the_callers_turn() -> None:
    f = replying_audibly(floor())
    f.vad(windows(UNSURE, 96))  # under the reply's last words: not enough to interrupt
    f.reply_finished(now=1.0)
    assert isinstance(f.vad(windows(UNSURE, 320) + windows(QUIET, 512))[-1], Respond)


# ---- gaps in the caller's stream -----------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "gap", "expected"),
    [
        (windows(SURE, 640), 0.1, []),  # a late frame: not yet a gap
        (windows(SURE, 640), 0.4, []),  # jitter a mobile link or a busy server adds
        (windows(SURE, 640), 0.6, [FillSilence(0.6)]),  # a gap in the turn: silence
        (windows(SURE, 640) + windows(QUIET, 160), 0.7, [FillSilence(0.7)]),
        (windows(QUIET, 640), 5.0, []),  # no turn: nothing to end
        (windows(SURE, 640) + windows(QUIET, 512), 5.0, []),  # the turn has ended
    ],
)
def test_a_gap_in_the_callers_turn_counts_as_silence(
    caller: list[float], gap: float, expected: list[Decision]
) -> None:
    f = Floor(TurnSettings(), WINDOW, idle_seconds=60)
    f.vad(caller)
    assert f.tick(gap, heard=0.0) == expected


def test_the_silence_of_a_gap_ends_the_turn() -> None:
    f = floor()
    f.vad(windows(SURE, 640))
    [fill] = f.tick(10.6, heard=10.0)
    assert isinstance(fill, FillSilence)
    assert isinstance(f.vad(windows(QUIET, round(fill.seconds * 1000)))[-1], Respond)
    assert f.tick(20.0, heard=10.6) == []


# ---- idle ----------------------------------------------------------------------------------


def test_a_call_where_nothing_happens_closes_after_the_idle_limit() -> None:
    f = Floor(TurnSettings(), WINDOW, idle_seconds=10, now=100.0)
    assert f.tick(109.9) == []
    assert f.tick(110.0) == [CloseIdle()]
    f.caller_active(105.0)
    assert f.tick(114.0) == []
    assert f.tick(115.0) == [CloseIdle()]


def test_a_reply_in_progress_keeps_the_call_open_until_it_ends() -> None:
    f = Floor(TurnSettings(), WINDOW, idle_seconds=10)
    f.typed("input_text")
    assert f.tick(60.0) == []
    f.reply_finished(now=60.0)
    assert f.tick(69.0) == []
    assert f.tick(70.0) == [CloseIdle()]


def test_without_an_idle_limit_a_call_never_idles_out() -> None:
    assert Floor(TurnSettings(), WINDOW).tick(1e9) == []


# ---- long talkers --------------------------------------------------------------------------


def test_a_turn_that_reaches_the_longest_a_turn_may_be_ends_there() -> None:
    f = floor(max_turn_ms=3000)
    decisions = f.vad(windows(SURE, 2560))
    assert not any(isinstance(d, Respond) for d in decisions)
    stretch = stretch_of(f.vad(windows(SURE, 640)))
    assert stretch.end - stretch.start == pytest.approx(3.0, abs=WINDOW)


def test_a_caller_who_talks_on_gets_turns_of_bounded_length() -> None:
    """Speech that goes on after a turn cut at its longest is not joined to it: the unheard
    answer is dropped and the speech becomes the next turn, no longer than the first."""
    f = floor(max_turn_ms=3000)
    first = stretch_of(f.vad(windows(SURE, 3200)))
    decisions = f.vad(windows(SURE, 3200))
    assert DropReply() in decisions and JoinTurns() not in decisions
    second = stretch_of(decisions)
    assert second.start > first.speech_end - PRE_ROLL_SECONDS - WINDOW
    assert second.end - second.start <= 3.0 + WINDOW
