"""The speech-recognition evaluation: its text normalisation, and a small slice of it run
from the command line (one espeak-ng voice, 16 kHz and 8 kHz µ-law, through the session)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voxline.cli import app
from voxline.eval.stt_eval import EngineSpec, load_set
from voxline.eval.wer import normalise, word_errors


@pytest.mark.parametrize(
    ("written", "heard"),
    [
        ("Is it still $65 for the exam fee?", "is it still sixty-five dollars for the exam fee"),
        ("My account number is 4 7 2 9 1 3.", "My account number is 472913."),
        ("Call me back at 312 555 0198.", "Call me back at 312-555-0198"),
        ("The card ends in 7 7 3 1.", "The card ends in double seven three one."),
        ("Kowalczyk, K O W A L C Z Y K.", "Kowalczyk. K-O-W-A-L-C-Z-Y-K."),
        ("My client ID is M G 3 0 7 5.", "My client ID is MG3075."),
        ("next Monday at ten thirty", "Next Monday at 10:30."),
        ("long haired cats", "Long-haired cats!"),
    ],
)
def test_normalisation_makes_equal_what_sounds_equal(written: str, heard: str) -> None:
    assert normalise(written) == normalise(heard)
    assert word_errors(written, heard).errors == 0


def test_word_errors_count_every_edit_and_silence_misses_every_word() -> None:
    assert word_errors("Let me talk to a person.", "let me talk to the person please").errors == 2
    assert word_errors("Let me talk to a person.", "") == word_errors(
        "Let me talk to a person.", ""
    )
    assert word_errors("Operator.", "").rate == 1.0


def test_the_set_is_large_enough_and_its_ids_are_unique() -> None:
    evalset = load_set()
    assert len(evalset.utterances) >= 60
    assert len({u.id for u in evalset.utterances}) == len(evalset.utterances)
    assert evalset.knowledge.entries


def test_engine_specs() -> None:
    assert EngineSpec.parse("tiny.en") == EngineSpec("tiny.en")
    spec = EngineSpec.parse("base:beam=5,window=8,bias=off")
    assert (spec.model, spec.beam, spec.window, spec.bias) == ("base", 5, 8.0, False)
    assert EngineSpec.parse("faster-whisper").library_defaults
    with pytest.raises(ValueError, match="unknown option"):
        EngineSpec.parse("tiny.en:temperature=1")


@pytest.mark.e2e
def test_a_slice_runs_through_the_session_path(tmp_path: Path) -> None:
    out = tmp_path / "stt.json"
    result = CliRunner().invoke(
        app,
        [
            "eval", "stt", "--limit", "3", "--voice", "espeak-us-m3",
            "--line", "16k", "--line", "8k-ulaw", "--engine", "tiny.en",
            "--cache", str(tmp_path / "clips"), "--json", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Speech recognition, all voices" in result.output
    report = json.loads(out.read_text())
    utterances = report["utterances"]
    assert [(u["line"], u["id"]) for u in utterances[:2]] == [
        ("16k", "hours-1"),
        ("8k-ulaw", "hours-1"),
    ]
    assert len(utterances) == 6
    for u in utterances:
        assert u["hypothesis"], u  # the session cut an utterance and the engine heard words
        assert 1.0 < u["audio_seconds"] < 4.0
        assert 0 < u["decode_seconds"] < 3.0
    wideband = next(s for s in report["summary"] if s["line"] == "16k")
    assert wideband["wer"] < 0.3
    assert len(list((tmp_path / "clips" / "espeak-us-m3").glob("*.wav"))) == 3
