from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.support.server import RunningServer, run_server
from voxline.bench.speech import synthesize

pytest_plugins = ["tests.support.redis_server"]

# Generous per-address limits: every test connects from 127.0.0.1.
OPEN_LIMITS = {
    "VOXLINE_LIMITS_AUTH_FAILURES_PER_MINUTE_PER_ADDRESS": "100000",
    "VOXLINE_LIMITS_CONNECTS_PER_MINUTE_PER_ADDRESS": "100000",
    "VOXLINE_LIMITS_CONNECTS_PER_MINUTE_PER_KEY": "100000",
}


@pytest.fixture(scope="session")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One shared ``voxline serve --agent echo`` for the end-to-end tests."""
    with run_server(tmp_path_factory.mktemp("echo"), env=OPEN_LIMITS) as server:
        yield server


@pytest.fixture(scope="session")
def question() -> npt.NDArray[np.int16]:
    """About 1.6 s of real speech at 24 kHz."""
    return synthesize("Hello, could you tell me your opening hours?", 24000)


@pytest.fixture(scope="session")
def interruption() -> npt.NDArray[np.int16]:
    return synthesize("Wait, stop, I have another question.", 24000)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
