"""Smart Turn v3.2 beside the transcript rule: which pauses each would end a caller's turn at.

At every pause inside a turn (where ending the turn cuts the caller off) and at every turn
end (where ending it early answers sooner): what the transcript rule
(:mod:`voxline.engines.turn_end`) makes of Whisper's draft of the audio so far, decoded the
moment the agent drafts its reply (the first quiet window) as
``scripts/measure/turn_taking.py`` part 4 does, and how likely Smart Turn v3.2
(``smart_turn_model.py``, beside this script) finds the turn complete from the same audio,
asked at that moment, at 100 ms and at 200 ms of silence (when pipecat asks it).

Turns, heard at 16 kHz and over an 8 kHz µ-law line:

- ``clause``: part 4's eight multi-clause questions, which pause between clauses, by Piper
  and two espeak-ng voices (Debian's ``espeak-ng``);
- ``hesitation``: eight sentences by the same voices, spoken whole, then cut at a word
  boundary where the sentence goes on ("Can I move my appointment | to Friday morning?")
  and 450 ms of silence put in (between the 400 ms a finished statement waits and the
  500 ms of endpointing): a caller who stops mid-sentence, the voice still level, to think;
- ``recorded``: a person, the 30 read prompts of the STT evaluation's recorded voice
  (Debian's ``asterisk-core-sounds-en-g722``), whole;
- ``recorded, hesitation``: the same prompts cut near their middle the same way.

A cut is at the quietest 10 ms near where Whisper's word timestamps end the words before
it, such that Whisper hears the audio before it end on their last word and the audio after
it start on the next (or, failing that, one of the two).

Four policies decide whether a pause is a finished turn: (a) the rule alone (today's);
(b) Smart Turn alone, probability above 0.5; (c) the rule and the model; (d) the rule or the
model. A finished turn ends after the rule's silence for it (a question 50 % of
``endpointing_ms``, a statement 80 %); the model tells no question from a statement, so a
turn that only the model finds finished waits as a statement does. Reported: inner pauses
judged finished and those long enough to end the turn (cut-offs), turn ends judged finished
and the mean silence a turn end waits, and the model's time per pause (features and
inference, one thread).

Smart Turn's file ships in the ``pipecat-ai`` wheel: ``pip install --no-deps
pipecat-ai==1.14.0``, or give its ``smart-turn-v3.2-cpu.onnx`` with ``--model``.

Run: python scripts/measure/smart_turn.py [--model PATH] [--lines 16k,8k-ulaw]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from faster_whisper import WhisperModel
from smart_turn_model import THRESHOLD, SmartTurn
from turn_taking import QUESTIONS

from voxline.audio.pcm import Int16Array, to_float
from voxline.audio.resample import resample
from voxline.bench.speech import synthesize
from voxline.engines.stt import WhisperTranscriber, resolve_model
from voxline.engines.turn_end import asks, sounds_complete
from voxline.engines.vad import VadStream, shared_model
from voxline.eval.voices import LINES, RECORDED, VOICES, Line, Voice, cache_dir, over_line, render
from voxline.session.floor import PAUSE_MS
from voxline.session.turns import Finished, TurnDetector, TurnSettings

RATE = 16_000
HESITATIONS = [  # (before the pause, after it): the sentence goes on
    ("Can I move my appointment", "to Friday morning?"),
    ("I'd like to book a cleaning", "for next Tuesday afternoon."),
    ("Do you take", "Delta Dental insurance?"),
    ("My name is", "Sarah Jones, and I'm a new patient."),
    ("How much does a filling cost", "without any insurance?"),
    ("I think I cracked", "one of my back teeth last night."),
    ("Is the office open", "on Saturday mornings?"),
    ("I was hoping to speak", "with the hygienist about my gums."),
]
SPLICE_SECONDS = 0.45
MOMENTS_MS = (PAUSE_MS, 100, 200)
"""When Smart Turn is asked, in silence: at the draft (the first quiet window, when the
agent decodes), and later (pipecat asks after 200 ms)."""
SETTINGS = TurnSettings()  # the default endpointing: 500 ms, 400 for a statement, 250 a question
SWEEP = (0.1, 0.3, 0.5, 0.7, 0.9)
KINDS = ("clause", "hesitation", "recorded", "recorded, hesitation")
VOICE_NAMES = ("piper-joe", "espeak-us-m3", "espeak-rp-f4")  # part 4's


@dataclass(frozen=True, slots=True)
class Pause:
    turn: str
    voice: str
    line: str
    kind: str  # "clause" or "hesitation"
    end: bool  # the turn's end, not a pause inside it
    seconds: float  # how long the detector heard silence
    text: str  # the draft's transcript
    rule: Finished
    probabilities: dict[int, float]
    """Smart Turn's, by the silence (ms, :data:`MOMENTS_MS`) it was asked at; none for a
    moment the pause did not last to."""


Policy = Callable[[Pause], Finished]


def policies(moment: int, threshold: float = THRESHOLD) -> dict[str, Policy]:
    """The four policies, Smart Turn asked at ``moment`` ms of silence."""

    def model(pause: Pause) -> Finished:
        probability = pause.probabilities.get(moment)
        finished = probability is not None and probability > threshold
        return Finished.STATEMENT if finished else Finished.NO

    def both(pause: Pause) -> Finished:
        return pause.rule if model(pause) is not Finished.NO else Finished.NO

    def either(pause: Pause) -> Finished:
        return pause.rule if pause.rule is not Finished.NO else model(pause)

    return {
        "(a) rule (today)": lambda pause: pause.rule,
        "(b) Smart Turn > 0.5": model,
        "(c) rule AND Smart Turn": both,
        "(d) rule OR Smart Turn": either,
    }


def verdict(text: str) -> Finished:
    if not sounds_complete(text):
        return Finished.NO
    return Finished.QUESTION if asks(text) else Finished.STATEMENT


class Judges:
    """Whisper as the agent's draft decodes, and Smart Turn, timed."""

    def __init__(self, model_path: str | None) -> None:
        self.stt = WhisperTranscriber()
        started = time.perf_counter()
        self.model = SmartTurn(model_path)
        self.load_seconds = time.perf_counter() - started
        self.inference_ms: list[float] = []

    def probability(self, audio: Int16Array) -> float:
        started = time.perf_counter()
        probability = self.model.probability(to_float(audio))
        self.inference_ms.append((time.perf_counter() - started) * 1000)
        return probability


def pauses(
    audio: Int16Array, rate: int, judges: Judges
) -> list[tuple[float, str, dict[int, float]]]:
    """Every pause of ``audio`` (at ``rate``; the last pause its end): how long the detector
    heard silence, the draft's transcript (at the first quiet window) and Smart Turn's
    probabilities at :data:`MOMENTS_MS` of silence."""
    stream = VadStream(rate)
    window = stream.window_seconds
    detector = TurnDetector(TurnSettings(endpointing_ms=60_000), window)
    heard = resample(audio, rate, RATE)  # what the agent decodes: 16 kHz
    found: list[tuple[float, str, dict[int, float]]] = []
    draft: str | None = None
    asked: dict[int, float] = {}
    silence = 0.0
    for index, p in enumerate(shared_model().probabilities(stream, to_float(audio))):
        detector.feed(p)
        if detector.silence_seconds < silence and draft is not None:  # speech resumed
            found.append((silence, draft, asked))
            draft, asked = None, {}
        silence = detector.silence_seconds
        if silence * 1000 < PAUSE_MS - 1e-6:
            continue
        so_far = heard[: round((index + 1) * window * RATE)]
        if draft is None:
            draft = judges.stt.transcribe_blocking(to_float(so_far)).text
        for moment in MOMENTS_MS:
            if moment not in asked and silence * 1000 >= moment - 1e-6:
                asked[moment] = judges.probability(so_far)
    if draft is not None:
        found.append((silence, draft, asked))
    return found


_WORD = re.compile(r"[a-z0-9']+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def hesitate(
    audio: Int16Array, before: str, after: str, aligner: WhisperModel, stt: WhisperTranscriber
) -> Int16Array | None:
    """``audio`` (16 kHz, the whole sentence) with a pause of ``SPLICE_SECONDS`` put in after
    the words ``before``: at the quietest point near where Whisper's word timestamps put
    their end such that Whisper hears the audio before it end on ``before``'s last word and
    the audio after it start on ``after``'s first; None when no point does."""
    target, following = _words(before), _words(after)
    segments, _ = aligner.transcribe(
        to_float(audio), language="en", beam_size=1, word_timestamps=True, temperature=0.0
    )
    words = [word for segment in segments for word in segment.words or ()]
    estimate = len(audio) / RATE * len(before) / len(f"{before} {after}")
    said: list[str] = []
    for word in words:
        said += _words(word.word)
        if said[-len(target) :] == target:
            estimate = word.end
            break
    frame, hop = RATE // 100, RATE // 200
    lo = max(0, int((estimate - 0.3) * RATE))
    hi = min(len(audio) - frame, int((estimate + 0.3) * RATE))
    starts = np.arange(lo, hi, hop)
    energy = np.array([np.mean(audio[at : at + frame].astype(np.float64) ** 2) for at in starts])
    minima = [
        index
        for index in range(len(energy))
        if energy[index] <= energy[max(0, index - 1)]
        and energy[index] <= energy[min(len(energy) - 1, index + 1)]
    ]
    cuts: list[int] = []
    for index in sorted(minima, key=lambda index: energy[index])[:8]:
        cut = int(starts[index]) + frame // 2
        heard_before = _words(stt.transcribe_blocking(to_float(audio[:cut])).text)
        heard_after = _words(stt.transcribe_blocking(to_float(audio[cut:])).text)
        ends_right = heard_before[-1:] == target[-1:]
        starts_right = heard_after[:1] == following[:1]
        if ends_right and starts_right:
            cuts.insert(0, cut)
        elif ends_right or starts_right:
            cuts.append(cut)  # one side misheard: the next best
    if cuts:
        gap = np.zeros(round(SPLICE_SECONDS * RATE), np.int16)
        return np.concatenate([audio[: cuts[0]], gap, audio[cuts[0] :]])
    return None


def _halves(text: str) -> tuple[str, str]:
    """``text`` cut in two at a word boundary near its middle, not at a sentence end."""
    words = text.split()
    cut = max(2, len(words) // 2)
    while cut < len(words) - 1 and words[cut - 1].endswith((".", "?", "!", ",")):
        cut += 1
    return " ".join(words[:cut]), " ".join(words[cut:])


def _recorded_id(text: str) -> str:
    return next(recording.id for recording in RECORDED.utterances if recording.text == text)


def spoken(voice: Voice, text: str) -> Int16Array:
    """``text`` spoken by ``voice`` at 16 kHz; for the recorded voice, ``text`` is the id of
    a recording."""
    if voice.engine == "piper":
        return synthesize(text, RATE)
    pcm, rate = render(voice, text, cache_dir())
    return resample(pcm, rate, RATE)


def measure(lines: list[Line], judges: Judges) -> list[Pause]:
    aligner = WhisperModel(
        str(resolve_model(None)),
        device="cpu",
        compute_type="int8",
        cpu_threads=1,
        local_files_only=True,
    )
    turns: list[tuple[str, str, Voice, Int16Array]] = []
    for voice in VOICES:
        if voice.name in VOICE_NAMES:
            for text in QUESTIONS:
                turns.append(("clause", text, voice, spoken(voice, text)))
            sentences = HESITATIONS
        elif voice.recorded:
            for recording in RECORDED.utterances:
                turns.append(("recorded", recording.text, voice, spoken(voice, recording.id)))
            sentences = [_halves(recording.text) for recording in RECORDED.utterances]
        else:
            continue
        for before, after in sentences:
            text = f"{before} {after}"
            audio = spoken(voice, _recorded_id(text) if voice.recorded else text)
            spliced = hesitate(audio, before, after, aligner, judges.stt)
            if spliced is None:
                print(f"   skipped: no word boundary after {before!r} ({voice.name})")
                continue
            kind = "recorded, hesitation" if voice.recorded else "hesitation"
            turns.append((kind, f"{before} | {after}", voice, spliced))
    found: list[Pause] = []
    for line in lines:
        for kind, text, voice, audio in turns:
            clip = np.concatenate([audio, np.zeros(RATE, np.int16)])
            heard = over_line(clip, RATE, line)
            *inside, end = pauses(heard, line.rate, judges)
            for index, (seconds, draft, asked) in enumerate([*inside, end]):
                end_ = index == len(inside)
                found.append(
                    Pause(
                        text,
                        voice.name,
                        line.name,
                        kind,
                        end_,
                        seconds,
                        draft,
                        verdict(draft),
                        asked,
                    )
                )
    return found


def ends_turn(pause: Pause, finished: Finished) -> bool:
    """The pause ends the turn: it lasts the silence a turn ``finished`` so waits for."""
    return pause.seconds * 1000 >= SETTINGS.end_silence_ms(finished) - 1e-6


def report(found: list[Pause], title: str, moment: int) -> None:
    inner = [pause for pause in found if not pause.end]
    ends = [pause for pause in found if pause.end]
    print(f"   {title}: {len(inner)} inner pauses, {len(ends)} turn ends")
    print("     policy                    inner: finished  cut off   ends: finished  mean wait")
    for name, policy in policies(moment).items():
        judged = sum(policy(pause) is not Finished.NO for pause in inner)
        cut = sum(ends_turn(pause, policy(pause)) for pause in inner)
        early = sum(policy(pause) is not Finished.NO for pause in ends)
        wait = np.mean([SETTINGS.end_silence_ms(policy(pause)) for pause in ends])
        print(
            f"     {name:25s} {judged:3d} of {len(inner):3d}  {cut:3d}        "
            f"{early:3d} of {len(ends):3d}    {wait:3.0f} ms"
        )


def disagreements(found: list[Pause], moment: int) -> None:
    print(f"Where the rule and Smart Turn at {moment} ms disagree (p at {MOMENTS_MS} ms):")
    for pause in found:
        probability = pause.probabilities.get(moment)
        if probability is None or (pause.rule is not Finished.NO) == (probability > THRESHOLD):
            continue
        where = "end" if pause.end else f"inner {pause.seconds * 1000:3.0f} ms"
        asked = " ".join(f"{pause.probabilities.get(ms, np.nan):.2f}" for ms in MOMENTS_MS)
        print(
            f"   {pause.line:7s} {pause.voice:12s} {where:14s} rule {pause.rule.name:9s} "
            f"p {asked}  {pause.text!r}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="smart-turn-v3.2-cpu.onnx (default: pipecat-ai's)")
    parser.add_argument(
        "--lines", default="16k,8k-ulaw", help=f"of {', '.join(line.name for line in LINES)}"
    )
    parser.add_argument("--save", type=Path, help="write the pauses measured to this JSON file")
    parser.add_argument("--load", type=Path, help="report on pauses saved before instead")
    args = parser.parse_args()
    lines = [line for name in args.lines.split(",") for line in LINES if line.name == name]
    inference_ms: list[float] = []
    if args.load is not None:
        found = [_load(pause) for pause in json.loads(args.load.read_text())]
        lines = [line for line in LINES if any(pause.line == line.name for pause in found)]
    else:
        judges = Judges(args.model)
        print(f"Smart Turn v3.2 loaded in {judges.load_seconds * 1000:.0f} ms")
        found = measure(lines, judges)
        inference_ms = judges.inference_ms
    if args.save is not None:
        args.save.write_text(json.dumps([_dump(pause) for pause in found], indent=1))

    disagreements(found, MOMENTS_MS[-1])
    print("Policies (a finished question ends after 250 ms of silence, a statement after 400,")
    print("any other turn after 500; Smart Turn alone finds no question):")
    for moment in MOMENTS_MS:
        print(f" Smart Turn asked at {moment} ms of silence")
        report(found, "all", moment)
        for line in lines:
            report([pause for pause in found if pause.line == line.name], line.name, moment)
        for kind in KINDS:
            report([pause for pause in found if pause.kind == kind], kind, moment)
    print("Other thresholds (all pauses): cut-offs and mean wait at the turn ends")
    for moment in MOMENTS_MS:
        for threshold in SWEEP:
            cells = []
            for name, policy in list(policies(moment, threshold).items())[1:]:
                cut = sum(ends_turn(pause, policy(pause)) for pause in found if not pause.end)
                wait = np.mean([SETTINGS.end_silence_ms(policy(p)) for p in found if p.end])
                cells.append(f"{name[:3]} {cut:3d} {wait:3.0f} ms")
            print(f"   at {moment:3d} ms, p > {threshold:.1f}: " + "   ".join(cells))
    if inference_ms:
        p50, p95 = np.percentile(inference_ms, [50, 95])
        print(
            f"Smart Turn time per call (features and inference, one thread): P50 {p50:.1f} ms, "
            f"P95 {p95:.1f} ms, max {max(inference_ms):.1f} ms over {len(inference_ms)} calls"
        )


def _dump(pause: Pause) -> dict[str, object]:
    record = asdict(pause)
    record["rule"] = pause.rule.name
    return record


def _load(record: dict[str, Any]) -> Pause:
    record = dict(record)
    record["rule"] = Finished[record["rule"]]
    record["probabilities"] = {int(ms): p for ms, p in record["probabilities"].items()}
    return Pause(**record)


if __name__ == "__main__":
    main()
