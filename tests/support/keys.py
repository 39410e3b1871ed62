"""API keys for tests: in memory for the code that takes an :class:`ApiKey`, or stored in a
server's data directory for the ones a real server authenticates."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from voxline.auth.keys import ApiKey, KeyEnv, KeyStore
from voxline.store.database import Database


def api_key(
    *,
    key_id: str = "key_00000001",
    env: KeyEnv = "live",
    scopes: Iterable[str] = ("omni:session",),
    concurrency: int | None = None,
    daily_audio_seconds: float | None = None,
) -> ApiKey:
    """A key as :meth:`KeyStore.authenticate` returns it, never stored."""
    return ApiKey(
        id=key_id,
        env=env,
        scopes=frozenset(scopes),
        label="",
        concurrency=concurrency,
        daily_audio_seconds=daily_audio_seconds,
        created_at=0.0,
        revoked_at=None,
        prefix=f"vx_{env}_abcd",
    )


_created: dict[Path, list[str]] = {}


def secrets_created(data_dir: Path) -> list[str]:
    """Every secret :func:`create_key` made in ``data_dir``: what must never be logged."""
    return _created.get(data_dir.resolve(), [])


def create_key(
    data_dir: Path,
    *,
    env: KeyEnv = "test",
    scopes: Iterable[str] = ("omni:session",),
    concurrency: int | None = None,
    daily_audio_seconds: float | None = None,
    label: str = "test",
    owner: str = "default",
) -> tuple[ApiKey, str]:
    """A key stored in the database of ``data_dir``, and its secret."""
    with Database(data_dir / "voxline.db") as db:
        key, secret = KeyStore(db).create(
            env=env,
            scopes=list(scopes),
            label=label,
            concurrency=concurrency,
            daily_audio_seconds=daily_audio_seconds,
            owner=owner,
        )
    _created.setdefault(data_dir.resolve(), []).append(secret)
    return key, secret


def create_key_with_cli(
    database_url: str,
    *,
    servers: Iterable[Path],
    scopes: Iterable[str] = ("omni:session",),
    concurrency: int | None = None,
) -> tuple[str, str]:
    """A key made with ``voxline keys create --database-url``, for the servers of the data
    directories ``servers`` (whose logs must never show it); its id and secret."""
    command = [sys.executable, "-m", "voxline", "keys", "create", "--json"]
    command += ["--database-url", database_url, *(f"--scope={scope}" for scope in scopes)]
    if concurrency is not None:
        command.append(f"--concurrency={concurrency}")
    created = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
    for data_dir in servers:
        _created.setdefault(data_dir.resolve(), []).append(created["secret"])
    return created["id"], created["secret"]


def stored_key(data_dir: Path, secret: str) -> ApiKey:
    """The key ``secret`` authenticates in the database of ``data_dir``."""
    with Database(data_dir / "voxline.db") as db:
        key = KeyStore(db).authenticate(secret)
    assert key is not None
    return key


def revoke_key(data_dir: Path, secret: str) -> None:
    with Database(data_dir / "voxline.db") as db:
        store = KeyStore(db)
        key = store.authenticate(secret)
        assert key is not None and store.revoke(key.id)
