"""In-band DTMF: each key's tones are heard as that key, in order and at its place, at both
phone rates and through µ-law; and the detector the phone tests hear them with hears no key
in a lone tone, a test tone or noise."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.phone import Pcm, dtmf_keys
from voxline.audio.dtmf import dtmf_tones
from voxline.audio.g711 import ulaw_decode, ulaw_encode

KEYPAD = "123A456B789C*0#D"


@pytest.mark.parametrize("rate", [8000, 16000])
def test_every_key_is_heard_as_itself_in_order(rate: int) -> None:
    tones = dtmf_tones(KEYPAD, rate)
    assert len(tones) == len(KEYPAD) * 160 * rate // 1000  # 100 ms of tones, 60 of silence
    heard = dtmf_keys(tones, rate)
    assert "".join(key for key, _ in heard) == KEYPAD
    for index, (_, start) in enumerate(heard):  # each where it begins, to a block
        assert abs(start - index * 160 * rate // 1000) < rate // 40


@pytest.mark.parametrize("rate", [8000, 16000])
def test_a_key_pressed_twice_is_heard_twice(rate: int) -> None:
    assert [key for key, _ in dtmf_keys(dtmf_tones("11", rate), rate)] == ["1", "1"]


def test_keys_survive_mu_law() -> None:
    """As Twilio carries them: at 8 kHz, µ-law coded, not aligned with the detector's blocks."""
    tones = np.concatenate([np.zeros(37, np.int16), dtmf_tones("1#", 8000)])
    assert [key for key, _ in dtmf_keys(ulaw_decode(ulaw_encode(tones)), 8000)] == ["1", "#"]


def _sine(*hz: float, rate: int = 8000) -> Pcm:
    t = np.arange(rate) / rate
    out: Pcm = (np.sin(2 * np.pi * np.outer(hz, t)).sum(axis=0) * 8000).astype(np.int16)
    return out


@pytest.mark.parametrize(
    "sound",
    [
        pytest.param(_sine(697), id="a row tone alone"),
        pytest.param(_sine(1209), id="a column tone alone"),
        pytest.param(_sine(1004), id="the test tone"),
        pytest.param(np.zeros(8000, np.int16), id="silence"),
        pytest.param(
            (np.random.default_rng(3).standard_normal(8000) * 6000).astype(np.int16), id="noise"
        ),
    ],
)
def test_no_key_is_heard_in_other_sounds(sound: Pcm) -> None:
    assert dtmf_keys(sound, 8000) == []
