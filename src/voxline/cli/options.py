"""Options the ``voxline`` commands share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from voxline.config import Settings
from voxline.store.database import Database

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory (default: VOXLINE_DATA_DIR, else the user data directory).",
        file_okay=False,
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="The server's database, postgresql://… (default: VOXLINE_DATABASE_URL, else "
        "the SQLite file in the data directory).",
        show_default=False,
    ),
]


@contextmanager
def open_database(data_dir: Path | None, database_url: str | None) -> Iterator[Database]:
    """The database the server of these options (and ``VOXLINE_*`` variables) uses."""
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    with Database(Settings(**overrides).database) as db:
        yield db


def configure_fields(configure: str | None) -> dict[str, Any]:
    """The ``--configure`` option: a JSON object of ``configure`` fields."""
    if configure is None:
        return {}
    try:
        fields = json.loads(configure)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--configure") from exc
    if not isinstance(fields, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--configure")
    return fields
