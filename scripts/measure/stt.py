"""Measure what Whisper decoding costs, to pick the decoding settings and the partial cadence.

Utterances are the first 1, 2, 3 and 5 s of one synthesized question. For greedy decoding
and beam search of 5, each on 1 and 2 threads, prints the median wall-clock time of a decode
and the median CPU time it took (all threads), the settings interleaved so that load from
other processes falls on each alike. Then, with the default engine, the cost of
re-decoding a 5 s utterance as it grows, every 300 or 500 ms: the time of each re-decode,
and the share of one worker they take (above 1, one worker cannot keep up); and how long
a final decode takes when a partial one started just before it (it waits for the worker).

    python scripts/measure/stt.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import defaultdict

import numpy as np

from voxline.audio.pcm import Float32Array
from voxline.bench.speech import synthesize
from voxline.engines.stt import SAMPLE_RATE, WhisperTranscriber, packaged_model

PASSAGE = (
    "Could you explain the difference between the basic plan and the premium plan, "
    "and tell me which one includes international calls?"
)
LENGTHS = (1.0, 2.0, 3.0, 5.0)
CADENCES = (0.3, 0.5)
GROWING = 5.0
PARTIAL_HEAD_START = 0.3


def timed(transcriber: WhisperTranscriber, audio: Float32Array) -> tuple[float, float, str]:
    """Wall-clock and process CPU seconds of one decode, and its text."""
    cpu = time.process_time()
    transcript = transcriber.transcribe_blocking(audio)
    return transcript.decode_seconds, time.process_time() - cpu, transcript.text


async def final_behind_partial(
    engine: WhisperTranscriber, speech: Float32Array
) -> tuple[float, float]:
    """Seconds a final decode takes alone, then with a partial decode just ahead of it."""
    started = time.perf_counter()
    await engine.transcribe(speech)
    alone = time.perf_counter() - started
    partial = asyncio.create_task(engine.transcribe(speech[: speech.size * 2 // 3]))
    await asyncio.sleep(PARTIAL_HEAD_START)
    started = time.perf_counter()
    await engine.transcribe(speech)
    behind = time.perf_counter() - started
    await partial
    return alone, behind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    speech = synthesize(PASSAGE, SAMPLE_RATE).astype(np.float32) / np.float32(32768)
    started = time.perf_counter()
    packaged_model()
    print(f"checksums of the packaged model: {time.perf_counter() - started:.2f} s")
    engines: dict[tuple[int, int], WhisperTranscriber] = {}
    for threads in (1, 2):
        for beam in (1, 5):
            started = time.perf_counter()
            engines[beam, threads] = WhisperTranscriber(threads=threads, beam_size=beam)
            print(f"load (beam {beam}, {threads} threads): {time.perf_counter() - started:.2f} s")

    samples: dict[tuple[int, int, float], list[tuple[float, float]]] = defaultdict(list)
    texts: dict[float, str] = {}
    for engine in engines.values():  # warm up
        timed(engine, speech[:SAMPLE_RATE])
    for _ in range(args.repeats):
        for length in LENGTHS:
            for (beam, threads), engine in engines.items():
                wall, cpu, text = timed(engine, speech[: int(length * SAMPLE_RATE)])
                samples[beam, threads, length].append((wall, cpu))
                texts[length] = text

    print(f"\ndecode, median of {args.repeats}: wall s / CPU s")
    print("audio   " + "".join(f"beam {b} x{t} thr     " for b, t in engines))
    for length in LENGTHS:
        cells = []
        for beam, threads in engines:
            walls, cpus = zip(*samples[beam, threads, length], strict=True)
            cells.append(f"{statistics.median(walls):5.2f} / {statistics.median(cpus):5.2f}   ")
        print(f"{length:3.0f} s   " + "".join(cells) + f"  {texts[length]!r}")

    engine = engines[1, 2]
    print(f"\nre-decoding a growing {GROWING:.0f} s utterance (greedy, 2 threads)")
    for cadence in CADENCES:
        ends = np.arange(cadence, GROWING + 1e-9, cadence)
        decodes: list[float] = []
        for _ in range(args.repeats):
            decodes += [timed(engine, speech[: int(end * SAMPLE_RATE)])[0] for end in ends]
        per_pass = sum(decodes) / args.repeats
        print(
            f"every {cadence * 1000:.0f} ms: {len(ends)} decodes, median "
            f"{statistics.median(decodes):.2f} s (max {max(decodes):.2f} s); "
            f"worker busy {per_pass / GROWING:.1f}x real time"
        )

    finals = [asyncio.run(final_behind_partial(engine, speech)) for _ in range(args.repeats)]
    alone, behind = (statistics.median(times) for times in zip(*finals, strict=True))
    print(
        f"\na final decode takes {alone:.2f} s alone, {behind:.2f} s when requested "
        f"{PARTIAL_HEAD_START * 1000:.0f} ms after a partial one started"
    )


if __name__ == "__main__":
    main()
