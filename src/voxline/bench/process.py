"""A ``voxline serve`` child process on a loopback port, for the benchmark and the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx


class ServerFailed(RuntimeError):
    """The server exited, or did not become ready, before it could be used."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class ServeProcess:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def serve_process(
    data_dir: Path,
    *,
    agent: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    output: IO[bytes] | None = None,
    ready_timeout: float = 60.0,
) -> Iterator[ServeProcess]:
    """Start ``voxline serve`` on a free loopback port, wait for ``/readyz``, stop it after."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "voxline", "serve", "--port", str(port), "--agent", agent, *args],
        env={**os.environ, "VOXLINE_DATA_DIR": str(data_dir), **(env or {})},
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
    )
    server = ServeProcess(process, port)
    try:
        deadline = time.monotonic() + ready_timeout
        while not _ready(server.url):
            if process.poll() is not None:
                raise ServerFailed(f"voxline serve exited with status {process.returncode}")
            if time.monotonic() > deadline:
                raise ServerFailed(f"voxline serve was not ready within {ready_timeout:.0f} s")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
