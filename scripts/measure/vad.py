"""Measure what voice activity detection costs, batched through VadBatcher and unbatched.

Each simulated stream feeds 20 ms frames of 16 kHz audio, paced in real time, from its own
task. Per number of streams, for VadBatcher and for one inference per window in the same
kind of single worker thread: the mean batch, the model's CPU time per window, the whole
process's CPU seconds per second of audio per stream (event loop and simulation included),
and how long after its audio arrived each probability is known (growing without bound
when the load is more than one inference thread can take).

    python scripts/measure/vad.py [--seconds 5] [--streams 1 10 50 100 200 300]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from voxline.engines.vad import Float32Array, SileroModel, VadStream
from voxline.engines.vad_batch import ThreadInference, VadBatcher

RATE = 16_000
FRAME = RATE // 50  # 20 ms

Feed = Callable[[VadStream, Float32Array], Awaitable[list[float]]]


class TimedModel(SileroModel):
    """Counts inferences, windows and the CPU time they take, in whichever thread."""

    cpu_seconds, inferences, windows = 0.0, 0, 0

    def reset_counts(self) -> None:
        self.cpu_seconds, self.inferences, self.windows = 0.0, 0, 0

    def infer(
        self, windows: Float32Array, states: Float32Array, sample_rate: int
    ) -> tuple[Float32Array, Float32Array]:
        start = time.thread_time()
        try:
            return super().infer(windows, states, sample_rate)
        finally:
            self.cpu_seconds += time.thread_time() - start
            self.inferences += 1
            self.windows += len(windows)


async def simulate(
    start: float, frames: int, audio: Float32Array, feed: Feed, waits: list[float]
) -> None:
    """Frames arrive every 20 ms; like a session, feed whatever has arrived in one call."""
    loop = asyncio.get_running_loop()
    stream = VadStream(RATE)
    offset = random.randrange(0, audio.size - frames * FRAME, FRAME)
    fed = 0
    while fed < frames:
        if (delay := start + fed * FRAME / RATE - loop.time()) > 0:
            await asyncio.sleep(delay)
        arrived = min(frames, int((loop.time() - start) * RATE / FRAME) + 1)
        if await feed(stream, audio[offset + fed * FRAME : offset + arrived * FRAME]):
            # Wait from the arrival of the frame that completed the latest window.
            last_frame = -(-round(stream.processed_seconds * RATE) // FRAME) - 1
            waits.append(loop.time() - (start + last_frame * FRAME / RATE))
        fed = arrived


async def measure(
    model: TimedModel, feed: Feed, streams: int, seconds: float, audio: Float32Array
) -> str:
    model.reset_counts()
    frames = int(seconds * RATE / FRAME)
    waits: list[float] = []
    loop = asyncio.get_running_loop()
    # Streams start at random phases of the 20 ms frame, as real callers do.
    starts = [loop.time() + 0.05 + random.random() * FRAME / RATE for _ in range(streams)]
    cpu = time.process_time()
    await asyncio.gather(*(simulate(start, frames, audio, feed, waits) for start in starts))
    cpu = time.process_time() - cpu
    p50, p99, worst = np.percentile(waits, [50, 99, 100]) * 1e3
    return (
        f"{model.windows / model.inferences:6.1f} {model.cpu_seconds / model.windows * 1e3:7.3f} "
        f"{cpu / (streams * seconds):8.5f} {p50:6.1f} {p99:6.1f} {worst:6.0f}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 10, 50, 100, 200, 300])
    args = parser.parse_args()

    random.seed(0)
    audio = np.random.default_rng(0).standard_normal(RATE * 30).astype(np.float32) * 0.01
    model = TimedModel()
    model.probabilities(VadStream(RATE), audio)
    print(f"one window at a time, back to back: {model.cpu_seconds / model.windows * 1e3:.3f} ms")
    print(f"{args.seconds:g} s of 20 ms frames in real time per stream:")
    print(f"{'':8}{'VadBatcher':^46}|{'one inference per window':^46}")
    columns = " batch  ms/win  cpu/s/st  p50ms  p99ms  maxms"
    print(f"{'streams':8}{columns}  |{columns}")

    with ThreadPoolExecutor(max_workers=1) as executor:
        loop = asyncio.get_running_loop()

        async def unbatched(stream: VadStream, frame: Float32Array) -> list[float]:
            # Only frames that complete a window go to the worker thread.
            chunk = stream.stage(frame)
            if not len(chunk.inputs):
                stream.commit(chunk, chunk.state, [])
                return []
            stream.discard(chunk)
            return await loop.run_in_executor(executor, model.probabilities, stream, frame)

        for streams in args.streams:
            async with VadBatcher(ThreadInference(model)) as vad:
                batched = await measure(model, vad.probabilities, streams, args.seconds, audio)
            single = await measure(model, unbatched, streams, args.seconds, audio)
            print(f"{streams:7} {batched}  | {single}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
