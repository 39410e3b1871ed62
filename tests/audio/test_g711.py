"""G.711 µ-law: bit-exact against the reference (``audioop``), and what the 8 kHz phone path
does to a tone, agent to Twilio and caller to the session."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import numpy.typing as npt
import pytest

from voxline.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voxline.audio.resample import resample

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # stdlib audioop before 3.13
    import audioop  # audioop-lts from 3.13

TONE_HZ = 1004.0  # the telephone network's test tone: not a divisor of the sample rates


def test_every_code_decodes_as_the_reference_does() -> None:
    codes = bytes(range(256))
    reference = np.frombuffer(audioop.ulaw2lin(codes, 2), dtype="<i2")
    assert np.array_equal(ulaw_decode(codes), reference)


def test_every_sample_encodes_as_the_reference_does() -> None:
    samples = np.arange(-32768, 32768, dtype=np.int16)
    assert ulaw_encode(samples) == audioop.lin2ulaw(samples.astype("<i2").tobytes(), 2)


def test_every_a_law_code_and_sample_is_coded_as_the_reference_does() -> None:
    codes = bytes(range(256))
    assert np.array_equal(alaw_decode(codes), np.frombuffer(audioop.alaw2lin(codes, 2), "<i2"))
    samples = np.arange(-32768, 32768, dtype=np.int16)
    assert alaw_encode(samples) == audioop.lin2alaw(samples.astype("<i2").tobytes(), 2)


def test_a_law_codes_survive_a_round_trip() -> None:
    codes = bytes(range(256))
    assert alaw_encode(alaw_decode(codes)) == codes


def test_codes_survive_a_round_trip() -> None:
    codes = bytes(c for c in range(256) if c != 0x7F)  # 0x7F and 0xFF both decode to 0
    assert ulaw_encode(ulaw_decode(codes)) == codes


def _tone(rate: int, seconds: float, dbfs: float) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    amplitude = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)  # a sine's RMS is its peak over √2
    return np.rint(amplitude * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)


def _measure(samples: npt.NDArray[np.int16], rate: int) -> tuple[float, float, float]:
    """Frequency (Hz), level (dBFS RMS) and signal-to-noise ratio (dB) of a steady tone."""
    x = samples[rate // 10 : -rate // 10].astype(np.float64)  # past the filters' edges
    window = np.hanning(len(x))
    spectrum = np.abs(np.fft.rfft(x * window, 1 << 20))
    peak = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[peak - 1 : peak + 2])
    frequency = (peak + 0.5 * (a - c) / (a - 2 * b + c)) * rate / (1 << 20)
    t = np.arange(len(x)) / rate
    basis = np.column_stack(
        [np.sin(2 * np.pi * frequency * t), np.cos(2 * np.pi * frequency * t), np.ones_like(t)]
    )
    fit = basis @ np.linalg.lstsq(basis, x, rcond=None)[0]
    level = 20 * np.log10(np.sqrt(np.mean(x**2)) / 32768)
    snr = 10 * np.log10(np.sum(fit**2) / np.sum((x - fit) ** 2))
    return float(frequency), float(level), float(snr)


@pytest.mark.parametrize("dbfs", [-6.0, -20.0, -40.0])
def test_agent_audio_to_twilio_keeps_a_tones_frequency_and_level(dbfs: float) -> None:
    """24 kHz agent audio, resampled to 8 kHz by the session, µ-law on the wire, decoded."""
    heard = ulaw_decode(ulaw_encode(resample(_tone(24000, 1.2, dbfs), 24000, 8000)))
    frequency, level, snr = _measure(heard, 8000)
    print(f"agent {dbfs:+.0f} dBFS -> {frequency:.2f} Hz, {level:+.2f} dBFS, SNR {snr:.1f} dB")
    assert abs(frequency - TONE_HZ) < 0.1
    assert abs(level - dbfs) < 0.25
    assert snr > 33


@pytest.mark.parametrize("dbfs", [-6.0, -20.0, -40.0])
def test_caller_audio_from_twilio_keeps_a_tones_frequency_and_level(dbfs: float) -> None:
    """A caller's 8 kHz µ-law, decoded for the session, resampled to 16 kHz for the STT."""
    heard = resample(ulaw_decode(ulaw_encode(_tone(8000, 1.2, dbfs))), 8000, 16000)
    frequency, level, snr = _measure(heard, 16000)
    print(f"caller {dbfs:+.0f} dBFS -> {frequency:.2f} Hz, {level:+.2f} dBFS, SNR {snr:.1f} dB")
    assert abs(frequency - TONE_HZ) < 0.1
    assert abs(level - dbfs) < 0.25
    assert snr > 33


def test_audioop_is_the_reference_on_this_python() -> None:
    name = "audioop" if sys.version_info < (3, 13) else "audioop-lts"
    assert audioop.lin2ulaw(b"\x00\x00", 2) == b"\xff", name
