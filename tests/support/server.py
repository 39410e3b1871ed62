"""A real ``voxline serve`` process on a loopback port, for end-to-end tests."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.keys import create_key, secrets_created
from voxline.auth.keys import KeyEnv
from voxline.bench.process import ServerFailed, serve_process
from voxline.store.calls import CallRecord, CallRecords
from voxline.store.database import Database

# Generous per-address limits: every test connects from 127.0.0.1.
OPEN_LIMITS = {
    "VOXLINE_LIMITS_AUTH_FAILURES_PER_MINUTE_PER_ADDRESS": "100000",
    "VOXLINE_LIMITS_CONNECTS_PER_MINUTE_PER_ADDRESS": "100000",
    "VOXLINE_LIMITS_CONNECTS_PER_MINUTE_PER_KEY": "100000",
    "VOXLINE_LIMITS_PAGE_TOKENS_PER_MINUTE_PER_ADDRESS": "100000",
}


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path
    #: The database the server shares with others, if not the file in its data directory.
    database_url: str | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/omni"

    def create_key(
        self,
        *,
        env: KeyEnv = "test",
        scopes: tuple[str, ...] = ("omni:session",),
        concurrency: int | None = None,
        daily_audio_seconds: float | None = None,
        owner: str = "default",
    ) -> str:
        """The secret of a new key this server accepts (see :func:`create_key`)."""
        _, secret = create_key(
            self.data_dir,
            env=env,
            scopes=scopes,
            concurrency=concurrency,
            daily_audio_seconds=daily_audio_seconds,
            owner=owner,
        )
        return secret

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def finished_call(self, call_id: str, *, timeout: float = 5.0) -> CallRecord:
        """The record of ``call_id`` in this server's database, once it is finished."""
        deadline = time.monotonic() + timeout
        while True:
            with Database(self.database_url or self.data_dir / "voxline.db") as db:
                record = CallRecords(db).get(call_id)
            if record is not None and record.ended_at is not None:
                return record
            assert time.monotonic() < deadline, f"{call_id} never finished: {record}"
            await asyncio.sleep(0.05)


@contextmanager
def run_server(
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    agent: str = "echo",
    database_url: str | None = None,
) -> Iterator[RunningServer]:
    data_dir.mkdir(parents=True, exist_ok=True)
    if database_url is not None:
        args = ("--database-url", database_url, *args)
    log_path = data_dir / f"server-{os.getpid()}-{next(_started)}.log"
    with log_path.open("wb") as log:
        try:
            with serve_process(data_dir, agent=agent, args=args, env=env, output=log) as spawned:
                yield RunningServer(spawned.process, spawned.port, data_dir, log_path, database_url)
        except ServerFailed as exc:
            raise ServerFailed(f"{exc}:\n{log_path.read_text(errors='replace')}") from exc
    assert_no_secret_logged(data_dir, log_path)


def assert_no_secret_logged(data_dir: Path, log_path: Path) -> None:
    """No secret of a key made for the server (in ``data_dir``) is anywhere in its log."""
    log = log_path.read_text(errors="replace")
    leaked = [secret[:10] for secret in secrets_created(data_dir) if secret in log]
    assert not leaked, f"the secrets of {leaked}... are in the server's log {log_path}"


_started = itertools.count()
