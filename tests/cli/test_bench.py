"""``voxline bench``: its synthetic callers against a real server, and the command itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import typer
from typer.testing import CliRunner

from tests.support.server import RunningServer
from voxline.bench.load import Clip, Interjection, noise_burst, run_caller
from voxline.bench.speech import synthesize
from voxline.cli.bench import bench
from voxline.store.calls import CallRecords
from voxline.store.database import Database

RATE = 24000


def test_a_clip_knows_where_its_speech_starts_and_ends() -> None:
    pcm = np.zeros(3000, dtype=np.int16)
    pcm[1000:2000] = 5000
    pcm[1500] = 20000
    clip = Clip.of(pcm)
    assert (clip.onset, clip.end) == (1000, 2000)
    assert Clip.of(np.zeros(10, dtype=np.int16)).end == 0


@pytest.mark.e2e
async def test_callers_measure_replies_barge_ins_and_noise_against_the_echo_line(
    echo_server: RunningServer, question: npt.NDArray[np.int16]
) -> None:
    saturday = "Are you open on Saturday?"
    questions = [Clip.of(question), Clip.of(synthesize(saturday, RATE), saturday)]
    result = await run_caller(
        echo_server.http,
        echo_server.create_key(),
        questions,
        rate=RATE,
        duration=11.0,
        plan=(Interjection.INTERRUPT, Interjection.NOISE, Interjection.LISTEN),
        noise=noise_burst(RATE),
    )
    assert result.error is None and result.close_code == 1000
    assert result.interruptions >= 1 and result.missed_barge_ins == 0
    assert all(0 < seconds < 0.5 for seconds in result.barge_in)
    assert result.noise_bursts >= 1 and result.false_barge_ins == 0
    # The echo answers after the endpointing silence (500 ms), not before.
    assert result.ttfb and all(0.5 < seconds < 1.5 for seconds in result.ttfb)
    assert list(result.ttfb_by_text) == [saturday]  # only the clip that says what it is
    assert set(result.ttfb_by_text[saturday]) <= set(result.ttfb)
    assert result.frame_lag and max(result.frame_lag) < 0.1


@pytest.mark.e2e
def test_the_command_reports_in_a_table_and_as_json(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(bench)
    out = tmp_path / "report.json"
    args = ["--agent", "echo", "--sessions", "2", "--duration", "4", "--ramp", "0"]
    args += ["--configure", '{"barge_in_min_ms": 64, "metrics": true}']
    result = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "ttfb_ms" in result.output
    report = json.loads(out.read_text())
    assert report["sessions"] == 2 and report["errors"] == [] and report["questions"] >= 2
    assert report["configure"] == {"barge_in_min_ms": 64, "metrics": True}
    assert report["ttfb_questions_ms"]["50"] is not None  # every question the echo hears
    assert "server_first_audio_ms" in report and "server_first_audio_ms" in result.output
    assert report["ttfb_ms"]["50"] is not None and report["server_cpu_fraction"] > 0


@pytest.mark.e2e
def test_the_command_benches_several_server_processes(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(bench)
    out = tmp_path / "report.json"
    args = ["--workers", "2", "--sessions", "4", "--duration", "4", "--ramp", "0"]
    result = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["server_workers"] == 2 and report["errors"] == []
    assert report["replies"] == report["questions"] >= 4


@pytest.mark.e2e
def test_the_command_benches_two_nodes_on_one_postgresql(
    tmp_path: Path, postgres_database: str
) -> None:
    app = typer.Typer()
    app.command()(bench)
    out = tmp_path / "report.json"
    args = ["--nodes", "2", "--database-url", postgres_database]
    args += ["--sessions", "4", "--duration", "4", "--ramp", "0"]
    result = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["nodes"] == 2 and report["errors"] == []
    assert report["replies"] == report["questions"] >= 4
    with Database(postgres_database) as db:
        served = [record.node for record in CallRecords(db).recent()]
    assert sorted(served) == ["node-1", "node-1", "node-2", "node-2"]  # callers in turn
