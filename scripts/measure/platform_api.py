"""Measure the HTTP speech and transcription routes of a running server, as a client sees them.

1. ``POST /v1/audio/speech`` of a one-sentence input, streamed (PCM, 24 kHz): the time to the
   first byte of audio and to the last. Each run speaks a different sentence, so the speech
   cache never answers.
2. ``POST /v1/audio/transcriptions`` of a 3 s WAV clip (16 kHz): the time to the transcript.

Medians (and the slowest) of ``--repeats`` runs, the two interleaved so that load from other
processes falls on both alike. Needs a key with ``speak:synthesize`` and ``hear:transcribe``:

    voxline keys create --scope speak:synthesize --scope hear:transcribe
    python scripts/measure/platform_api.py --key vx_test_... [--url http://127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
import wave

import httpx

from voxline.bench.speech import synthesize

SENTENCES = (
    "Your table for {n} is booked for seven thirty this evening.",
    "The parcel with number {n} will arrive on Thursday afternoon.",
    "We have {n} appointments left on Monday morning, would one of them suit you?",
)
CLIP = "Could you tell me whether the pharmacy is open on Sunday afternoon?"
CLIP_SECONDS = 3.0
CLIP_RATE = 16_000


def clip_wav() -> bytes:
    """About 3 s of a question, as a 16 kHz WAV."""
    samples = synthesize(CLIP, CLIP_RATE)[: int(CLIP_SECONDS * CLIP_RATE)]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(CLIP_RATE)
        wav.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def speech(client: httpx.Client, text: str) -> tuple[float, float, float]:
    """Seconds to the first audio byte and to the last, and seconds of audio."""
    started = time.perf_counter()
    first = None
    size = 0
    body = {"input": text, "response_format": "pcm", "sample_rate": 24000, "stream": True}
    with client.stream("POST", "/v1/audio/speech", json=body) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            if first is None and chunk:
                first = time.perf_counter() - started
            size += len(chunk)
    assert first is not None, "no audio"
    return first, time.perf_counter() - started, size / 48_000


def transcription(client: httpx.Client, wav: bytes) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.post(
        "/v1/audio/transcriptions", files={"file": ("clip.wav", wav, "audio/wav")}
    )
    response.raise_for_status()
    return time.perf_counter() - started, str(response.json()["text"])


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.0f} ms, slowest {max(values) * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", required=True)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    wav = clip_wav()
    firsts: list[float] = []
    lasts: list[float] = []
    decodes: list[float] = []
    headers = {"Authorization": f"Bearer {args.key}"}
    with httpx.Client(base_url=args.url, headers=headers, timeout=60) as client:
        transcription(client, wav)  # a first decode warms the recogniser
        for run in range(args.repeats):
            text = SENTENCES[run % len(SENTENCES)].format(n=time.time_ns() % 1000 + run)
            first, last, seconds = speech(client, text)
            firsts.append(first)
            lasts.append(last)
            elapsed, heard = transcription(client, wav)
            decodes.append(elapsed)
    print(f"speech, one sentence (~{seconds:.1f} s of audio), streamed PCM at 24 kHz:")
    print(f"  first byte: {summary(firsts)}")
    print(f"  last byte:  {summary(lasts)}")
    print(f"transcription of a {CLIP_SECONDS:g} s WAV: {summary(decodes)}")
    print(f"  heard: {heard!r}")


if __name__ == "__main__":
    main()
