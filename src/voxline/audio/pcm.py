"""PCM16 little-endian <-> float32 in [-1, 1], and levels."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]
Float32Array = npt.NDArray[np.float32]

_SCALE = np.float32(1 / 32768)


def pcm16_samples(pcm: bytes | memoryview) -> Int16Array:
    """A read-only view of little-endian PCM16 bytes as samples (no copy)."""
    samples: Int16Array = np.frombuffer(pcm, dtype="<i2")
    return samples


def to_float(samples: Int16Array) -> Float32Array:
    return samples.astype(np.float32) * _SCALE


def to_int16(samples: Float32Array) -> Int16Array:
    """Float in [-1, 1] to int16 with clipping (never wraps around)."""
    scaled = np.clip(samples * np.float32(32768), -32768, 32767)
    out: Int16Array = np.rint(scaled).astype(np.int16)
    return out


def rms_dbfs(samples: Int16Array) -> float:
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * np.log10(rms / 32768) if rms > 0 else float("-inf")


def trim_trailing_silence(samples: Int16Array, rate: int, *, keep_ms: int = 40) -> Int16Array:
    """Drop the quiet tail of a clip (below 1 % of its peak), keeping ``keep_ms`` of it."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 0.01 * np.abs(samples).max(initial=0))
    if not loud.size:
        return samples
    return samples[: min(len(samples), loud[-1] + 1 + rate * keep_ms // 1000)]
