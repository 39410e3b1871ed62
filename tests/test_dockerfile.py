"""The Dockerfile's essentials, read without Docker: an unprivileged user, a health check on
``/healthz``, the port, the data volume, and only files the repository has."""

from __future__ import annotations

import re
import shlex

from tests.support.examples import REPOSITORY

DOCKERFILE = (REPOSITORY / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def arguments(name: str) -> list[str]:
    return [args for instruction, args in instructions() if instruction == name]


def test_the_server_runs_as_an_unprivileged_user() -> None:
    [user] = arguments("USER")
    assert user not in ("root", "0")
    # Nothing runs as root after the switch but the image's own build steps.
    names = [instruction for instruction, _ in instructions()]
    assert names.index("USER") > max(i for i, name in enumerate(names) if name == "RUN")


def test_health_is_checked_on_healthz_and_the_port_is_exposed() -> None:
    [check] = arguments("HEALTHCHECK")
    assert "/healthz" in check
    [port] = arguments("EXPOSE")
    assert port == "8000" and ":8000/healthz" in check
    [env] = arguments("ENV")
    assert "VOXLINE_HOST=0.0.0.0" in env and "VOXLINE_PORT=8000" in env


def test_data_lives_in_a_volume() -> None:
    [volume] = arguments("VOLUME")
    assert "/data" in volume
    assert "VOXLINE_DATA_DIR=/data" in arguments("ENV")[0]


def test_every_copied_path_exists_and_is_not_ignored() -> None:
    ignored = (REPOSITORY / ".dockerignore").read_text().split()
    copies = [shlex.split(args)[:-1] for args in arguments("COPY")]
    sources = [source for copy in copies for source in copy if not source.startswith("--")]
    assert sources
    for source in sources:
        assert (REPOSITORY / source).exists(), source
        assert source.rstrip("/") not in ignored, source


def test_the_default_command_serves_the_example_agent() -> None:
    [command] = arguments("CMD")
    [entrypoint] = arguments("ENTRYPOINT")
    assert entrypoint == '["voxline"]'
    assert '"serve"' in command
    path = command.split('"--knowledge", "')[1].split('"')[0]
    assert (REPOSITORY / path).is_file()
