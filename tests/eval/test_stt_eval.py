"""The speech-recognition evaluation: its text normalisation, its voices, and small slices of
it run from the command line (16 kHz and 8 kHz µ-law, through the session)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voxline.cli import app
from voxline.eval.stt_eval import EngineSpec, load_set
from voxline.eval.voices import RECORDED, VOICES
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


def test_every_family_has_voices_and_the_recordings_their_transcripts() -> None:
    families = {voice.family for voice in VOICES}
    assert families == {"espeak-ng", "diphone", "statistical", "human", "piper"}
    assert [voice.name for voice in VOICES if voice.recorded] == ["human-allison"]
    assert len(RECORDED.utterances) >= 20
    assert len({r.id for r in RECORDED.utterances}) == len(RECORDED.utterances)
    assert all(len(r.text.split()) >= 4 for r in RECORDED.utterances)


@pytest.mark.e2e
def test_festival_and_recorded_speech_are_heard_and_reported_by_family(tmp_path: Path) -> None:
    out = tmp_path / "stt.json"
    result = CliRunner().invoke(
        app,
        [
            "eval", "stt", "--limit", "3", "--family", "diphone", "--family", "statistical",
            "--family", "human", "--voice", "festival-kal", "--voice", "festival-slt-hts",
            "--voice", "human-allison", "--line", "16k", "--line", "8k-ulaw",
            "--engine", "tiny.en:beam=1", "--engine", "tiny.en:beam=5",
            "--cache", str(tmp_path / "clips"), "--json", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Speech recognition by family" in result.output
    report = json.loads(out.read_text())
    heard = {(u["voice"], u["family"]) for u in report["utterances"]}
    assert heard == {
        ("festival-kal", "diphone"),
        ("festival-slt-hts", "statistical"),
        ("human-allison", "human"),
    }
    # 3 utterances and 3 recordings, each on 2 lines by 2 engines
    assert len(report["utterances"]) == 3 * 3 * 2 * 2
    families = {(s["engine"], s["voice"], s["line"]): s for s in report["by_family"]}
    assert len(families) == 3 * 2 * 2
    # A natural voice and a person reading are heard nearly word for word, on either line.
    for engine in ("tiny.en:beam=1", "tiny.en:beam=5"):
        for line in ("16k", "8k-ulaw"):
            assert families[engine, "statistical", line]["wer"] <= 0.2
            assert families[engine, "human", line]["wer"] <= 0.2
    texts = {u["id"]: u["reference"] for u in report["utterances"] if u["voice"] == "human-allison"}
    assert texts == {r.id: r.text for r in RECORDED.utterances[:3]}
