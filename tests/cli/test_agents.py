"""``voxline agents``: stored agent profiles through the command line, in the database a
server uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tests.support.examples import ACME_DENTAL, ACME_DENTAL_MD
from voxline.cli import app
from voxline.store.agents import AgentStore
from voxline.store.database import Database

runner = CliRunner()


def invoke(data_dir: Path, *args: str) -> Any:
    return runner.invoke(app, ["agents", *args, "--data-dir", str(data_dir)])


def created(data_dir: Path, *args: str) -> dict[str, Any]:
    result = invoke(data_dir, "create", "--json", *args)
    assert result.exit_code == 0, result.output
    agent: dict[str, Any] = json.loads(result.stdout)
    return agent


def test_create_show_update_delete(tmp_path: Path) -> None:
    agent = created(
        tmp_path,
        "--name", "Front desk", "--persona", "You are Maya.", "--greeting", "Hello.",
        "--voice", "joe", "--knowledge", str(ACME_DENTAL),
        "--vocabulary", "Nguyen", "--vocabulary", "Acme Dental", "--kb-token", "s3cret",
    )  # fmt: skip
    agent_id = agent["agent_id"]
    assert (agent["persona"], agent["greeting"], agent["voice_id"]) == (
        "You are Maya.",
        "Hello.",
        "joe",
    )
    assert agent["knowledge_file"] == str(ACME_DENTAL.resolve())
    assert agent["vocabulary"] == ["Nguyen", "Acme Dental"]
    with Database(tmp_path / "voxline.db") as db:  # where the server finds it
        stored = AgentStore(db).get("default", agent_id)
    assert stored is not None and stored.settings["kb_token"] == "s3cret"

    shown = invoke(tmp_path, "show", agent_id)
    assert shown.exit_code == 0 and "s3cret" not in shown.stdout
    assert json.loads(shown.stdout)["kb_token_set"] is True

    updated = invoke(tmp_path, "update", agent_id, "--greeting", "Hi again.", "--json")
    assert updated.exit_code == 0, updated.output
    after = json.loads(updated.stdout)
    assert after["greeting"] == "Hi again." and after["persona"] == "You are Maya."

    table = invoke(tmp_path, "list")
    assert agent_id in table.stdout and "Front desk" in table.stdout
    assert invoke(tmp_path, "delete", agent_id).exit_code == 0
    assert json.loads(invoke(tmp_path, "list", "--json").stdout) == []
    gone = invoke(tmp_path, "show", agent_id)
    assert gone.exit_code == 1 and f"No agent {agent_id}" in gone.output


def test_from_json_with_options_over_it_and_null_unsets(tmp_path: Path) -> None:
    profile = tmp_path / "agent.json"
    knowledge = {"entries": [{"question": "Parking?", "answer": "Behind us."}]}
    profile.write_text(
        json.dumps({"name": "Desk", "greeting": "From the file.", "knowledge": knowledge})
    )
    agent = created(tmp_path, "--from-json", str(profile), "--greeting", "From the option.")
    assert agent["greeting"] == "From the option." and agent["knowledge"] == knowledge
    unset = tmp_path / "unset.json"
    unset.write_text(json.dumps({"greeting": None, "knowledge": None}))
    result = invoke(tmp_path, "update", agent["agent_id"], "--from-json", str(unset), "--json")
    assert result.exit_code == 0, result.output
    after = json.loads(result.stdout)
    assert after["greeting"] is None and after["knowledge"] is None and after["name"] == "Desk"


def test_bad_profiles_are_refused_with_configures_messages(tmp_path: Path) -> None:
    nameless = invoke(tmp_path, "create", "--greeting", "Hi.")
    assert nameless.exit_code == 2 and "name is required" in nameless.output
    slow = invoke(tmp_path, "create", "--name", "x", "--endpointing-ms", "20")
    assert slow.exit_code == 2
    assert "endpointing_ms must be an integer from 100 to 5000" in slow.output
    broken = tmp_path / "kb.json"
    broken.write_text('{"entries": [{"question": "q"}]}')
    bad_file = invoke(tmp_path, "create", "--name", "x", "--knowledge", str(broken))
    assert bad_file.exit_code == 2 and "answer" in bad_file.output
    assert json.loads(invoke(tmp_path, "list", "--json").stdout) == []


def test_agents_belong_to_an_owner(tmp_path: Path) -> None:
    agent = created(tmp_path, "--name", "Theirs", "--owner", "globex")
    assert json.loads(invoke(tmp_path, "list", "--json").stdout) == []
    assert invoke(tmp_path, "show", agent["agent_id"]).exit_code == 1
    theirs = invoke(tmp_path, "list", "--json", "--owner", "globex")
    assert [a["agent_id"] for a in json.loads(theirs.stdout)] == [agent["agent_id"]]
    bad_owner = invoke(tmp_path, "list", "--owner", "no spaces")
    assert bad_owner.exit_code == 2


def test_keys_are_created_for_an_owner(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["keys", "create", "--json", "--owner", "globex", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["owner"] == "globex"
    listed = runner.invoke(app, ["keys", "list", "--data-dir", str(tmp_path)])
    assert "globex" in listed.stdout


def test_an_agents_knowledge_file_may_be_markdown(tmp_path: Path) -> None:
    agent = created(tmp_path, "--name", "Desk", "--knowledge", str(ACME_DENTAL_MD))
    assert agent["knowledge_file"] == str(ACME_DENTAL_MD.resolve())
    typo = tmp_path / "kb.md"
    typo.write_text("---\ngreting: Hi\n---\n# Acme\n\nWe fix teeth.\n")
    bad = invoke(tmp_path, "create", "--name", "x", "--knowledge", str(typo))
    assert bad.exit_code == 2 and "did you mean `greeting`?" in bad.output
    unknown = tmp_path / "kb.docx"
    unknown.write_text("x")
    bad = invoke(tmp_path, "create", "--name", "x", "--knowledge", str(unknown))
    assert bad.exit_code == 2 and "a knowledge file is .json, .md, .markdown or .txt" in bad.output
