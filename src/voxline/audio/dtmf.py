"""In-band DTMF: the keypad's dual tones (ITU-T Q.23), for lines with no out-of-band digits."""

from __future__ import annotations

from typing import Final

import numpy as np

from voxline.audio.pcm import Int16Array

_ROWS: Final = (697, 770, 852, 941)
_COLUMNS: Final = (1209, 1336, 1477, 1633)
_KEYPAD: Final = ("123A", "456B", "789C", "*0#D")
FREQUENCIES: Final = {
    key: (_ROWS[row], _COLUMNS[column])
    for row, keys in enumerate(_KEYPAD)
    for column, key in enumerate(keys)
}


def dtmf_tones(digits: str, rate: int, *, tone_ms: int = 100, gap_ms: int = 60) -> Int16Array:
    """Each digit's two tones for ``tone_ms`` (each at -9 dBFS), then ``gap_ms`` of silence."""
    t = np.arange(rate * tone_ms // 1000) / rate
    gap = np.zeros(rate * gap_ms // 1000)
    parts: list[np.typing.NDArray[np.float64]] = []
    for digit in digits:
        low, high = FREQUENCIES[digit]
        parts += [np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t), gap]
    out: Int16Array = np.rint(np.concatenate(parts or [gap[:0]]) * 0.35 * 32767).astype(np.int16)
    return out
