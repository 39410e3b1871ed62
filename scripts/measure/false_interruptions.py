"""False interruptions against a real ``voxline serve`` (default agent, the example
knowledge file): noise bursts under a long answer, how many cut it off, how many of those
the agent resumes and after how long a silence; and real interruptions, which must never
be resumed.

Each trial is a session of its own: a typed question with a long answer ("Which insurance
plans do you accept?", about 9 s; it cuts the knowledge file's greeting off), then 1.0 s
into the answer's audio the caller's line carries a sound, over a -70 dBFS noise floor, and
then quiet:

- ``bench``: the bench's cough-like burst (0.25 s of white noise under a Hann window);
- ``lowpass``: noise low-passed below 1 kHz (a rumble, a door, a cough's body), 50-400 ms
  under a Hann window at 0.3 and 0.9 of full scale, the bursts of
  ``scripts/measure/turn_taking.py`` part 2;
- ``words``: "Wait, stop, I have another question." (Piper).

A trial counts as interrupted when a ``flush`` (reason ``barge_in``) came after the sound
began, resumed when after it a ``turn`` came without a ``turn_begin`` (a reply to a caller
turn has one, the resumed reply none); the
silence is from ``flush`` to the first agent audio after the ``turn`` that follows it (audio
already in flight at the ``flush`` is not the reply going on), as the client receives them.

Run: python scripts/measure/false_interruptions.py [--parallel N] [--kinds bench,lowpass,words]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soxr

from voxline.auth.keys import KeyStore
from voxline.bench.load import Clip, noise_burst, on_line
from voxline.bench.process import serve_process
from voxline.bench.speech import synthesize
from voxline.client import AgentAudio, OmniClient, ServerEvent, realtime_url
from voxline.store.database import Database

RATE = 24000
FRAME = RATE // 50
QUESTION = "Which insurance plans do you accept?"
INTERRUPTION = "Wait, stop, I have another question."
SOUND_AFTER_S = 1.0  # of answer audio
NO_FLUSH_S = 1.0  # after the sound, no flush: not interrupted
WATCH_S = 4.0  # after flush, how long to wait for the agent to go on
KNOWLEDGE = Path(__file__).resolve().parents[2] / "examples" / "knowledge" / "acme-dental.json"
OPEN_LIMITS = {
    "VOXLINE_LIMITS_CONNECTS_PER_MINUTE_PER_ADDRESS": "100000",
    "VOXLINE_LIMITS_CONNECTS_PER_MINUTE_PER_KEY": "100000",
}


def lowpass_burst(seconds: float, level: float, rng: np.random.Generator) -> Clip:
    noise = rng.standard_normal(int(seconds * RATE))
    noise = soxr.resample(soxr.resample(noise, RATE, 2000), 2000, RATE)[: len(noise)]
    shaped = noise * np.hanning(len(noise)) / (np.abs(noise).max() + 1e-9) * level * 32767
    return Clip.of(shaped.astype(np.int16))


def sounds(kinds: list[str]) -> list[tuple[str, str, Clip]]:
    """(kind, label, clip) for every trial."""
    trials: list[tuple[str, str, Clip]] = []
    if "bench" in kinds:
        trials += [("bench", f"seed {seed}", noise_burst(RATE, seed=seed)) for seed in range(20)]
    if "lowpass" in kinds:
        rng = np.random.default_rng(3)
        for level in (0.3, 0.9):
            for seconds in (0.05, 0.1, 0.2, 0.3, 0.4):
                for _ in range(10):
                    clip = lowpass_burst(seconds, level, rng)
                    trials.append(("lowpass", f"{seconds * 1000:.0f} ms at {level}", clip))
    if "words" in kinds:
        clip = Clip.of(synthesize(INTERRUPTION, RATE), INTERRUPTION)
        trials += [("words", INTERRUPTION, clip)] * 10
    return trials


@dataclass
class Trial:
    kind: str
    label: str
    interrupted: bool = False
    resumed: bool = False
    answered: bool = False  # a reply to a caller turn (turn_begin) after the flush
    silence: float | None = None  # flush to the first agent audio after it
    resumed_text: str = ""
    error: str | None = None
    events: list[tuple[float, str]] = field(default_factory=list)


async def run_trial(url: str, key: str, kind: str, label: str, clip: Clip) -> Trial:
    trial = Trial(kind, label)
    client = await OmniClient.connect(realtime_url(url), key)
    first_audio: float | None = None  # of the answer (after its turn_begin)
    answering = False
    listening = False  # the sound has begun: a flush from now on is its doing
    flushed: float | None = None
    went_on = False  # a `turn` came after the flush
    after_flush_audio: float | None = None

    async def read() -> None:
        nonlocal first_audio, answering, flushed, went_on, after_flush_audio
        async for item in client.events():
            now = time.monotonic()
            if isinstance(item, AgentAudio):
                if answering and first_audio is None:
                    first_audio = now
                if went_on and after_flush_audio is None:
                    after_flush_audio = now
            elif isinstance(item, ServerEvent):
                trial.events.append((now, item.name))
                answering = answering or item.name == "turn_begin"
                barge_in = item.name == "flush" and item.data.get("reason") == "barge_in"
                if listening and barge_in and flushed is None:
                    flushed = now
                went_on = went_on or (flushed is not None and item.name == "turn")
                final = item.data.get("final") and item.data.get("role") == "assistant"
                if item.name == "transcript" and flushed is not None and final:
                    trial.resumed_text = str(item.data.get("text", ""))

    reader = asyncio.create_task(read())
    floor = on_line(Clip.of(np.zeros(RATE, np.int16))).pcm
    quiet = [floor[i : i + FRAME] for i in range(0, RATE, FRAME)]
    sent = 0
    start = time.monotonic()

    async def send(pcm: npt.NDArray[np.int16]) -> None:
        nonlocal sent
        await asyncio.sleep(max(0.0, start + sent * 0.02 - time.monotonic()))
        await client.send_audio(pcm.tobytes())
        sent += 1

    try:
        await client.input_text(QUESTION)
        while first_audio is None and time.monotonic() - start < 10:
            await send(quiet[sent % len(quiet)])
        if first_audio is None:
            trial.error = "no answer"
            return trial
        while time.monotonic() - first_audio < SOUND_AFTER_S:
            await send(quiet[sent % len(quiet)])
        sound = on_line(clip, seed=sent).pcm
        listening = True
        for offset in range(0, len(sound), FRAME):
            await send(sound[offset : offset + FRAME])
        sound_end = time.monotonic()
        while True:
            await send(quiet[sent % len(quiet)])
            now = time.monotonic()
            if flushed is None and now - sound_end > NO_FLUSH_S:
                break
            if flushed is not None and now - flushed > WATCH_S:
                break
            if after_flush_audio is not None and now - after_flush_audio > 0.5:
                break
        trial.interrupted = flushed is not None
        if flushed is not None:
            later = [name for at, name in trial.events if at >= flushed]
            trial.answered = "turn_begin" in later
            trial.resumed = "turn" in later and not trial.answered
            if after_flush_audio is not None:
                trial.silence = after_flush_audio - flushed
    finally:
        await client.close()
        reader.cancel()
    return trial


def summary(trials: list[Trial], *, verbose: bool = False) -> None:
    for kind in dict.fromkeys(trial.kind for trial in trials):
        of_kind = [trial for trial in trials if trial.kind == kind]
        cut = [trial for trial in of_kind if trial.interrupted]
        resumed = [trial for trial in cut if trial.resumed]
        answered = [trial for trial in cut if trial.answered]
        silences = [trial.silence * 1000 for trial in resumed if trial.silence is not None]
        line = (
            f"{kind}: {len(of_kind)} trials, {len(cut)} interrupted, {len(resumed)} resumed, "
            f"{len(answered)} answered, {len(cut) - len(resumed) - len(answered)} left silent"
        )
        if silences:
            p50, p95 = np.percentile(silences, [50, 95])
            line += f"; silence before resuming P50 {p50:.0f}, P95 {p95:.0f}, "
            line += f"max {max(silences):.0f} ms"
        print(line)
        errors = [trial.error for trial in of_kind if trial.error]
        if errors:
            print(f"   errors: {errors}")
        for trial in cut:
            what = "resumed" if trial.resumed else "answered" if trial.answered else "silent"
            silence = f"{trial.silence * 1000:.0f} ms" if trial.silence is not None else "-"
            print(f"   {trial.label}: {what} after {silence}: {trial.resumed_text[:60]!r}")
            if verbose and not trial.resumed:
                flushed = next(at for at, name in trial.events if name == "flush")
                print("     ", [(name, round((at - flushed) * 1000)) for at, name in trial.events])


async def measure(
    url: str, new_key: str, kinds: list[str], parallel: int, only: str | None
) -> list[Trial]:
    todo = [trial for trial in sounds(kinds) if only is None or trial[1].startswith(only)]
    results: list[Trial] = []
    gate = asyncio.Semaphore(parallel)

    async def one(index: int, kind: str, label: str, clip: Clip) -> None:
        async with gate:
            await asyncio.sleep(0.3 * (index % parallel))
            results.append(await run_trial(url, new_key, kind, label, clip))
            if len(results) % 10 == 0:
                print(f"   {len(results)} of {len(todo)} trials", flush=True)

    await asyncio.gather(*(one(i, *trial) for i, trial in enumerate(todo)))
    order = {kind: index for index, kind in enumerate(kinds)}
    return sorted(results, key=lambda trial: order[trial.kind])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--kinds", default="bench,lowpass,words")
    parser.add_argument("--only", help="the trials whose label starts with this")
    parser.add_argument("--verbose", action="store_true", help="events of trials not resumed")
    options = parser.parse_args()
    kinds = options.kinds.split(",")
    data_dir = Path(tempfile.mkdtemp())
    args = ("--knowledge", str(KNOWLEDGE))
    log = (data_dir / "serve.log").open("wb")
    with serve_process(data_dir, agent="default", args=args, env=OPEN_LIMITS, output=log) as server:
        with Database(data_dir / "voxline.db") as db:
            key = KeyStore(db).create(env="live", scopes=["omni:session"])[1]
        trials = asyncio.run(measure(server.url, key, kinds, options.parallel, options.only))
    summary(trials, verbose=options.verbose)


if __name__ == "__main__":
    main()
