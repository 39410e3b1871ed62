"""The caller's recent audio, addressable by stream time, to cut utterances out of."""

from __future__ import annotations

import numpy as np

from voxline.audio.pcm import Int16Array


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
