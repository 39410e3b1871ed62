"""The ``voxline`` command."""

from __future__ import annotations

import typer

from voxline.cli import agents, bench, eval, keys, serve, talk

app = typer.Typer(
    name="voxline",
    help="A self-hosted realtime voice-agent server.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("serve")(serve.serve)
app.command("talk")(talk.talk)
app.command("bench")(bench.bench)
app.add_typer(keys.app, name="keys", help="Create, list and revoke API keys.")
app.add_typer(agents.app, name="agents", help="Create, list, show, update and delete agents.")
app.add_typer(eval.app, name="eval", help="Measure the engines: speech recognition (stt).")


def main() -> None:
    app()
