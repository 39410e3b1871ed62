"""The voice library: which voices a server has, from their configs, loaded lazily and
bounded (loading faked: Piper itself is tested in test_tts.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.voices import SLOW_VOICE_ID, slow_voice_dir
from voxline.audio.pcm import Int16Array
from voxline.engines.voices import (
    PACKAGED_VOICE_ID,
    Voice,
    VoiceConfigError,
    VoiceLibrary,
    piper_voices,
)


def test_the_packaged_voice_says_its_language_gender_and_rate() -> None:
    [voice] = piper_voices(None, None)
    assert voice.id == PACKAGED_VOICE_ID
    assert (voice.language, voice.region, voice.gender) == ("en_US", "US", "male")
    assert (voice.sample_rate, voice.quality, voice.engine) == (22050, "medium", "piper")


def test_a_voices_directory_adds_its_voices_after_the_default(tmp_path: Path) -> None:
    voices = piper_voices(None, slow_voice_dir(tmp_path / "voices"))
    assert [v.id for v in voices] == [PACKAGED_VOICE_ID, SLOW_VOICE_ID]
    assert voices[1].model == tmp_path / "voices" / f"{SLOW_VOICE_ID}.onnx"


def test_a_chosen_default_voice_comes_first_and_the_packaged_one_stays(tmp_path: Path) -> None:
    directory = slow_voice_dir(tmp_path / "voices")
    voices = piper_voices(directory / f"{SLOW_VOICE_ID}.onnx", directory)
    assert [v.id for v in voices] == [SLOW_VOICE_ID, PACKAGED_VOICE_ID]


def test_a_voice_without_its_config_or_with_a_bad_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "lone.onnx").write_bytes(b"")
    with pytest.raises(VoiceConfigError, match=r"\.onnx\.json"):
        piper_voices(None, tmp_path)
    (tmp_path / "lone.onnx.json").write_text(json.dumps({"audio": {}}))
    with pytest.raises(VoiceConfigError, match="not a Piper voice config"):
        piper_voices(None, tmp_path)
    with pytest.raises(VoiceConfigError, match="does not exist"):
        piper_voices(None, tmp_path / "absent")


class Tone:
    def __init__(self, voice: Voice) -> None:
        self.sample_rate = voice.sample_rate
        self.voice = voice

    async def synthesize(self, text: str, *, batch: bool = False) -> Int16Array:
        return np.ones(10, np.int16)

    async def aclose(self) -> None:
        pass


def _voice(voice_id: str) -> Voice:
    return Voice(voice_id, voice_id, 16000, "piper")


async def test_voices_load_once_when_first_asked_for_and_stay_bounded() -> None:
    loads: list[str] = []

    def load(voice: Voice) -> Tone:
        loads.append(voice.id)
        return Tone(voice)

    library = VoiceLibrary([_voice(name) for name in "dabc"], load, max_loaded=2)
    assert loads == []  # nothing loads until asked for
    first, again = await asyncio.gather(library.synthesizer("a"), library.synthesizer("a"))
    assert first is again and loads == ["a"]
    await library.synthesizer("b")
    await library.synthesizer("c")  # "a" is dropped: two loaded besides the default
    await library.synthesizer("d")
    await library.synthesizer("d")
    assert loads == ["a", "b", "c", "d"]
    await library.synthesizer("a")
    assert loads[-1] == "a"
    with pytest.raises(KeyError):
        await library.synthesizer("nope")
