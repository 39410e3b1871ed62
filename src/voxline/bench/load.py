"""Concurrent synthetic callers against a running server, measured per turn and per frame.

Each caller streams real speech in real-time 20 ms frames (a quiet line in between, as a
microphone would: a -70 dBFS noise floor under everything it sends), and behaves like a
person on a call: asks a question, waits for the agent's reply to end, pauses, asks the
next. On some turns it talks over the reply (a barge-in) or makes a cough-like noise under
it (which must not interrupt).

Measured per call: how long after it began to connect ``hello`` came. Measured per turn:
TTFB, from the frame holding the question's last speech sample to the first agent audio;
barge-in reaction, from the frame holding the interrupting question's first speech sample
to ``flush``; whether a noise burst drew a ``flush`` (a false barge-in); and frame lag, how
late each agent audio chunk arrives against the real-time schedule of its reply (0 when on
time or early, within the lead). When the callers ask for ``metrics``
events, the server's own stage timings of each turn are kept too.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from voxline.client import AgentAudio, Closed, OmniClient, ServerEvent, realtime_url

FRAME_MS = 20
REPLY_GAP_S = 0.25  # a pause longer than this in agent audio starts a new reply
REPLY_END_S = 0.6  # no agent audio for this long after a reply began: it is over
THINK_S = 0.6  # the caller's pause between the end of a reply and their next question
NO_REPLY_S = 6.0  # give up waiting for a reply after this long
GREETING_WAIT_S = 1.5  # how long a new caller listens for a greeting before talking
INTERRUPT_AFTER_S = 0.8  # of reply audio, before an interrupting caller starts talking
NOISE_AFTER_S = 0.5  # of reply audio, before a noise burst
LOUD = 0.02  # of a clip's peak: the threshold of its speech samples
LINE_FLOOR_DBFS = -70.0  # the noise of the caller's line: a quiet room, a good microphone


class Interjection(enum.Enum):
    """What a caller does while the agent answers a turn."""

    LISTEN = enum.auto()
    INTERRUPT = enum.auto()  # start the next question over the reply
    NOISE = enum.auto()  # a cough-like burst under the reply


@dataclass(frozen=True)
class Clip:
    """Caller audio with where its speech starts and ends (sample indices)."""

    pcm: npt.NDArray[np.int16]
    onset: int
    end: int
    text: str = ""  # what it says, when known

    @classmethod
    def of(cls, pcm: npt.NDArray[np.int16], text: str = "") -> Clip:
        loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > LOUD * np.abs(pcm).max(initial=1))
        onset, end = (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, 0)
        return cls(pcm, onset, end, text)


def line_noise(samples: int, seed: int = 0) -> npt.NDArray[np.int16]:
    """White noise at :data:`LINE_FLOOR_DBFS`."""
    rms = 32768 * 10 ** (LINE_FLOOR_DBFS / 20)
    noise = np.random.default_rng(seed).standard_normal(samples) * rms
    return np.round(noise).astype(np.int16)


def on_line(clip: Clip, seed: int = 0) -> Clip:
    """``clip`` as the caller's line carries it: over the line's noise floor."""
    noisy = clip.pcm.astype(np.int32) + line_noise(len(clip.pcm), seed)
    return Clip(np.clip(noisy, -32768, 32767).astype(np.int16), clip.onset, clip.end, clip.text)


def noise_burst(rate: int, seconds: float = 0.25, seed: int = 0) -> Clip:
    """A cough-like burst: a quarter second of loud noise under a Hann envelope."""
    rng = np.random.default_rng(seed)
    samples = int(seconds * rate)
    burst = rng.standard_normal(samples) * np.hanning(samples) * 9000
    return Clip.of(np.clip(burst, -32768, 32767).astype(np.int16))


@dataclass
class CallerResult:
    hello: float | None = None  # seconds from starting to connect to ``hello``
    ttfb: list[float] = field(default_factory=list)
    ttfb_by_text: dict[str, list[float]] = field(default_factory=dict)  # of clips with text
    barge_in: list[float] = field(default_factory=list)
    frame_lag: list[float] = field(default_factory=list)
    questions: int = 0
    replies: int = 0
    unanswered: int = 0
    interruptions: int = 0
    missed_barge_ins: int = 0  # interruptions that drew no flush
    noise_bursts: int = 0
    false_barge_ins: int = 0  # noise bursts that drew a flush
    close_code: int | None = None
    error: str | None = None
    connected: bool = False  # the socket is open now
    # The server's per-turn stage timings (seconds after its end of speech), by stage, from
    # the ``metrics`` events that ``{"metrics": true}`` asks for.
    stages: dict[str, list[float]] = field(default_factory=dict)
    heard: list[tuple[str, str]] = field(default_factory=list)
    """(question, the server's final transcript of it), for questions with text."""


@dataclass
class _Listening:
    """What the reader has seen since the current question ended."""

    reply_started: float | None = None
    last_audio: float = 0.0
    flushed: float | None = None
    transcript: str | None = None  # the final one of the caller's words


async def run_caller(
    url: str,
    key: str,
    questions: Sequence[Clip],
    *,
    rate: int,
    duration: float,
    plan: Sequence[Interjection] = (Interjection.LISTEN,),
    noise: Clip | None = None,
    configure: dict[str, Any] | None = None,
    start_delay: float = 0.0,
    result: CallerResult | None = None,
) -> CallerResult:
    """One caller: send ``configure``, then ask ``questions`` in turn (cycling) for
    ``duration`` seconds, doing what ``plan`` says (cycling) while each reply plays; with
    no questions, keep a quiet line open. Counts go to ``result`` as they happen."""
    result = CallerResult() if result is None else result
    await asyncio.sleep(start_delay)
    connecting = time.monotonic()
    try:
        client = await OmniClient.connect(realtime_url(url), key, configure=configure or {})
    except Exception as exc:  # refused at the HTTP level, or unreachable
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    result.connected = True
    listening = _Listening()
    reply_first = 0.0
    reply_samples = 0

    async def read() -> None:
        nonlocal reply_first, reply_samples
        async for item in client.events():
            now = time.monotonic()
            if isinstance(item, AgentAudio):
                if now - listening.last_audio > REPLY_GAP_S:
                    reply_first, reply_samples = now, 0
                    if listening.reply_started is None:
                        listening.reply_started = now
                result.frame_lag.append(max(0.0, now - reply_first - reply_samples / rate))
                reply_samples += len(item.pcm) // 2
                listening.last_audio = now
            elif isinstance(item, ServerEvent):
                if item.name == "hello":
                    result.hello = now - connecting
                elif item.name == "flush":
                    listening.flushed = now
                elif item.name == "transcript":
                    if item.data.get("role") == "user" and item.data.get("final"):
                        listening.transcript = str(item.data.get("text", ""))
                elif item.name == "metrics":
                    for name, value in item.data.items():
                        if name.endswith("_ms") and isinstance(value, int | float):
                            result.stages.setdefault(name[:-3], []).append(value / 1000)
                elif item.name == "error":
                    result.error = str(item.data.get("code"))
            elif isinstance(item, Closed):
                result.close_code = item.code

    reader = asyncio.create_task(read())
    step = rate * FRAME_MS // 1000
    floor = line_noise(rate, seed=1)
    quiet = itertools.cycle([floor[i : i + step] for i in range(0, rate - step + 1, step)])
    start = time.monotonic()
    sent = 0  # frames

    async def send(pcm: npt.NDArray[np.int16]) -> float:
        """Send one frame on the real-time schedule; when it left."""
        nonlocal sent
        delay = start + sent * FRAME_MS / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await client.send_audio(pcm.tobytes())
        sent += 1
        return time.monotonic()

    async def speak(clip: Clip) -> tuple[float, float]:
        """Stream a clip; when the frames with its first and last speech samples left."""
        onset_sent = end_sent = 0.0
        for offset in range(0, len(clip.pcm), step):
            at = await send(clip.pcm[offset : offset + step])
            if offset <= clip.onset < offset + step:
                onset_sent = at
            if offset < clip.end <= offset + step:
                end_sent = at
        return onset_sent, end_sent

    async def wait_reply(plan_step: Interjection, patience: float = NO_REPLY_S) -> bool:
        """Stream silence while the agent answers; True when it is time to talk over the
        reply (``INTERRUPT``), False once the reply is over or none came within
        ``patience`` seconds."""
        question_end = time.monotonic()
        while True:
            now = await send(next(quiet))
            began = listening.reply_started
            if began is None:
                if now - question_end > patience:
                    return False
                continue
            if now - listening.last_audio > REPLY_END_S:
                return False
            if plan_step is Interjection.INTERRUPT and now - began >= INTERRUPT_AFTER_S:
                return True
            if plan_step is Interjection.NOISE and noise and now - began >= NOISE_AFTER_S:
                plan_step = Interjection.LISTEN
                result.noise_bursts += 1
                listening.flushed = None
                await speak(noise)
                for _ in range(round(1.0 / (FRAME_MS / 1000))):
                    await send(next(quiet))
                if listening.flushed is not None:
                    result.false_barge_ins += 1

    turn = 0
    interrupting = False
    try:
        await wait_reply(Interjection.LISTEN, patience=GREETING_WAIT_S)  # hear out a greeting
        while time.monotonic() - start < duration:
            if not questions:
                await send(next(quiet))
                continue
            listening.flushed = listening.transcript = None
            question = questions[turn % len(questions)]
            onset_sent, end_sent = await speak(question)
            result.questions += 1
            if interrupting:
                result.interruptions += 1
                if listening.flushed is None:
                    result.missed_barge_ins += 1
                else:
                    result.barge_in.append(max(0.0, listening.flushed - onset_sent))
            listening.reply_started = None
            interrupting = await wait_reply(plan[turn % len(plan)])
            if listening.reply_started is None:
                result.unanswered += 1
            else:
                result.replies += 1
                result.ttfb.append(listening.reply_started - end_sent)
                if question.text:
                    result.ttfb_by_text.setdefault(question.text, []).append(result.ttfb[-1])
                    if listening.transcript is not None:
                        result.heard.append((question.text, listening.transcript))
            turn += 1
            if not interrupting:
                for _ in range(round(THINK_S / (FRAME_MS / 1000))):
                    await send(next(quiet))
        await client.end()
    except Exception as exc:
        result.error = result.error or f"{type(exc).__name__}: {exc}"
    finally:
        result.connected = False
        await client.close()
        await asyncio.wait({reader}, timeout=5)
    return result


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None
