"""Measure what the turn-taking defaults rest on, with the real VAD and turn detector.

1. Pauses inside a caller's turn: the longest silence the detector sees within multi-clause
   questions (so ``endpointing_ms`` can sit above it and not cut callers off mid-pause).
2. Noise bursts (cough-like: white and low-passed noise, 50-400 ms, two levels): the longest
   run the detector takes for speech, and how many bursts each barge-in rule would take for
   an interruption.
3. Real speech onsets (Piper and three espeak-ng voices, at 16 and 8 kHz, at four offsets
   within a VAD window): how long after the first speech sample each barge-in rule
   (``barge_in_min_ms``, ``barge_in_confidence``) interrupts the agent, before any
   transport delay.
4. The early end of a turn whose words sound finished: at every pause, inside a turn and
   at its end, what Whisper makes of the audio so far (decoded the moment the agent would
   draft its reply) and whether it sounds finished; so ``complete_turn_ms`` can sit above
   the inner pauses that sound finished (a cut-off caller) and below the end pauses (a
   slower answer). Piper and three espeak-ng voices (Debian's ``espeak-ng``).

Run: python scripts/measure/turn_taking.py [PART...]  (all four parts by default)
"""

from __future__ import annotations

import sys

import numpy as np
import soxr

from voxline.audio.pcm import to_float
from voxline.audio.resample import resample
from voxline.bench.speech import synthesize
from voxline.engines.stt import WhisperTranscriber
from voxline.engines.turn_end import asks, sounds_complete
from voxline.engines.vad import VadStream, shared_model
from voxline.eval.voices import VOICES, cache_dir, render
from voxline.session.floor import PAUSE_MS
from voxline.session.turns import TurnDetector, TurnSettings

RATE = 16_000
QUESTIONS = [
    "Hi, I was wondering, do you take Delta Dental, or only the other plans?",
    "My name is Sarah Jones, and I'd like to move my cleaning, the one on Tuesday, to Friday.",
    "So, um, my tooth hurts, it started yesterday, and I'm not sure if it's an emergency.",
    "Could you tell me the address, and also, is there parking nearby?",
    "I have two kids, ages six and nine; can they both come in on the same day?",
    "Hi there. I'd like to book a cleaning for next week.",
    "Okay, thanks. And how much would that cost without insurance?",
    "I have a question about my bill. Why was I charged twice in March?",
]


def probabilities(audio: np.ndarray) -> list[float]:
    return shared_model().probabilities(VadStream(RATE), to_float(audio))


def longest_inner_pause(probs: list[float], window: float) -> float:
    """Longest stretch the detector counts as silence between the first and last speech."""
    detector = TurnDetector(TurnSettings(endpointing_ms=60_000), window)
    longest = silence = 0.0
    for p in probs:
        detector.feed(p)
        if detector.silence_seconds < silence:  # speech resumed: that was an inner pause
            longest = max(longest, silence)
        silence = detector.silence_seconds
    return longest


BARGE_IN_RULES = {  # (barge_in_min_ms, barge_in_confidence)
    "96 ms of speech": (96, 1.0),
    "64 ms of speech": (64, 1.0),
    "a window at 0.9, or 96 ms": (96, 0.9),
    "a window at 0.9, or 128 ms (the default)": (128, 0.9),
}


def interrupts_after(probs: list[float], window: float, rule: tuple[int, float]) -> float | None:
    """Stream time at which ``rule`` would cut the agent off, if it would."""
    minimum, confidence = rule
    settings = TurnSettings(barge_in_min_ms=minimum, barge_in_confidence=confidence)
    detector = TurnDetector(settings, window)
    for index, p in enumerate(probs):
        detector.feed(p)
        if detector.interrupting():
            return (index + 1) * window
    return None


def longest_speech_run(probs: list[float], window: float) -> float:
    detector = TurnDetector(TurnSettings(min_speech_ms=0, endpointing_ms=64), window)
    longest = 0.0
    for p in probs:
        detector.feed(p)
        longest = max(longest, detector.speech_seconds)
    return longest


def pauses_heard(
    audio: np.ndarray, window: float, stt: WhisperTranscriber
) -> list[tuple[float, bool, str]]:
    """Every pause of ``audio`` (the last one its end): how long it lasted, and whether the
    draft's transcript of the audio up to it sounds finished."""
    detector = TurnDetector(TurnSettings(endpointing_ms=60_000), window)
    pauses: list[tuple[float, bool, str]] = []
    drafted: tuple[bool, str] | None = None
    silence = 0.0
    for index, p in enumerate(probabilities(audio)):
        detector.feed(p)
        if detector.silence_seconds < silence and drafted is not None:  # speech resumed
            pauses.append((silence, *drafted))
            drafted = None
        silence = detector.silence_seconds
        if drafted is None and silence * 1000 >= PAUSE_MS - 1e-6:
            heard = audio[: round((index + 1) * window * RATE)]
            text = stt.transcribe_blocking(to_float(heard)).text
            drafted = (sounds_complete(text), text)
    if drafted is not None:
        pauses.append((silence, *drafted))
    return pauses


def burst(kind: str, seconds: float, level: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(int(seconds * RATE))
    if kind == "lowpass":
        noise = soxr.resample(soxr.resample(noise, RATE, 2000), 2000, RATE)[: len(noise)]
    envelope = np.hanning(len(noise))
    shaped = noise * envelope / (np.abs(noise).max() + 1e-9) * level * 32767
    padded = np.concatenate([np.zeros(RATE // 2), shaped, np.zeros(RATE // 2)])
    return padded.astype(np.int16)


def inner_pauses() -> None:
    window = VadStream(RATE).window_seconds
    print("1. longest pause inside a turn (ms):")
    pauses = []
    for text in QUESTIONS:
        pause = longest_inner_pause(probabilities(synthesize(text, RATE)), window)
        pauses.append(pause)
        print(f"   {pause * 1000:5.0f}  {text}")
    print(f"   max {max(pauses) * 1000:.0f} ms")


def noise_bursts() -> None:
    window = VadStream(RATE).window_seconds
    print("2. noise bursts: the longest taken for speech, and those each rule would take")
    rng = np.random.default_rng(3)
    runs = []
    taken = dict.fromkeys(BARGE_IN_RULES, 0)
    for kind in ("white", "lowpass"):
        for level in (0.3, 0.9):
            for seconds in (0.05, 0.1, 0.2, 0.3, 0.4):
                for _ in range(5):
                    probs = probabilities(burst(kind, seconds, level, rng))
                    runs.append(longest_speech_run(probs, window))
                    for name, rule in BARGE_IN_RULES.items():
                        taken[name] += interrupts_after(probs, window, rule) is not None
            print(f"   {kind:7s} level {level}: max {max(runs[-25:]) * 1000:.0f} ms")
    print(f"   all {len(runs)} bursts: max {max(runs) * 1000:.0f} ms")
    for name, count in taken.items():
        print(f"   {name}: {count} of {len(runs)} bursts interrupt")


def onsets() -> None:
    print("3. speech onset to barge-in (ms), four voices, four offsets within a window:")
    clips = [synthesize(text, RATE) for text in QUESTIONS]
    for voice in VOICES:
        if voice.name in ("espeak-us-m3", "espeak-us-f2", "espeak-rp-f4"):
            for text in QUESTIONS:
                pcm, rate = render(voice, text, cache_dir())
                clips.append(resample(pcm, rate, RATE))
    for line_rate in (RATE, 8000):
        line_window = VadStream(line_rate).window_seconds
        reactions: dict[str, list[float]] = {name: [] for name in BARGE_IN_RULES}
        for clip in clips:
            for offset_ms in (0, 8, 16, 24):
                lead = np.zeros(RATE // 2 + offset_ms * RATE // 1000, np.int16)
                audio = resample(np.concatenate([lead, clip]), RATE, line_rate)
                onset = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())[0] / line_rate
                probs = shared_model().probabilities(VadStream(line_rate), to_float(audio))
                for name, rule in BARGE_IN_RULES.items():
                    at = interrupts_after(probs, line_window, rule)
                    reactions[name].append(np.inf if at is None else at - onset)
        for name, times in reactions.items():
            p50, p95 = np.percentile(np.array(times) * 1000, [50, 95])
            print(
                f"   {line_rate // 1000} kHz, {name}: P50 {p50:.0f}, P95 {p95:.0f}, "
                f"worst {max(times) * 1000:.0f} of {len(times)} onsets"
            )


def finished_sounding_pauses() -> None:
    window = VadStream(RATE).window_seconds
    print("4. pauses whose draft sounds finished, inside turns and at their ends:")
    stt = WhisperTranscriber()
    inner: list[tuple[float, bool, str]] = []
    ends = 0
    ends_finished = 0
    for voice in (None, *(v for v in VOICES if v.name in ("espeak-us-m3", "espeak-rp-f4"))):
        for text in QUESTIONS:
            if voice is None:
                audio = synthesize(text, RATE)
            else:
                pcm, rate = render(voice, text, cache_dir())
                audio = resample(pcm, rate, RATE)
            audio = np.concatenate([audio, np.zeros(RATE, np.int16)])
            *inside, end = pauses_heard(audio, window, stt)
            inner += inside
            ends += 1
            ends_finished += end[1]
            for pause, finished, heard in inside:
                if finished and pause >= 0.15:
                    print(f"   inner {pause * 1000:4.0f} ms, sounds finished: {heard!r}")
    questions = [pause for pause, finished, heard in inner if finished and asks(heard)]
    statements = [pause for pause, finished, heard in inner if finished and not asks(heard)]
    print(
        f"   {len(inner)} inner pauses: {len(questions)} sound like a finished question, "
        f"{len(statements)} like a finished statement; "
        f"{ends_finished} of {ends} turn ends sound finished"
    )
    for ms in (150, 200, 250, 300, 350, 400):
        print(
            f"   after {ms} ms: {sum(p * 1000 >= ms for p in questions)} question pauses, "
            f"{sum(p * 1000 >= ms for p in statements)} statement pauses end the turn"
        )


PARTS = {"1": inner_pauses, "2": noise_bursts, "3": onsets, "4": finished_sounding_pauses}


def main() -> None:
    for part in sys.argv[1:] or PARTS:
        PARTS[part]()


if __name__ == "__main__":
    main()
