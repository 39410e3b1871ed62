"""Turn-taking from VAD probabilities: when the caller starts and stops speaking.

Pure state machine in stream time (seconds since the caller's first sample), fed one VAD
probability per window. Hysteresis like Silero's own iterator: speech starts above
``threshold`` after ``min_speech_ms`` of it, and only ends after ``endpointing_ms`` below
``threshold - 0.15`` — or earlier, when the session ends the turn because the caller's
words sound finished (:meth:`TurnDetector.end_turn`, after
:meth:`TurnSettings.end_silence_ms`).

Speech under the agent's voice interrupts it (:meth:`TurnDetector.interrupting`) at the
first window the VAD is all but sure of, or after ``barge_in_min_ms`` of speech it is less
sure of. Measured with ``scripts/measure/turn_taking.py`` over 128 onsets of four voices:
from the first speech sample, this rule interrupts 66 ms (P50) and 103 ms (P95) later at
16 kHz, 75 and 119 ms at 8 kHz, where 96 ms of speech took 108 and 157 ms, 115 and 163 ms;
and low-frequency noise, which Silero often calls speech at 0.5–0.9 but rarely at 0.9,
fools it no more often (23 of 100 cough-like bursts, against 25).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from voxline.protocol.client_frames import SessionConfig

HYSTERESIS: Final = 0.15
STATEMENT_SHARE: Final = 0.8
QUESTION_SHARE: Final = 0.5
"""Of ``endpointing_ms``: the silence that ends a turn whose words sound like a finished
statement, or a finished question. Chosen on pauses inside and at the end of turns
(``scripts/measure/turn_taking.py``, docs/performance.md): Whisper closes nearly every
clause it is given with a full stop, so a statement is weak evidence that the caller is
done ("Hi there." then a 320 ms pause, then the question), and a question mark is strong."""


class Finished(enum.Enum):
    """How finished the caller's words so far sound."""

    NO = enum.auto()  # they lead on, or there are none yet: the full endpointing silence
    STATEMENT = enum.auto()
    QUESTION = enum.auto()


@dataclass(slots=True)
class TurnSettings:
    threshold: float = 0.5
    min_speech_ms: int = 64
    endpointing_ms: int = 500
    statement_turn_ms: int = round(500 * STATEMENT_SHARE)
    question_turn_ms: int = round(500 * QUESTION_SHARE)
    barge_in_min_ms: int = 128
    barge_in_confidence: float = 0.9  # a window this sure interrupts at once; 1 never does
    max_turn_ms: int = 30_000
    """A caller who talks on longer has their turn ended: the recogniser reads at most a
    30 s window, and partial transcripts of a longer turn would cost more the longer it
    grows."""

    def set_endpointing(self, milliseconds: int) -> None:
        """A client that asks for patience gets it in proportion for finished-sounding turns."""
        self.endpointing_ms = milliseconds
        self.statement_turn_ms = round(milliseconds * STATEMENT_SHARE)
        self.question_turn_ms = round(milliseconds * QUESTION_SHARE)

    def apply(self, config: SessionConfig) -> None:
        """Take the turn settings a client's ``configure`` chose."""
        if config.endpointing_ms is not None:
            self.set_endpointing(config.endpointing_ms)
        if config.barge_in_min_ms is not None:
            self.barge_in_min_ms = config.barge_in_min_ms
        if config.barge_in_confidence is not None:
            self.barge_in_confidence = config.barge_in_confidence
        if config.vad_threshold is not None:
            self.threshold = config.vad_threshold

    def end_silence_ms(self, finished: Finished) -> int:
        """The silence that ends a turn whose words sound ``finished``."""
        if finished is Finished.QUESTION:
            return self.question_turn_ms
        if finished is Finished.STATEMENT:
            return self.statement_turn_ms
        return self.endpointing_ms


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    at: float  # stream time of the first speech window


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    at: float  # stream time just after the last speech window


TurnEvent = SpeechStarted | SpeechEnded


class TurnDetector:
    def __init__(self, settings: TurnSettings, window_seconds: float) -> None:
        self.settings = settings
        self.window = window_seconds
        self.speaking = False
        self._now = 0.0
        self._run_start: float | None = None  # first window of the current speech run
        self._run_peak = 0.0  # the highest probability of the current speech run
        self._last_speech_end = 0.0

    @property
    def now(self) -> float:
        """Stream time just after the last window fed."""
        return self._now

    @property
    def speech_seconds(self) -> float:
        """How long the current speech run has lasted (0 when silent)."""
        return 0.0 if self._run_start is None else self._last_speech_end - self._run_start

    @property
    def silence_seconds(self) -> float:
        """How long the caller has been quiet within the current turn (0 when not speaking)."""
        return self._now - self._last_speech_end if self.speaking else 0.0

    @property
    def quiet_seconds(self) -> float:
        """How long since the last window above the speech threshold (speech or not)."""
        return self._now - self._last_speech_end

    def interrupting(self) -> bool:
        """Whether the current speech run is enough to cut the agent off."""
        if self._run_start is None:
            return False
        settings = self.settings
        return (
            self._run_peak >= settings.barge_in_confidence
            or self.speech_seconds * 1000 >= settings.barge_in_min_ms - 1e-6
        )

    def feed(self, probability: float) -> TurnEvent | None:
        start, self._now = self._now, self._now + self.window
        settings = self.settings
        if not self.speaking:
            if probability < settings.threshold:
                self._run_start = None
                self._run_peak = 0.0
                return None
            if self._run_start is None:
                self._run_start = start
            self._run_peak = max(self._run_peak, probability)
            self._last_speech_end = self._now
            if self.speech_seconds * 1000 >= settings.min_speech_ms - 1e-6:
                self.speaking = True
                return SpeechStarted(self._run_start)
            return None
        if probability >= settings.threshold - HYSTERESIS:
            self._run_peak = max(self._run_peak, probability)
            self._last_speech_end = self._now
            return None
        if (self._now - self._last_speech_end) * 1000 >= settings.endpointing_ms - 1e-6:
            return self.end_turn()
        return None

    def end_turn(self) -> SpeechEnded | None:
        """End the current turn now (its words sound finished); None when not in one."""
        if not self.speaking:
            return None
        self.speaking = False
        self._run_start = None
        self._run_peak = 0.0
        return SpeechEnded(self._last_speech_end)
