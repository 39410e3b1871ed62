"""WAV headers written ahead of their audio, and uploaded clips read whatever their format."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
import soundfile

from voxline.audio.files import UnreadableAudio, read_audio_file, read_raw, wav_header
from voxline.audio.g711 import alaw_encode, ulaw_encode

TONE = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 12000).astype(np.int16)


def test_a_wav_with_its_size_reads_back_with_the_stdlib() -> None:
    data = TONE.astype("<i2").tobytes()
    with wave.open(io.BytesIO(wav_header(8000, len(data)) + data)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert np.array_equal(np.frombuffer(wav.readframes(wav.getnframes()), "<i2"), TONE)


def test_a_streamed_wav_reads_to_its_end() -> None:
    data = TONE.astype("<i2").tobytes()
    samples, rate = read_audio_file(wav_header(8000) + data)
    assert rate == 8000 and np.array_equal(samples, TONE)


@pytest.mark.parametrize(
    ("subtype", "container"),
    [("PCM_U8", "WAV"), ("PCM_24", "WAV"), ("FLOAT", "WAV"), ("PCM_16", "FLAC")],
)
def test_files_of_other_sample_formats_and_stereo_read_as_mono_pcm16(
    subtype: str, container: str
) -> None:
    stereo = np.stack([TONE, TONE], axis=1)
    buffer = io.BytesIO()
    soundfile.write(buffer, stereo, 48000, subtype=subtype, format=container)
    samples, rate = read_audio_file(buffer.getvalue())
    assert rate == 48000 and samples.dtype == np.int16 and samples.shape == TONE.shape
    assert np.max(np.abs(samples.astype(np.int32) - TONE)) <= 256  # 8-bit quantisation


def test_headerless_audio_is_read_as_its_encoding_says() -> None:
    assert np.array_equal(read_raw(TONE.astype("<i2").tobytes(), "pcm16"), TONE)
    for encoding, encode in (("ulaw", ulaw_encode), ("alaw", alaw_encode)):
        decoded = read_raw(encode(TONE), encoding)  # type: ignore[arg-type]
        assert np.max(np.abs(decoded.astype(np.int32) - TONE)) < 400


def test_what_is_not_audio_is_refused() -> None:
    with pytest.raises(UnreadableAudio):
        read_audio_file(b"this is a text file, not a recording")
    with pytest.raises(UnreadableAudio):
        read_raw(b"\x00\x01\x02", "pcm16")
