"""Concurrent synthetic callers against a running server, measured per turn and per frame.

Each caller streams real speech in real-time 20 ms frames, pauses for the agent's reply, and
repeats. Measured: time from the caller's last speech frame to the first agent audio
(TTFB), and frame lag: how late each agent audio chunk arrives against the real-time
schedule of the reply it belongs to (0 when it arrives on time or early, within the lead).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from voxline.client import AgentAudio, Closed, OmniClient, ServerEvent, realtime_url

FRAME_MS = 20
REPLY_GAP_S = 0.25  # a pause longer than this in agent audio starts a new reply


@dataclass
class CallerResult:
    ttfb: list[float] = field(default_factory=list)
    frame_lag: list[float] = field(default_factory=list)
    turns: int = 0
    flushes: int = 0
    close_code: int | None = None
    error: str | None = None


@dataclass
class _Reply:
    first_arrival: float
    samples: int = 0


async def run_caller(
    url: str,
    key: str,
    utterance: npt.NDArray[np.int16],
    *,
    rate: int,
    duration: float,
    pause: float,
    start_delay: float = 0.0,
) -> CallerResult:
    """One caller: speak, pause ``pause`` seconds (the agent answers), repeat."""
    result = CallerResult()
    await asyncio.sleep(start_delay)
    try:
        client = await OmniClient.connect(realtime_url(url), key, configure={})
    except Exception as exc:  # refused at the HTTP level, or unreachable
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    last_speech_sent = 0.0
    speaking = True

    async def read() -> None:
        reply: _Reply | None = None
        last_arrival = 0.0
        async for item in client.events():
            now = time.monotonic()
            if isinstance(item, AgentAudio):
                if reply is None or now - last_arrival > REPLY_GAP_S:
                    reply = _Reply(now)
                    if not speaking and last_speech_sent:
                        result.ttfb.append(now - last_speech_sent)
                due = reply.first_arrival + reply.samples / rate
                result.frame_lag.append(max(0.0, now - due))
                reply.samples += len(item.pcm) // 2
                last_arrival = now
            elif isinstance(item, ServerEvent):
                if item.name == "turn_begin":
                    result.turns += 1
                elif item.name == "flush":
                    result.flushes += 1
                elif item.name == "error":
                    result.error = str(item.data.get("code"))
            elif isinstance(item, Closed):
                result.close_code = item.code

    reader = asyncio.create_task(read())
    step = rate * FRAME_MS // 1000
    silence = np.zeros(int(pause * rate), dtype=np.int16)
    start = time.monotonic()
    frame = 0
    try:
        while time.monotonic() - start < duration:
            for clip, is_speech in ((utterance, True), (silence, False)):
                speaking = is_speech
                for offset in range(0, len(clip), step):
                    await client.send_audio(clip[offset : offset + step].tobytes())
                    frame += 1
                    delay = start + frame * FRAME_MS / 1000 - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if is_speech:
                    last_speech_sent = time.monotonic()
        await client.end()
    except Exception as exc:
        result.error = result.error or f"{type(exc).__name__}: {exc}"
    finally:
        await client.close()
        await asyncio.wait({reader}, timeout=5)
    return result


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None
