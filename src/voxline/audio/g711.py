"""G.711 µ-law (Twilio Media Streams, North America) and A-law (the rest of the world), the
telephone network's 8-bit codecs, by lookup table.

Both tables are computed once from the ITU-T G.711 reference algorithm as the classic
Sun/CCITT C code states it (also CPython's ``audioop``): encoding takes the top 14 bits of a
sample, biases the magnitude by 33, and codes it as a 3-bit segment and a 4-bit step with
every bit inverted; decoding inverts that. A-law takes the top 13 bits, codes the magnitude
as a segment and a step without a bias, and inverts every other bit (0x55). A whole frame is
then one NumPy indexing.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from voxline.audio.pcm import Int16Array

UInt8Array = npt.NDArray[np.uint8]

_SEGMENT_ENDS: Final = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_CLIP: Final = 8159  # largest 14-bit magnitude that codes without saturating
_BIAS: Final = 0x84


def _encode_formula(samples: npt.NDArray[np.int32]) -> UInt8Array:
    value = samples >> 2
    negative = value < 0
    magnitude = np.minimum(np.abs(value), _CLIP) + (_BIAS >> 2)
    segment = np.searchsorted(_SEGMENT_ENDS, magnitude)
    code = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    out: UInt8Array = (code ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8)
    return out


def _decode_formula(codes: npt.NDArray[np.int32]) -> Int16Array:
    inverted = ~codes & 0xFF
    magnitude = (((inverted & 0x0F) << 3) + _BIAS) << ((inverted & 0x70) >> 4)
    out: Int16Array = np.where(inverted & 0x80, _BIAS - magnitude, magnitude - _BIAS).astype(
        np.int16
    )
    return out


# Indexed by the sample's bits read as unsigned, so a frame needs no sign arithmetic.
_ENCODE: Final = _encode_formula(np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32))
_DECODE: Final = _decode_formula(np.arange(256, dtype=np.int32))


def ulaw_encode(samples: Int16Array) -> bytes:
    """PCM16 samples to µ-law bytes, one per sample."""
    return _ENCODE[np.asarray(samples, dtype=np.int16).view(np.uint16)].tobytes()


def ulaw_decode(data: bytes | memoryview) -> Int16Array:
    """µ-law bytes to PCM16 samples."""
    out: Int16Array = _DECODE[np.frombuffer(data, dtype=np.uint8)]
    return out


_ALAW_SEGMENT_ENDS: Final = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _alaw_encode_formula(samples: npt.NDArray[np.int32]) -> UInt8Array:
    value = samples >> 3
    negative = value < 0
    magnitude = np.where(negative, -value - 1, value)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude)
    step = np.where(segment < 2, magnitude >> 1, magnitude >> np.maximum(segment, 1)) & 0x0F
    code = np.where(segment >= 8, 0x7F, (segment << 4) | step)
    out: UInt8Array = (code ^ np.where(negative, 0x55, 0xD5)).astype(np.uint8)
    return out


def _alaw_decode_formula(codes: npt.NDArray[np.int32]) -> Int16Array:
    value = codes ^ 0x55
    segment = (value & 0x70) >> 4
    step = (value & 0x0F) << 4
    magnitude = np.where(segment == 0, step + 8, (step + 0x108) << np.maximum(segment - 1, 0))
    out: Int16Array = np.where(value & 0x80, magnitude, -magnitude).astype(np.int16)
    return out


_ALAW_ENCODE: Final = _alaw_encode_formula(
    np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)
)
_ALAW_DECODE: Final = _alaw_decode_formula(np.arange(256, dtype=np.int32))


def alaw_encode(samples: Int16Array) -> bytes:
    """PCM16 samples to A-law bytes, one per sample."""
    return _ALAW_ENCODE[np.asarray(samples, dtype=np.int16).view(np.uint16)].tobytes()


def alaw_decode(data: bytes | memoryview) -> Int16Array:
    """A-law bytes to PCM16 samples."""
    out: Int16Array = _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]
    return out
