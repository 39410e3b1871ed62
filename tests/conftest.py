"""Fixtures shared by tests in more than one folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.support.server import OPEN_LIMITS, RunningServer, run_server
from tests.support.voices import slow_voice_dir
from voxline.bench.speech import synthesize
from voxline.store.database import Database

pytest_plugins = ["tests.support.redis_server", "tests.support.postgres_server"]


@pytest.fixture(scope="session")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One shared ``voxline serve --agent echo`` for the end-to-end tests."""
    with run_server(tmp_path_factory.mktemp("echo"), env=OPEN_LIMITS) as server:
        yield server


@pytest.fixture(scope="session")
def voices_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One shared ``voxline serve`` of the default agent with two voices: the packaged one
    and a slower one (``tests/support/voices.py``)."""
    root = tmp_path_factory.mktemp("voices")
    with run_server(
        root / "data",
        env=OPEN_LIMITS,
        agent="default",
        args=("--tts-voices-dir", str(slow_voice_dir(root / "voices"))),
    ) as server:
        yield server


@pytest.fixture(scope="session")
def question() -> npt.NDArray[np.int16]:
    """About 1.6 s of real speech at 24 kHz."""
    return synthesize("Hello, could you tell me your opening hours?", 24000)


@pytest.fixture(scope="session")
def interruption() -> npt.NDArray[np.int16]:
    return synthesize("Wait, stop, I have another question.", 24000)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.e2e)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh database: once an SQLite file, once on a real PostgreSQL."""
    target: str | Path = (
        tmp_path / "voxline.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_database")
    )
    with Database(target) as database:
        yield database
