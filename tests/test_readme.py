"""The README's examples run as written, against a server started as ``./scripts/start``
starts it: the code is taken from README.md itself, so the two cannot drift apart."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.examples import ACME_DENTAL, REPOSITORY
from tests.support.server import OPEN_LIMITS, RunningServer, run_server

pytestmark = pytest.mark.e2e

README = (REPOSITORY / "README.md").read_text()
README_URL = "http://127.0.0.1:8000"


def code_block(language: str, containing: str) -> str:
    """The README's one fenced ``language`` block that contains ``containing``."""
    blocks = re.findall(rf"^```{language}\n(.*?)^```$", README, flags=re.DOTALL | re.MULTILINE)
    [block] = [block for block in blocks if containing in block]
    return str(block)


@pytest.fixture(scope="module")
def dental_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """``./scripts/start``'s server: the default agent answering from the example file."""
    with run_server(
        tmp_path_factory.mktemp("readme"),
        env=OPEN_LIMITS,
        agent="default",
        args=("--knowledge", str(ACME_DENTAL)),
    ) as server:
        yield server


def run(command: list[str], server: RunningServer) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=REPOSITORY,
        env={**os.environ, "VOXLINE_API_KEY": server.create_key()},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_python_example_runs_as_written(dental_server: RunningServer) -> None:
    code = code_block("python", "OmniClient.connect")
    assert README_URL in code
    result = run(
        [sys.executable, "-c", code.replace(README_URL, dental_server.http)], dental_server
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("turn_begin") for line in lines), result.stdout
    answer = lines[-1]  # the reply's final transcript ends the example
    assert answer.startswith("transcript") and "'final': True" in answer
    assert "Monday" in answer, result.stdout  # the opening hours, from the knowledge file


def test_the_talk_example_runs_as_written(dental_server: RunningServer, tmp_path: Path) -> None:
    block = code_block("sh", "voxline talk")
    assert block.startswith("export VOXLINE_API_KEY=")
    command = shlex.split(block.split("\n", 1)[1].replace("\\\n", " "))
    assert command[:2] == [".venv/bin/voxline", "talk"]
    command = [sys.executable, "-m", "voxline", *command[1:]]
    command[command.index("--url") + 1] = dental_server.http
    command[command.index("--out") + 1] = str(tmp_path / "conversation.wav")
    result = run(command, dental_server)
    assert result.returncode == 0, result.stdout + result.stderr
    agent_lines = [line for line in result.stdout.splitlines() if "agent: " in line]
    assert "parking" in agent_lines[-1], result.stdout  # the last question, answered
    assert "session_end" in result.stdout
    with wave.open(str(tmp_path / "conversation.wav")) as saved:
        assert saved.getnframes() / saved.getframerate() > 8  # both questions and replies
