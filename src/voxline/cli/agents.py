"""``voxline agents``: create, list, show, update and delete stored agent profiles, in the
server's database, as the agents API does (docs/api.md, "Agents"); here, on the server's
machine, a profile may also name a knowledge file by its path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from voxline.agents import profiles
from voxline.agents.profiles import ProfileError
from voxline.auth.keys import DEFAULT_OWNER
from voxline.cli.keys import AsJson, Owner
from voxline.cli.options import DatabaseUrl, DataDir, open_database
from voxline.protocol.agent_profile import AgentProfile
from voxline.store.agents import AgentStore, TooManyAgents

app = typer.Typer(help="Create, list, show, update and delete agents.", no_args_is_help=True)

AgentId = Annotated[str, typer.Argument(help="The agent's id, agent_…")]
FromJson = Annotated[
    Path | None,
    typer.Option(
        "--from-json",
        help="A JSON file of profile fields (as the agents API takes them); options override it.",
        dir_okay=False,
    ),
]
Name = Annotated[str | None, typer.Option(help="The agent's name.")]
Persona = Annotated[str | None, typer.Option(help="Who the agent is and how it speaks.")]
Greeting = Annotated[str | None, typer.Option(help="Spoken when a call starts.")]
ConsentLine = Annotated[str | None, typer.Option(help="Spoken before the greeting.")]
Voice = Annotated[str | None, typer.Option("--voice", help="The voice id (voice_id).")]
Language = Annotated[str | None, typer.Option(help="The language, e.g. en.")]
Knowledge = Annotated[
    Path | None,
    typer.Option(
        "--knowledge",
        help="A knowledge file (docs/knowledge.md) the agent answers from, read where it is: "
        "edits apply to the next call.",
        dir_okay=False,
    ),
]
Vocabulary = Annotated[
    list[str] | None,
    typer.Option(help="A word or phrase to bias recognition toward, repeatable."),
]
KbEndpoint = Annotated[str | None, typer.Option(help="A kb_endpoint URL.")]
KbToken = Annotated[str | None, typer.Option(help="The kb_endpoint's bearer token.")]
Endpointing = Annotated[
    int | None, typer.Option("--endpointing-ms", help="Silence that ends a turn (100-5000 ms).")
]


@contextmanager
def _store(data_dir: Path | None, database_url: str | None) -> Iterator[AgentStore]:
    with open_database(data_dir, database_url) as db:
        yield AgentStore(db)


def _changes(from_json: Path | None, options: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """The profile changes of ``--from-json`` and the options given (which win)."""
    payload: dict[str, Any] = {}
    if from_json is not None:
        try:
            loaded = json.loads(from_json.read_bytes())
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--from-json") from None
        if not isinstance(loaded, dict):
            raise typer.BadParameter("must hold a JSON object", param_hint="--from-json")
        payload = loaded
    given = {key: value for key, value in options.items() if value not in (None, [])}
    if "knowledge_file" in given:
        payload.pop("knowledge", None)
    payload.update(given)
    try:
        return profiles.changes(payload, creating=creating, files=True)
    except ProfileError as exc:
        typer.echo(f"Invalid {exc.param or 'profile'}: {exc}", err=True)
        raise typer.Exit(2) from None


def _options(
    name: str | None,
    persona: str | None,
    greeting: str | None,
    consent_line: str | None,
    voice: str | None,
    language: str | None,
    knowledge: Path | None,
    vocabulary: list[str] | None,
    kb_endpoint: str | None,
    kb_token: str | None,
    endpointing_ms: int | None,
) -> dict[str, Any]:
    return {
        "name": name,
        "persona": persona,
        "greeting": greeting,
        "consent_line": consent_line,
        "voice_id": voice,
        "language": language,
        "knowledge_file": None if knowledge is None else str(knowledge),
        "vocabulary": vocabulary,
        "kb_endpoint": kb_endpoint,
        "kb_token": kb_token,
        "endpointing_ms": endpointing_ms,
    }


def _print(profile: AgentProfile, verb: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(profiles.as_json(profile)))
    else:
        typer.echo(f"{verb} {profile.id} ({profile.name}).")


@app.command()
def create(
    name: Name = None,
    persona: Persona = None,
    greeting: Greeting = None,
    consent_line: ConsentLine = None,
    voice: Voice = None,
    language: Language = None,
    knowledge: Knowledge = None,
    vocabulary: Vocabulary = None,
    kb_endpoint: KbEndpoint = None,
    kb_token: KbToken = None,
    endpointing_ms: Endpointing = None,
    from_json: FromJson = None,
    owner: Owner = DEFAULT_OWNER,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an agent (--name, or a name in --from-json, is required)."""
    options = _options(
        name, persona, greeting, consent_line, voice, language, knowledge, vocabulary,
        kb_endpoint, kb_token, endpointing_ms,
    )  # fmt: skip
    changes = _changes(from_json, options, creating=True)
    with _store(data_dir, database_url) as store:
        try:
            profile = store.create(owner, changes)
        except TooManyAgents:
            typer.echo(f"{owner} has too many agents; delete one first.", err=True)
            raise typer.Exit(1) from None
    _print(profile, "Created", as_json)


@app.command("list")
def list_agents(
    owner: Owner = DEFAULT_OWNER,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List the owner's agents."""
    with _store(data_dir, database_url) as store:
        listed = store.list(owner)
    if as_json:
        typer.echo(json.dumps([profiles.as_json(profile) for profile in listed]))
        return
    if not listed:
        typer.echo(f"No agents of {owner} yet: create one with `voxline agents create`.")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("id", no_wrap=True)
    table.add_column("name", overflow="fold")
    table.add_column("knowledge", overflow="fold")
    table.add_column("created", no_wrap=True)
    for profile in listed:
        knowledge = profile.knowledge_file or ("inline" if profile.knowledge else "")
        created = datetime.fromtimestamp(profile.created_at, UTC).date().isoformat()
        table.add_row(profile.id, Text(profile.name), Text(knowledge), created)
    Console().print(table)


@app.command()
def show(
    agent_id: AgentId,
    owner: Owner = DEFAULT_OWNER,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Print an agent's profile as JSON (its kb_token hidden)."""
    with _store(data_dir, database_url) as store:
        profile = store.get(owner, agent_id)
    if profile is None:
        typer.echo(f"No agent {agent_id} of {owner}.", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(profiles.as_json(profile), indent=2, ensure_ascii=False))


@app.command()
def update(
    agent_id: AgentId,
    name: Name = None,
    persona: Persona = None,
    greeting: Greeting = None,
    consent_line: ConsentLine = None,
    voice: Voice = None,
    language: Language = None,
    knowledge: Knowledge = None,
    vocabulary: Vocabulary = None,
    kb_endpoint: KbEndpoint = None,
    kb_token: KbToken = None,
    endpointing_ms: Endpointing = None,
    from_json: FromJson = None,
    owner: Owner = DEFAULT_OWNER,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Change the fields given, keeping the others (null in --from-json unsets one)."""
    options = _options(
        name, persona, greeting, consent_line, voice, language, knowledge, vocabulary,
        kb_endpoint, kb_token, endpointing_ms,
    )  # fmt: skip
    changes = _changes(from_json, options, creating=False)
    with _store(data_dir, database_url) as store:
        profile = store.update(owner, agent_id, changes)
    if profile is None:
        typer.echo(f"No agent {agent_id} of {owner}.", err=True)
        raise typer.Exit(1)
    _print(profile, "Updated", as_json)


@app.command()
def delete(
    agent_id: AgentId,
    owner: Owner = DEFAULT_OWNER,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete an agent: sessions can no longer start from it."""
    with _store(data_dir, database_url) as store:
        deleted = store.delete(owner, agent_id)
    if not deleted:
        typer.echo(f"No agent {agent_id} of {owner}.", err=True)
        raise typer.Exit(1)
    typer.echo(f"Deleted {agent_id}.")
