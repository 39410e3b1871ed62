"""Child processes on loopback ports for the benchmark and the tests: ``voxline serve`` and the
``redis-server`` that several server processes share."""

from __future__ import annotations

import os
import shutil
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
import redis


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
        _stop(process, timeout=15)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def redis_server(directory: Path, *, attempts: int = 3) -> Iterator[str]:
    """A private, non-persisting ``redis-server`` on a free loopback port; its URL."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise ServerFailed("redis-server is not installed")
    for attempt in range(attempts):
        try:
            process, url = _start_redis(executable, directory)
            break
        except ServerFailed:  # the port was taken between choosing and binding it
            if attempt == attempts - 1:
                raise
    try:
        yield url
    finally:
        _stop(process)


def _start_redis(
    executable: str, directory: Path, timeout: float = 10.0
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            executable,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(directory),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(directory / f"redis-{port}.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
                return process, url
            except redis.ConnectionError:
                time.sleep(0.02)
    finally:
        client.close()
    _stop(process)
    raise ServerFailed(f"redis-server did not start on port {port}")


def _stop(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
