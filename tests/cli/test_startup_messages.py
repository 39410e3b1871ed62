"""What the real ``voxline`` command says when a user's mistake stops it: a line or two naming
the problem and its fix, no traceback (unless ``--debug``); and the banner of a server that
started, printed only once it answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.examples import CALLER_AUDIO
from voxline.bench.process import free_port

pytestmark = pytest.mark.e2e


def voxline(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("VOXLINE_")
    }
    result = subprocess.run(
        [sys.executable, "-m", "voxline", *args],
        env={**environment, "VOXLINE_DATA_DIR": str(data_dir), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout + result.stderr


def assert_short_error(output: str, *names: str) -> None:
    lines = output.strip().splitlines()
    assert "Traceback" not in output, output
    assert 1 <= len(lines) <= 2, output
    assert lines[0].startswith("error: "), output
    for name in names:
        assert name in output, output


@pytest.fixture
def unreadable_knowledge(tmp_path: Path) -> Path:
    directory = tmp_path / "knowledge.json"  # a directory: unreadable even as root
    directory.mkdir()
    return directory


def test_mistakes_in_serve_are_a_line_or_two(tmp_path: Path, unreadable_knowledge: Path) -> None:
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("port = = 1")
    cases = [  # (arguments, variables, what the message names, exit status)
        (["--knowledge", str(tmp_path / "gone.json")], {}, ["knowledge file", "gone.json"], 1),
        (["--knowledge", str(unreadable_knowledge)], {}, ["knowledge file", "knowledge.json"], 1),
        (["--stt-model", str(tmp_path / "no-model")], {}, ["--stt-model", "no-model"], 1),
        (["--tts-voice", str(tmp_path / "amy.onnx")], {}, ["voice", "amy.onnx", "--tts-voice"], 1),
        (["--config", str(tmp_path / "missing.toml")], {}, ["config file", "missing.toml"], 2),
        (["--config", str(bad_toml)], {}, ["not TOML", "bad.toml"], 2),
        ([], {"VOXLINE_CONFIG_FILE": str(tmp_path / "gone.toml")}, ["gone.toml"], 2),
        (["--port", "70000"], {}, ["setting port", "65535"], 2),
        ([], {"VOXLINE_STT_BEAM": "0"}, ["setting stt.beam"], 2),
        ([], {"VOXLINE_IDLE_SESSION_SECONDS": "soon"}, ["idle_session_seconds"], 2),
        (["--host", "192.0.2.1"], {}, ["192.0.2.1", "not an address of this machine"], 1),
    ]  # fmt: skip
    for args, env, names, expected in cases:
        status, output = voxline("serve", *args, data_dir=tmp_path, env=env)
        assert status == expected, (args, output)
        assert_short_error(output, *names)
        assert "is up" not in output


def test_a_port_in_use_is_named_before_anything_loads(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        status, output = voxline("serve", "--agent", "echo", "--port", str(port), data_dir=tmp_path)
    assert status == 1
    assert_short_error(output, f"port {port} is in use", "--port")
    assert "startup" not in output  # refused before the app started


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    status, output = voxline(
        "serve", "--knowledge", str(tmp_path / "missing.json"), "--debug", data_dir=tmp_path
    )
    assert status != 0
    assert "Traceback" in output and "missing.json" in output


def test_other_commands_fail_as_briefly(tmp_path: Path) -> None:
    wav = tmp_path / "q.wav"
    wav.write_bytes(b"RIFF")
    unreachable = ["talk", "--url", f"http://127.0.0.1:{free_port()}", "--key", "vx_test_x"]
    cases = [
        (["keys", "list"], {"VOXLINE_PORT": "eighty"}, ["setting port"]),
        (["agents", "list"], {"VOXLINE_PORT": "eighty"}, ["setting port"]),
        (["keys", "revoke", "key_nope"], {}, ["No key key_nope"]),
        ([*unreachable, "--wav", str(wav)], {}, ["not a PCM WAV"]),
        ([*unreachable, "--wav", str(tmp_path / "missing.wav")], {}, ["missing.wav"]),
    ]
    for args, env, names in cases:
        status, output = voxline(*args, data_dir=tmp_path, env=env)
        assert status != 0, (args, output)
        assert "Traceback" not in output, output
        assert len(output.strip().splitlines()) <= 8, output  # typer's usage box at most
        text = " ".join(output.replace("│", " ").split())  # unwrap the box
        for name in names:
            assert name in text, output
    status, output = voxline(
        *unreachable, "--wav", str(CALLER_AUDIO / "parking.wav"), data_dir=tmp_path
    )
    assert status == 1
    assert_short_error(output, "cannot connect")


def test_the_banner_comes_once_the_server_answers(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "voxline", "serve", "--agent", "echo", "--port", str(port),
         "--print-key", "--data-dir", str(tmp_path)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        seen: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            assert line, "".join(seen)  # the server exited
            seen.append(line)
            if "is up on" in line:
                break
        # The port is bound and the app (the VAD model included) has started by now.
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        assert any("Application startup complete" in line for line in seen)
        banner = [process.stderr.readline() for _ in range(3)]
        assert "realtime socket" in banner[0] and "test key: vx_test_" in banner[1]
        assert f"browser page: http://127.0.0.1:{port}/" in banner[2]
    finally:
        process.terminate()
        process.wait(timeout=30)
