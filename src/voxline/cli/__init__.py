"""The ``voxline`` command."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from voxline.cli import agents, bench, eval, keys, knowledge, serve, talk
from voxline.cli.errors import DEBUG_FLAG, ReportingGroup, debug_first

app = typer.Typer(
    name="voxline",
    help="A self-hosted realtime voice-agent server.",
    no_args_is_help=True,
    add_completion=False,
    cls=ReportingGroup,
)
app.command("serve")(serve.serve)
app.command("talk")(talk.talk)
app.command("bench")(bench.bench)
app.add_typer(keys.app, name="keys", help="Create, list and revoke API keys.")
app.add_typer(agents.app, name="agents", help="Create, list, show, update and delete agents.")
app.add_typer(knowledge.app, name="knowledge", help="Check a knowledge file.")
app.add_typer(eval.app, name="eval", help="Measure the engines: speech recognition (stt).")


@app.callback()
def root(
    debug: Annotated[
        bool,
        typer.Option(DEBUG_FLAG, help="show the traceback of an error (anywhere on the line)"),
    ] = False,
) -> None:
    """A self-hosted realtime voice-agent server."""


def main() -> None:
    app(args=debug_first(sys.argv[1:]), prog_name="voxline")
