"""What the phone simulators share: a caller streaming 20 ms frames in real time, as a phone
network does, and a record of the agent audio it got back."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FRAME_MS = 20
Pcm = npt.NDArray[np.int16]


@dataclass
class Heard:
    """Agent audio as it arrived: (monotonic time, PCM16 samples at the line's rate)."""

    audio: list[tuple[float, Pcm]] = field(default_factory=list)

    def samples(self, after: float = 0.0, before: float = float("inf")) -> int:
        return sum(len(pcm) for t, pcm in self.audio if after <= t < before)

    def pcm(self, after: float = 0.0) -> Pcm:
        parts = [pcm for t, pcm in self.audio if t >= after]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def last_at(self) -> float:
        return self.audio[-1][0] if self.audio else 0.0

    def played_until(self, rate: int, after: float = 0.0) -> float:
        """When the audio got (``after`` then) has all played, each piece in turn from when
        it came (a phone's playout: real time, never ahead of what has arrived)."""
        until = 0.0
        for t, pcm in self.audio:
            if t >= after:
                until = max(until, t) + len(pcm) / rate
        return until


class RealTimeCaller(ABC):
    rate: int

    def __init__(self) -> None:
        self.heard = Heard()
        self.ended = False  # the far end (voxline, or the simulated network) ended the call

    @abstractmethod
    async def send_frame(self, pcm: Pcm) -> None: ...

    async def stream(self, samples: Pcm) -> None:
        """Send ``samples`` as 20 ms frames against absolute real-time deadlines."""
        step = self.rate * FRAME_MS // 1000
        start = time.monotonic()
        for index, offset in enumerate(range(0, len(samples), step)):
            if self.ended:
                return
            await self.send_frame(samples[offset : offset + step])
            delay = start + (index + 1) * FRAME_MS / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def silence(self, seconds: float) -> None:
        await self.stream(np.zeros(int(seconds * self.rate), dtype=np.int16))

    async def silence_until(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        """Keep streaming silence, as phones do, until ``predicate`` holds."""
        frame = np.zeros(self.rate * FRAME_MS // 1000, dtype=np.int16)
        start = time.monotonic()
        index = 0
        while not predicate():
            if time.monotonic() - start > timeout:
                raise AssertionError("timed out waiting on the call")
            if not self.ended:
                await self.send_frame(frame)
            index += 1
            delay = start + index * FRAME_MS / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    def quiet_for(self, seconds: float, *, since: float = 0.0) -> Callable[[], bool]:
        """A predicate: agent audio arrived after ``since`` and has then paused ``seconds``."""
        return lambda: (
            self.heard.samples(after=since) > 0
            and time.monotonic() - self.heard.last_at() > seconds
        )
