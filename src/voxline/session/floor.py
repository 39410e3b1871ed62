"""Who has the floor: the turn-taking core of a session, with no I/O and no clock of its own.

The :class:`Floor` is told what happens (a VAD probability per window, how finished the
agent finds the caller's words, a reply heard or over, a typed turn, a ``configure``, the
caller's activity and the wall clock) and answers with the decisions the session carries
out: start a reply, barge in, drop a reply the caller never heard, resume one cut off by a
sound that held no words, greet, count a gap in the caller's stream as silence, close an
idle call.
The session (:mod:`voxline.session.session`) is the asyncio driver around it; tests drive it
with plain lists of inputs.

Stream time is seconds of caller audio since the first sample; the wall clock (``now``) is
whatever monotonic clock the driver reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from voxline.session.turns import (
    Finished,
    SpeechEnded,
    SpeechStarted,
    TurnDetector,
    TurnSettings,
)

PRE_ROLL_SECONDS: Final = 0.3  # audio kept before detected speech start (VAD onsets are late)
TAIL_SECONDS: Final = 0.15  # audio kept after the last speech window
PAUSE_MS: Final = 32  # silence after which the agent may start on what the caller said so far
GAP_SECONDS: Final = 0.5
"""No caller audio for this long in the middle of their turn is a gap in the stream (a
client that stops sending after its question, a muted browser): it counts as silence,
filled in as the wall clock passes (:class:`FillSilence`). As long as the default
endpointing silence, so that the turn ends about when streamed silence would have ended it,
and well beyond network jitter: frames held back 150 ms on a mobile link, or by a busy
server, had silence filled in before them, splitting the caller's words apart."""
RESUME_GRACE_SECONDS: Final = 2.0
"""After a barge-in, a sound of the caller's that held no words (a cough, a door, a low
rumble the VAD took for speech) resumes the reply it cut off if it is over, and known to
hold no words, within this much stream time. Measured (docs/performance.md, "False
interruptions"): after a low-frequency burst of up to 0.4 s the reply resumed 0.4-0.6 s
after the cut; 2 s leaves room for a longer sound (a coughing fit of about a second) and a
busy machine, while "Wait, stop, I have another question." ends its turn 2.8 s after the
cut and is answered without being asked about; a longer silence would no longer be heard
as the reply going on."""
GREETING_HEARD_MS: Final = 1000
"""Of turn 0's greeting, after its consent line: the caller's speech interrupts it only once
they have heard this much of it (that someone answered, and who)."""


@dataclass(frozen=True, slots=True)
class Stretch:
    """The caller's audio of one turn: ``start`` to ``end`` in stream time, the speech
    itself having stopped at ``speech_end``."""

    start: float
    end: float
    speech_end: float


@dataclass(frozen=True, slots=True)
class Respond:
    """Start a reply to the caller's turn: ``stretch`` of their audio, or None for a typed
    turn (text or digits). Any reply still going is dropped."""

    stretch: Stretch | None


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The caller interrupts the reply they are hearing (``reason``: the ``flush`` reason)."""

    reason: str


@dataclass(frozen=True, slots=True)
class DropReply:
    """Drop a reply the caller has not heard yet: they are talking over where it would be."""


@dataclass(frozen=True, slots=True)
class JoinTurns:
    """Drop the reply the caller has not heard yet: they went on talking, so their speech
    before and after the pause is one turn (it will end in a new :class:`Respond`)."""


@dataclass(frozen=True, slots=True)
class CheckWords:
    """The caller's turn ended soon after they cut a reply off: ask the agent whether it held
    words, and report with :meth:`Floor.words` (it is answered, or the reply resumes)."""

    stretch: Stretch


@dataclass(frozen=True, slots=True)
class Resume:
    """Resume the reply the caller cut off, from where they stopped hearing it: the sound
    that cut it off held no words."""


@dataclass(frozen=True, slots=True)
class Listen:
    """Hand the turn so far to the agent; when ``paused``, ask it how finished the words
    sound and report the verdict (:meth:`Floor.verdict`)."""

    paused: bool


@dataclass(frozen=True, slots=True)
class Greet:
    """Speak the greeting now (turn 0)."""


@dataclass(frozen=True, slots=True)
class FillSilence:
    """The caller's stream has had no audio for ``seconds`` in the middle of their turn:
    count the gap as that much silence."""

    seconds: float


@dataclass(frozen=True, slots=True)
class CloseIdle:
    """Nobody has said or sent anything for the idle limit: close the call."""


Decision = (
    Respond
    | BargeIn
    | DropReply
    | JoinTurns
    | CheckWords
    | Resume
    | Listen
    | Greet
    | FillSilence
    | CloseIdle
)


@dataclass(slots=True)
class _Reply:
    answers: float | None  # stream time the turn it answers began, for joining (None: not)
    audible: bool = False
    protected: bool = False  # turn 0 before it may be interrupted


class Floor:
    """Turn-taking for one call: when the caller's turn ends, when they interrupt, and when
    the call has gone idle.

    Barge-in: speech under an audible reply interrupts it once
    :meth:`TurnDetector.interrupting` says so; a sound too short for that (a cough, an
    "mm-hm") is neither an interruption nor a turn. A reply not heard yet is dropped silently
    instead, and if the caller simply went on talking after a pause, the two stretches of
    speech become one turn.

    False interruptions: a barge-in by the caller's voice (not a typed turn) may be no words
    at all. If the caller's turn ends within :data:`RESUME_GRACE_SECONDS` of it, the agent
    is asked whether it held words (:class:`CheckWords`, :meth:`words`): if it did not, and
    the grace has not run out meanwhile, the cut-off reply resumes (:class:`Resume`) instead
    of being answered; a sound that cut the reply off without ever becoming a turn (one
    sure window) resumes it once the caller has been quiet for the endpointing silence.

    Turn 0 (the consent line and greeting) starts as soon as it is configured, even over the
    caller, and is protected until the driver says it may be interrupted
    (:meth:`greeting_heard`): speech under it is still the caller's turn, but one that ends
    meanwhile is held and answered once the protection ends, cutting the rest of the greeting
    off, or once turn 0 is over.
    """

    def __init__(
        self,
        settings: TurnSettings,
        window_seconds: float,
        *,
        idle_seconds: float | None = None,
        now: float = 0.0,
    ) -> None:
        self.settings = settings
        self.turns = 0  # caller turns answered
        self._detector = TurnDetector(settings, window_seconds)
        self._window = window_seconds
        self._idle_seconds = idle_seconds
        self._reply: _Reply | None = None
        self._utterance_start: float | None = None
        self._speech_during_reply = False
        self._greeted = False
        self._held: Stretch | None = None  # a turn that ended under the protected turn 0
        self._cut: float | None = None  # stream time a reply was cut off that may resume
        self._checking: Stretch | None = None  # a turn the agent is asked about (CheckWords)
        self._last_activity = now

    # ---- what the driver reads ----------------------------------------------------------

    @property
    def replying(self) -> bool:
        return self._reply is not None

    @property
    def in_turn(self) -> bool:
        """The caller is in the middle of a turn (a gap in their stream is a pause)."""
        return self._detector.speaking

    @property
    def utterance_start(self) -> float:
        """Stream time the caller's current turn began (0 before any)."""
        return self._utterance_start or 0.0

    def forget_before(self, processed: float) -> float | None:
        """Stream time before which caller audio is no longer needed, with ``processed``
        seconds through the VAD; None while a turn is being kept."""
        if self._detector.speaking or self._utterance_start is not None:
            return None
        if self._held is not None or self._checking is not None:
            return None
        return processed - PRE_ROLL_SECONDS - self._window

    # ---- inputs ---------------------------------------------------------------------------

    def vad(self, probabilities: Iterable[float]) -> list[Decision]:
        """VAD probabilities for the next windows of caller audio."""
        decisions: list[Decision] = []
        detector = self._detector
        for probability in probabilities:
            match detector.feed(probability):
                case SpeechStarted(at=at):
                    self._speech_started(at, decisions)
                case SpeechEnded(at=at):
                    self._speech_ended(at, decisions)
            if self._reply is not None and self._reply.protected:
                self._hear_under_turn_0()
            elif self._reply is not None:
                self._maybe_barge_in(decisions)
            elif self._too_long():
                ended = detector.end_turn()
                assert ended is not None
                self._speech_ended(ended.at, decisions, joinable=False)
            else:
                self._resume_after_blip(decisions)
        if detector.speaking and not self._speech_during_reply:
            decisions.append(Listen(paused=detector.silence_seconds * 1000 >= PAUSE_MS))
        return decisions

    def verdict(self, finished: Finished) -> list[Decision]:
        """How finished the agent finds the caller's words, asked at a pause
        (:class:`Listen`): a finished turn ends after a shorter silence."""
        decisions: list[Decision] = []
        silence_ms = self._detector.silence_seconds * 1000
        if finished is not Finished.NO and silence_ms >= self.settings.end_silence_ms(finished):
            ended = self._detector.end_turn()
            if ended is not None:
                self._speech_ended(ended.at, decisions)
        return decisions

    def words(self, stretch: Stretch, held: bool) -> list[Decision]:
        """The agent's answer to :class:`CheckWords` for ``stretch``: whether it ``held``
        words. An answer to a check given up (the caller went on) is ignored."""
        if stretch is not self._checking:
            return []
        self._checking = None
        decisions: list[Decision] = []
        if held or not self._within_grace():
            self._respond(stretch, decisions, check=False)
        else:
            self._resume(decisions)
        return decisions

    def typed(self, reason: str) -> list[Decision]:
        """A typed turn (``reason``: ``dtmf`` or ``input_text``): it interrupts an audible
        reply and is answered at once."""
        decisions: list[Decision] = []
        if self._reply is not None and self._reply.audible:
            decisions.append(BargeIn(reason))
        self._respond(None, decisions)  # a typed turn is words: nothing resumes
        return decisions

    def configured(self, *, greeting: bool) -> list[Decision]:
        """A ``configure`` was applied; ``greeting``: the agent has one to speak. Turn 0 is
        the first configure with a greeting, unless the caller has already been answered;
        it starts even if they are talking, and is protected until :meth:`greeting_heard`."""
        if self._greeted or self.turns > 0 or not greeting:
            return []
        self._greeted = True
        self._reply = _Reply(answers=None, protected=True)
        return [Greet()]

    def greeting_heard(self) -> list[Decision]:
        """The caller has heard turn 0's consent line and the first
        :data:`GREETING_HEARD_MS` of its greeting: from now on they may interrupt it."""
        reply = self._reply
        decisions: list[Decision] = []
        if reply is None or not reply.protected:
            return decisions
        reply.protected = False
        if self._held is not None or (self._detector.speaking and not self._speech_during_reply):
            # A turn held, or the caller in the middle of one: the end of the protection
            # cuts turn 0 off, not a sound, so it does not resume.
            self._reply = None
            decisions.append(BargeIn("barge_in") if reply.audible else DropReply())
            self._answer_held(decisions)
        else:
            self._maybe_barge_in(decisions)
        return decisions

    def reply_audible(self) -> None:
        """The current reply's first audio went out."""
        if self._reply is not None:
            self._reply.audible = True

    def reply_finished(self, now: float) -> list[Decision]:
        """The current reply is over: heard out, or it had nothing to say. A turn held under
        turn 0 is answered now; speech that began under the reply and goes on is the
        caller's turn."""
        self._reply = None
        self._last_activity = max(self._last_activity, now)
        decisions: list[Decision] = []
        if self._held is not None:
            self._answer_held(decisions)
        elif self._detector.speaking:
            self._speech_during_reply = False
        return decisions

    def caller_active(self, now: float) -> None:
        """The caller sent something (audio or a frame) at ``now``."""
        self._last_activity = max(self._last_activity, now)

    def tick(self, now: float, *, heard: float | None = None) -> list[Decision]:
        """The wall clock moved on; ``heard``: when caller audio (or silence filled in for a
        gap) last arrived, if ever."""
        if heard is not None:
            self.caller_active(heard)
            if self._detector.speaking and now - heard >= GAP_SECONDS:
                return [FillSilence(now - heard)]
        if (
            self._idle_seconds is not None
            and self._reply is None
            and now - self._last_activity >= self._idle_seconds
        ):
            return [CloseIdle()]
        return []

    # ---- rules ----------------------------------------------------------------------------

    def _speech_started(self, at: float, decisions: list[Decision]) -> None:
        reply = self._reply
        if self._checking is not None:
            # The caller went on after a turn the agent is asked about: one longer turn.
            self._utterance_start, self._checking = self._checking.start, None
            decisions.append(JoinTurns())
            return
        if self._held is not None:
            # The caller went on after a turn held under turn 0: one longer turn.
            self._utterance_start, self._held = self._held.start, None
            self._speech_during_reply = False
            return
        if reply is not None and not reply.audible and reply.answers is not None:
            # The caller went on talking before the reply could be heard: one longer turn.
            self._reply = None
            self._utterance_start = reply.answers
            decisions.append(JoinTurns())
            return
        self._speech_during_reply = reply is not None
        self._utterance_start = max(0.0, at - PRE_ROLL_SECONDS)

    def _speech_ended(self, at: float, decisions: list[Decision], *, joinable: bool = True) -> None:
        start, self._utterance_start = self._utterance_start, None
        if self._speech_during_reply or start is None:
            # Speech under the agent's voice too short to barge in: a cough, a "mm-hm".
            self._speech_during_reply = False
            return
        stretch = Stretch(start, at + TAIL_SECONDS, at)
        if self._reply is not None and self._reply.protected:
            self._held = stretch  # answered once turn 0 may be interrupted, or is over
            return
        self._respond(stretch, decisions, joinable=joinable)

    def _hear_under_turn_0(self) -> None:
        """Speech under the protected turn 0 enough to interrupt a reply is the caller's
        turn (held, not cutting turn 0 off); less is a cough, as under any reply."""
        if self._speech_during_reply and self._detector.interrupting():
            self._speech_during_reply = False

    def _answer_held(self, decisions: list[Decision]) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._respond(held, decisions)

    def _too_long(self) -> bool:
        """The caller's turn has reached the longest a turn may be (with its tail)."""
        start = self._utterance_start
        if start is None or not self._detector.speaking:
            return False
        limit = self.settings.max_turn_ms / 1000 - TAIL_SECONDS
        return self._detector.now - start >= limit - 1e-6

    def _maybe_barge_in(self, decisions: list[Decision]) -> None:
        """An audible reply is cut off from the speech run's first window sure enough to
        interrupt, before the detector has called it speech; one not heard yet only once the
        detector has (a caller who went on talking has had the turns joined first)."""
        reply = self._reply
        if reply is None or not (reply.audible or self._speech_during_reply):
            return
        if not self._detector.interrupting():
            return
        self._speech_during_reply = False
        self._cut_off(reply, decisions)

    def _cut_off(self, reply: _Reply, decisions: list[Decision]) -> None:
        """The caller's sound cuts ``reply`` off: one heard may resume if it held no words."""
        self._reply = None
        if reply.audible:
            self._cut = self._detector.now
            decisions.append(BargeIn("barge_in"))
        else:
            decisions.append(DropReply())

    def _within_grace(self) -> bool:
        cut = self._cut
        return cut is not None and self._detector.now - cut <= RESUME_GRACE_SECONDS + 1e-6

    def _resume(self, decisions: list[Decision]) -> None:
        self._cut = None
        self._reply = _Reply(answers=None)
        decisions.append(Resume())

    def _resume_after_blip(self, decisions: list[Decision]) -> None:
        """A sound that cut the reply off but never became a turn: once the caller has been
        quiet for the endpointing silence, the reply resumes (or, past the grace, not)."""
        if self._cut is None or self._reply is not None or self._checking is not None:
            return
        detector = self._detector
        if detector.speaking or self._utterance_start is not None:
            return
        if detector.quiet_seconds * 1000 < self.settings.endpointing_ms - 1e-6:
            return
        if self._within_grace():
            self._resume(decisions)
        else:
            self._cut = None

    def _respond(
        self,
        stretch: Stretch | None,
        decisions: list[Decision],
        *,
        joinable: bool = True,
        check: bool = True,
    ) -> None:
        """Answer a turn; a ``joinable`` one is joined to speech that follows before the
        answer is heard (a turn cut at its longest is not: it would grow without end). A
        spoken turn soon after a barge-in is first checked for words (:class:`CheckWords`)."""
        self._checking = None
        if stretch is not None and check and self._within_grace():
            self._checking = stretch
            decisions.append(CheckWords(stretch))
            return
        self._cut = None
        self.turns += 1
        answers = stretch.start if stretch is not None and joinable else None
        self._reply = _Reply(answers=answers)
        decisions.append(Respond(stretch))
