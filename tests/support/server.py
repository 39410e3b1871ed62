"""A real ``voxline serve`` process on a loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from voxline.auth.keys import KeyStore
from voxline.store.database import Database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/omni"

    def create_key(
        self,
        *,
        env: str = "test",
        scopes: tuple[str, ...] = ("omni:session",),
        concurrency: int | None = None,
        daily_audio_seconds: float | None = None,
        label: str = "test",
    ) -> str:
        db = Database(self.data_dir / "voxline.db")
        try:
            _, secret = KeyStore(db).create(
                env=env,
                scopes=list(scopes),
                label=label,
                concurrency=concurrency,
                daily_audio_seconds=daily_audio_seconds,
            )
        finally:
            db.close()
        return secret

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def run_server(
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    agent: str = "echo",
) -> Iterator[RunningServer]:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"server-{port}.log"
    environment = {**os.environ, "VOXLINE_DATA_DIR": str(data_dir), **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voxline",
                "serve",
                "--port",
                str(port),
                "--agent",
                agent,
                *args,
            ],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(process, port, data_dir, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"voxline serve exited early:\n{server.log()}")
            try:
                if httpx.get(f"{server.http}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"voxline serve did not become ready:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
