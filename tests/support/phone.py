"""What the phone simulators share: a caller streaming 20 ms frames in real time, as a phone
network does, a record of the agent audio it got back, and the keys it heard pressed."""

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

# The keypad's tones (ITU-T Q.23), written out here rather than taken from the code under test.
_DTMF_ROWS = (697, 770, 852, 941)
_DTMF_COLUMNS = (1209, 1336, 1477, 1633)
_DTMF_KEYS = ("123A", "456B", "789C", "*0#D")
_DTMF_SHARE = 0.3  # of a block's energy, in each of its strongest row and column tones
_DTMF_FLOOR = 100.0  # RMS a block must have to hold a key (silence holds none)


def dtmf_keys(pcm: Pcm, rate: int) -> list[tuple[str, int]]:
    """The keys pressed in ``pcm``, each with the sample its tones start at (to a 25 ms block).

    Each block's power at the four row and four column frequencies (a Goertzel filter's
    output, computed directly); a block holds a key when its strongest row tone and its
    strongest column tone each carry a good part of its energy, as a key's pair of tones does
    (half each) and speech, noise or a lone tone does not. A key counts once until a block
    without it."""
    block = rate // 40
    frequencies = np.array(_DTMF_ROWS + _DTMF_COLUMNS)
    basis = np.exp(-2j * np.pi * np.outer(frequencies, np.arange(block)) / rate)
    keys: list[tuple[str, int]] = []
    previous: str | None = None
    for start in range(0, len(pcm) - block + 1, block):
        x = pcm[start : start + block].astype(np.float64)
        energy = float(x @ x)
        key = None
        if energy > block * _DTMF_FLOOR**2:
            power = 2 * np.abs(basis @ x) ** 2 / block  # a tone's part of the energy
            row, column = int(np.argmax(power[:4])), int(np.argmax(power[4:]))
            if min(power[row], power[4 + column]) > _DTMF_SHARE * energy:
                key = _DTMF_KEYS[row][column]
        if key is not None and key != previous:
            keys.append((key, start))
        previous = key
    return keys


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
