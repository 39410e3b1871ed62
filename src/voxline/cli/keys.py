"""``voxline keys``: create, list and revoke API keys."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from voxline.auth.keys import (
    DEFAULT_OWNER,
    KNOWN_SCOPES,
    SCOPE_SESSION,
    ApiKey,
    KeyStore,
    validate_owner,
    validate_scopes,
)
from voxline.cli.options import DatabaseUrl, DataDir, open_database

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


class Env(StrEnum):
    test = "test"
    live = "live"


AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _owner(value: str) -> str:
    try:
        return validate_owner(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


Owner = Annotated[
    str,
    typer.Option(
        callback=_owner,
        help="Whose agents the key sees and uses: keys of one owner share its agents.",
    ),
]


@contextmanager
def _key_store(data_dir: Path | None, database_url: str | None) -> Iterator[KeyStore]:
    with open_database(data_dir, database_url) as db:
        yield KeyStore(db)


def _timestamp(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _as_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "env": key.env,
        "prefix": key.prefix,
        "scopes": sorted(key.scopes),
        "label": key.label,
        "owner": key.owner,
        "concurrency": key.concurrency,
        "daily_audio_seconds": key.daily_audio_seconds,
        "created_at": _timestamp(key.created_at),
        "revoked_at": _timestamp(key.revoked_at),
    }


def _positive(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter("must be a positive number of seconds")
    return value


@app.command()
def create(
    env: Annotated[
        Env,
        typer.Option(help="test: a sandbox key with a daily audio cap; live: a production key."),
    ] = Env.test,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Scope to grant, repeatable (default: {SCOPE_SESSION}). "
            f"Known: {', '.join(sorted(KNOWN_SCOPES))}.",
            show_default=False,
        ),
    ] = None,
    label: Annotated[str, typer.Option(help="A note to tell keys apart.")] = "",
    owner: Owner = DEFAULT_OWNER,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Concurrent sessions (default: the server's limit)."),
    ] = None,
    daily_audio_seconds: Annotated[
        float | None,
        typer.Option(
            callback=_positive,
            help="Seconds of audio per UTC day (default: none; the server's cap for test keys).",
        ),
    ] = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a key and print its secret, which is shown this once only."""
    try:
        scopes = validate_scopes(scope or [SCOPE_SESSION])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scope") from None
    with _key_store(data_dir, database_url) as store:
        key, secret = store.create(
            env=env.value,
            scopes=scopes,
            label=label,
            concurrency=concurrency,
            daily_audio_seconds=daily_audio_seconds,
            owner=owner,
        )
    if as_json:
        typer.echo(json.dumps({**_as_json(key), "secret": secret}))
        return
    console = Console()
    console.print(f"Created [bold]{key.id}[/] ({key.env}, {' '.join(sorted(key.scopes))}).")
    console.print("Secret (shown only now; store it somewhere safe):")
    console.print(secret, markup=False, highlight=False, soft_wrap=True)


@app.command("list")
def list_keys(
    as_json: AsJson = False, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """List keys (never their secrets)."""
    with _key_store(data_dir, database_url) as store:
        keys = store.list()
    if as_json:
        typer.echo(json.dumps([_as_json(key) for key in keys]))
        return
    if not keys:
        typer.echo("No keys yet: create one with `voxline keys create`.")
        return
    # The secret's prefix shows the env; limits and exact times are in --json.
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header in ("id", "secret"):
        table.add_column(header, no_wrap=True)
    table.add_column("scopes", min_width=len(SCOPE_SESSION))
    table.add_column("label", min_width=10, overflow="fold")
    # Owners only where there is more than the default one to tell apart.
    owners = any(key.owner != DEFAULT_OWNER for key in keys)
    if owners:
        table.add_column("owner", overflow="fold")
    table.add_column("created", no_wrap=True)
    table.add_column("status", no_wrap=True, min_width=len("revoked"))
    for key in keys:
        table.add_row(
            key.id,
            f"{key.prefix}…",
            " ".join(sorted(key.scopes)),
            Text(key.label),  # never read as markup
            *([Text(key.owner)] if owners else []),
            datetime.fromtimestamp(key.created_at, UTC).date().isoformat(),
            "active" if key.revoked_at is None else "revoked",
        )
    Console().print(table)


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id, key_…")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a key: sessions can no longer start with it or with tokens minted from it."""
    with _key_store(data_dir, database_url) as store:
        if store.revoke(key_id):
            typer.echo(f"Revoked {key_id}.")
        elif store.get(key_id) is None:
            typer.echo(f"No key {key_id}.", err=True)
            raise typer.Exit(1)
        else:
            typer.echo(f"{key_id} was already revoked.")
