"""``voxline serve``: run the server."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from voxline.auth.keys import KeyStore
from voxline.config import Settings
from voxline.server.workers import run_server
from voxline.store.database import Database


def quickstart_key(settings: Settings) -> str:
    """A test key for trying the server out, created once and kept in the data directory
    (mode 0600) so that it can be shown again; the database only ever holds its hash."""
    path = settings.data_dir / "quickstart-key"
    db = Database(settings.database_path)
    try:
        keys = KeyStore(db)
        if path.exists():
            secret = path.read_text().strip()
            if keys.authenticate(secret) is not None:
                return secret
        _, secret = keys.create(
            env="test",
            scopes=["omni:session"],
            label="quickstart",
            concurrency=None,
            daily_audio_seconds=None,
        )
    finally:
        db.close()
    path.write_text(secret + "\n")
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return secret


def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
    workers: Annotated[
        int | None, typer.Option(help="server processes sharing the port (needs --redis-url)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="TOML settings file")] = None,
    agent: Annotated[str | None, typer.Option(help="echo or default")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="keys and call records live here")] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="share limits and tokens between processes")
    ] = None,
    knowledge: Annotated[
        Path | None, typer.Option(help="knowledge file for the default agent's answers")
    ] = None,
    stt_model: Annotated[
        str | None, typer.Option(help="CTranslate2 Whisper model directory for speech-to-text")
    ] = None,
    stt_model_8k: Annotated[
        str | None, typer.Option(help="--stt-model for 8 kHz (telephone) sessions")
    ] = None,
    tts_voice: Annotated[Path | None, typer.Option(help="Piper voice (.onnx)")] = None,
    llm_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible chat completions server")
    ] = None,
    llm_model: Annotated[str | None, typer.Option(help="model name for --llm-url")] = None,
    llm_key: Annotated[
        str | None, typer.Option(help="API key for --llm-url (or VOXLINE_LLM_KEY)")
    ] = None,
    print_key: Annotated[
        bool, typer.Option("--print-key", help="show a quickstart test key on startup")
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Start the server (settings: flags, then VOXLINE_* variables, then --config)."""
    overrides: dict[str, Any] = {
        name: value
        for name, value in {
            "host": host,
            "port": port,
            "workers": workers,
            "agent": agent,
            "data_dir": data_dir,
            "redis_url": redis_url,
            "knowledge": knowledge,
            "stt_model": stt_model,
            "stt_model_8k": stt_model_8k,
            "tts_voice": tts_voice,
            "llm_url": llm_url,
            "llm_model": llm_model,
            "llm_key": llm_key,
            "config_file": config,
        }.items()
        if value is not None
    }
    console = Console(stderr=True)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            console.print(f"[red]settings:[/] {where + ': ' if where else ''}{error['msg']}")
        raise typer.Exit(2) from None
    base = f"http://{settings.host}:{settings.port}"
    processes = f", {settings.workers} processes" if settings.workers > 1 else ""
    console.print(f"[bold]voxline[/] ({settings.agent} agent{processes}) on {base}")
    console.print(f"  realtime socket: ws://{settings.host}:{settings.port}/v1/omni")
    if print_key:
        key = quickstart_key(settings)
        console.print(f"  test key: [bold]{key}[/]")
        if not settings.web_key:  # the quickstart serves the browser page too
            settings = settings.model_copy(update={"web_key": key})
    if settings.web_key:
        console.print(f"  browser page: [bold]{base}/[/]")
    run_server(settings, log_level=log_level)
