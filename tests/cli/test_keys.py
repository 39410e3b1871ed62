"""``voxline keys``: create, list and revoke through the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from voxline.auth.keys import KeyStore
from voxline.cli import app as voxline
from voxline.cli.keys import app
from voxline.store.database import Database

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), env=env)


def create_json(data_dir: Path, *args: str) -> dict[str, Any]:
    result = invoke("create", "--json", "--data-dir", str(data_dir), *args)
    assert result.exit_code == 0, result.output
    created: dict[str, Any] = json.loads(result.stdout)
    return created


def test_create_prints_a_working_secret_once(tmp_path: Path) -> None:
    created = create_json(tmp_path, "--label", "ci", "--concurrency", "3")
    assert created["secret"].startswith("vx_test_")
    assert created["scopes"] == ["omni:session"]
    assert (created["env"], created["label"], created["concurrency"]) == ("test", "ci", 3)
    assert created["daily_audio_seconds"] is None
    with Database(tmp_path / "voxline.db") as db:
        key = KeyStore(db).authenticate(created["secret"])
    assert key is not None
    assert key.id == created["id"]


def test_create_with_rich_output(tmp_path: Path) -> None:
    result = invoke(
        "create", "--env", "live", "--scope", "omni:*", "--scope", "omni:session",
        "--daily-audio-seconds", "120", "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    secret = next(line for line in result.stdout.splitlines() if line.startswith("vx_live_"))
    assert len(secret) == len("vx_live_") + 43
    assert "shown only now" in result.stdout
    with Database(tmp_path / "voxline.db") as db:
        key = KeyStore(db).authenticate(secret)
    assert key is not None
    assert key.scopes == frozenset({"omni:*", "omni:session"})
    assert key.daily_audio_seconds == 120


def test_list_never_shows_secrets(tmp_path: Path) -> None:
    first = create_json(tmp_path, "--label", "first [/bold]")
    second = create_json(tmp_path, "--env", "live")
    listed = json.loads(invoke("list", "--json", "--data-dir", str(tmp_path)).stdout)
    assert [key["id"] for key in listed] == [first["id"], second["id"]]
    assert all("secret" not in key for key in listed)
    assert listed[0]["prefix"] == first["secret"][:12]
    table = invoke("list", "--data-dir", str(tmp_path))
    assert table.exit_code == 0
    assert first["id"] in table.stdout
    assert "first [/bold]" in table.stdout
    for created in (first, second):
        assert created["secret"] not in table.stdout
        assert created["secret"][12:20] not in table.stdout


def test_revoke(tmp_path: Path) -> None:
    created = create_json(tmp_path)
    result = invoke("revoke", created["id"], "--data-dir", str(tmp_path))
    assert result.exit_code == 0
    assert "Revoked" in result.stdout
    listed = json.loads(invoke("list", "--json", "--data-dir", str(tmp_path)).stdout)
    assert listed[0]["revoked_at"] is not None
    again = invoke("revoke", created["id"], "--data-dir", str(tmp_path))
    assert again.exit_code == 0
    assert "already revoked" in again.stdout
    missing = invoke("revoke", "key_nothere", "--data-dir", str(tmp_path))
    assert missing.exit_code == 1
    assert "No key key_nothere" in missing.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--scope", "omni:admin"],
        ["--scope", "omni:session", "--scope", "billing"],
        ["--env", "prod"],
        ["--concurrency", "0"],
        ["--daily-audio-seconds", "0"],
    ],
)
def test_create_rejects_bad_options(tmp_path: Path, args: list[str]) -> None:
    result = invoke("create", "--data-dir", str(tmp_path), *args)
    assert result.exit_code == 2
    assert not (tmp_path / "voxline.db").exists() or not json.loads(
        invoke("list", "--json", "--data-dir", str(tmp_path)).stdout
    )


def test_unknown_scope_names_the_known_ones(tmp_path: Path) -> None:
    result = invoke("create", "--scope", "omni:admin", "--data-dir", str(tmp_path))
    assert "omni:admin" in result.stderr
    assert "omni:session" in result.stderr


def test_list_without_keys(tmp_path: Path) -> None:
    result = invoke("list", "--data-dir", str(tmp_path))
    assert result.exit_code == 0
    assert "No keys yet" in result.stdout


def test_data_dir_defaults_to_the_settings(tmp_path: Path) -> None:
    env = {"VOXLINE_DATA_DIR": str(tmp_path / "from-env")}
    created = json.loads(invoke("create", "--json", env=env).stdout)
    assert (tmp_path / "from-env" / "voxline.db").exists()
    listed = json.loads(invoke("list", "--json", env=env).stdout)
    assert [key["id"] for key in listed] == [created["id"]]


def test_database_url_wins_over_the_data_dir(tmp_path: Path) -> None:
    shared = tmp_path / "shared.db"
    url = f"sqlite:///{shared}"
    created = create_json(tmp_path / "node", "--database-url", url)
    assert not (tmp_path / "node" / "voxline.db").exists()
    env = {"VOXLINE_DATABASE_URL": url}
    listed = json.loads(invoke("list", "--json", env=env).stdout)
    assert [key["id"] for key in listed] == [created["id"]]


def test_a_database_url_of_another_engine_or_out_of_reach_is_named(tmp_path: Path) -> None:
    args = ["keys", "list", "--data-dir", str(tmp_path), "--database-url"]
    refused = runner.invoke(voxline, [*args, "mysql://db/voxline"])
    assert refused.exit_code == 2
    assert "setting database_url" in refused.stderr
    assert "postgresql://" in refused.stderr
    # Nothing listens on port 1.
    unreachable = runner.invoke(voxline, [*args, "postgresql://voxline@127.0.0.1:1/voxline"])
    assert unreachable.exit_code == 1
    assert "the database: connection failed" in unreachable.stderr
    assert "--database-url" in unreachable.stderr
