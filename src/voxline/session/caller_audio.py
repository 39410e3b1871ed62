"""The caller's audio as it arrives: kept by stream time to cut turns out of, timed for
latency, and staged for the VAD a whole window at a time."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque

import numpy as np

from voxline.audio.pcm import Float32Array, Int16Array, pcm16_samples, to_float
from voxline.audio.resample import StreamResampler
from voxline.engines.vad import VadStream
from voxline.session import pacing


class CallerAudio:
    """Keeps the caller's PCM16 samples since ``keep_from`` (seconds of stream time).

    Appends are amortised O(1); ``forget_before`` drops old audio so an idle session holds
    only a short pre-roll.
    """

    def __init__(self, rate: int, *, max_seconds: float = 60.0) -> None:
        self.rate = rate
        self._data = bytearray()
        self._base = 0  # stream sample index of _data[0]
        self._max_bytes = int(max_seconds * rate) * 2

    @property
    def end_time(self) -> float:
        """Stream time just after the last sample received."""
        return (self._base + len(self._data) // 2) / self.rate

    def append(self, pcm: bytes | memoryview) -> None:
        self._data += pcm
        overflow = len(self._data) - self._max_bytes
        if overflow > 0:
            # Drop a quarter of the limit at once: trimming per frame would move the whole
            # buffer on every append.
            drop = overflow + self._max_bytes // 4
            drop += drop % 2
            del self._data[:drop]
            self._base += drop // 2

    def forget_before(self, t: float) -> None:
        drop = min(int(t * self.rate) - self._base, len(self._data) // 2)
        if drop > 0:
            del self._data[: drop * 2]
            self._base += drop

    def between(self, start: float, end: float) -> Int16Array:
        """Samples from ``start`` to ``end`` (seconds), clipped to what is kept."""
        first = max(int(start * self.rate) - self._base, 0)
        last = min(int(end * self.rate) - self._base, len(self._data) // 2)
        if last <= first:
            return np.zeros(0, dtype=np.int16)
        return np.frombuffer(bytes(self._data[first * 2 : last * 2]), dtype="<i2").copy()


class CallerStream:
    """One call's incoming audio: :class:`CallerAudio`, when each stretch arrived, and what
    the VAD has yet to see.

    :meth:`append` never blocks and does no conversion: it only sets :attr:`ready` once the
    audio waiting for the VAD makes up a whole window, so that the listener wakes once per
    window rather than once per frame. A ``paced`` stream takes audio at most
    :data:`~voxline.session.pacing.AUDIO_RATE` times real time, which bounds what waits for
    the VAD as well.
    """

    def __init__(self, rate: int, *, paced: bool = False) -> None:
        self.rate = rate
        self._budget = pacing.audio_budget(time.monotonic()) if paced else None
        self.overrun = False  # audio came faster than the pace allows
        self.audio = CallerAudio(rate)
        vad_rate = 8000 if rate == 8000 else 16000
        self.vad = VadStream(vad_rate)
        self._to_vad_rate = StreamResampler(rate, vad_rate, quality="LQ")
        self._arrivals: deque[tuple[float, float]] = deque(maxlen=1024)
        self._pending: list[bytes | memoryview] = []  # not yet fed to the VAD
        self._pending_samples = 0
        self.ready = asyncio.Event()
        self.samples = 0  # received in all

    @property
    def processed_seconds(self) -> float:
        """Stream time up to which the VAD has judged the audio."""
        return self.vad.processed_seconds

    def append(self, pcm: bytes | memoryview) -> bool:
        """Caller PCM16 at the input rate; False, and the audio dropped, when it comes
        faster than the pace allows."""
        now = time.monotonic()
        count = len(pcm) // 2
        if self._budget is not None and not self._budget.spend(count / self.rate, now):
            self.overrun = True
            return False
        self.samples += count
        self._stage(pcm, count, now)
        return True

    def fill(self, seconds: float) -> None:
        """A gap in the stream, as that much silence: cut into turns and judged by the VAD
        like audio, though not counted as audio received."""
        count = int(seconds * self.rate)
        if count > 0:
            self._stage(bytes(count * 2), count, time.monotonic())

    def _stage(self, pcm: bytes | memoryview, count: int, now: float) -> None:
        self.audio.append(pcm)
        self._arrivals.append((self.audio.end_time, now))
        self._pending.append(pcm)
        self._pending_samples += count
        stream = self.vad
        at_vad_rate = self._pending_samples * stream.sample_rate // self.rate
        if stream.buffered_samples + at_vad_rate >= stream.window_size:
            self.ready.set()

    def take(self) -> Float32Array:
        """The audio waiting for the VAD, at its rate, as floats."""
        self.ready.clear()
        pending, self._pending = self._pending, []
        self._pending_samples = 0
        return self._to_vad_rate.process(to_float(pcm16_samples(b"".join(pending))))

    @property
    def last_arrival(self) -> float | None:
        """When audio (or silence filled in for a gap) last arrived (monotonic clock)."""
        return self._arrivals[-1][1] if self._arrivals else None

    def arrived_at(self, at: float) -> float | None:
        """When the sample at stream time ``at`` arrived (monotonic clock)."""
        index = bisect.bisect_left(self._arrivals, (at, 0.0))
        return self._arrivals[index][1] if index < len(self._arrivals) else None

    def between(self, start: float, end: float | None = None) -> Int16Array:
        """The caller's audio from ``start`` to ``end`` (default: as far as the VAD has
        judged it)."""
        return self.audio.between(start, self.processed_seconds if end is None else end)

    def forget_before(self, t: float) -> None:
        self.audio.forget_before(t)
