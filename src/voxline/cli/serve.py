"""``voxline serve``: run the server."""

from __future__ import annotations

import stat
from typing import Annotated, Any, Final

import typer
from rich.console import Console

from voxline.auth.keys import (
    SCOPE_AGENTS_WRITE,
    SCOPE_CALLS_READ,
    SCOPE_SESSION,
    SCOPE_SPEECH,
    SCOPE_TRANSCRIPTION,
    KeyStore,
)
from voxline.cli.setting_flags import SettingFlags
from voxline.config import Settings
from voxline.server.workers import run_server
from voxline.store.database import Database

QUICKSTART_SCOPES: Final = frozenset(
    {SCOPE_SESSION, SCOPE_CALLS_READ, SCOPE_AGENTS_WRITE, SCOPE_SPEECH, SCOPE_TRANSCRIPTION}
)
"""Everything a newcomer tries in the first hour: calls and their records, agents, speech,
transcription."""


def quickstart_key(settings: Settings) -> str:
    """A test key for trying the server out, created once and kept in the data directory
    (mode 0600) so that it can be shown again; the database only ever holds its hash."""
    path = settings.data_dir / "quickstart-key"
    db = Database(settings.database)
    try:
        keys = KeyStore(db)
        if path.exists():
            secret = path.read_text().strip()
            key = keys.authenticate(secret)
            if key is not None and key.scopes >= QUICKSTART_SCOPES:
                return secret
            if key is not None:  # from a version whose routes it does not reach: replace it
                keys.revoke(key.id)
        _, secret = keys.create(
            env="test",
            scopes=QUICKSTART_SCOPES,
            label="quickstart",
            concurrency=None,
            daily_audio_seconds=None,
        )
    finally:
        db.close()
    path.write_text(secret + "\n")
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return secret


SERVE_FLAGS: Final = SettingFlags(
    {
        "--host": "host",
        "--port": "port",
        "--workers": "workers",
        "--config": "config_file",
        "--agent": "agent",
        "--data-dir": "data_dir",
        "--database-url": "database_url",
        "--node": "node",
        "--redis-url": "redis_url",
        "--public-url": "public_url",
        "--trusted-proxy": "trusted_proxies",  # given once per proxy
        "--knowledge": "knowledge",
        "--stt-model": "stt.model",
        "--stt-model-8k": "stt.model_8k",
        "--tts-voice": "tts.voice",
        "--tts-voices-dir": "tts.voices_dir",
        "--llm-url": "llm.url",
        "--llm-model": "llm.model",
        "--llm-key": "llm.key",
    }
)


@SERVE_FLAGS.add_options
def serve(
    print_key: Annotated[
        bool, typer.Option("--print-key", help="show a quickstart test key on startup")
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    **flags: Any,
) -> None:
    """Start the server. Settings come from flags, then VOXLINE_* variables (--stt-model:
    VOXLINE_STT_MODEL), then the --config TOML file (--stt-model: model in its stt table),
    then defaults."""
    settings = Settings(**SERVE_FLAGS.overrides(flags))  # a mistake: see cli/errors.py
    banner = [f"[bold]voxline[/] ({settings.agent} agent) is up on {_base_url(settings)}"]
    if settings.workers > 1:
        banner[0] += f", {settings.workers} processes"
    banner.append(f"  realtime socket: {_base_url(settings, 'ws')}/v1/omni")
    if print_key:
        key = quickstart_key(settings)
        banner.append(f"  test key: [bold]{key}[/]")
        if not settings.web_key:  # the quickstart serves the browser page too
            settings = settings.model_copy(update={"web_key": key})
    if settings.web_key:
        banner.append(f"  browser page: [bold]{_base_url(settings)}/[/]")
    console = Console(stderr=True)
    run_server(settings, log_level=log_level, on_started=lambda: console.print("\n".join(banner)))


def _base_url(settings: Settings, scheme: str = "http") -> str:
    return f"{scheme}://{settings.host}:{settings.port}"
