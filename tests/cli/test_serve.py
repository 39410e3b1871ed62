"""``voxline serve``: its flags, each the setting of a table row, parsed without a server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.support.examples import CONFIG
from voxline.auth.keys import KeyStore
from voxline.cli import app
from voxline.cli import serve as serve_module
from voxline.config import Settings
from voxline.store.database import Database

runner = CliRunner()
REDIS_URL = "redis://127.0.0.1:6390/0"  # lets --workers go above 1; nothing connects to it


class Served:
    """What ``voxline serve`` would have run the server with."""

    def __init__(self) -> None:
        self.runs: list[tuple[Settings, str]] = []

    def __call__(
        self,
        settings: Settings,
        *,
        log_level: str = "info",
        on_started: Callable[[], None] = lambda: None,
    ) -> None:
        self.runs.append((settings, log_level))
        on_started()

    def invoke(self, *args: str) -> Settings:
        result = runner.invoke(app, ["serve", *args])
        assert result.exit_code == 0, result.output
        settings, _ = self.runs[-1]
        return settings


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Served:
    for name in os.environ:
        if name.upper().startswith("VOXLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VOXLINE_REDIS_URL", REDIS_URL)
    served = Served()
    monkeypatch.setattr(serve_module, "run_server", served)
    return served


def setting(settings: Settings, path: str) -> Any:
    value: Any = settings
    for name in path.split("."):
        value = getattr(value, name)
    return value


def arguments(path: str, value: Any) -> dict[str, Any]:
    section, _, name = path.rpartition(".")
    return {section: {name: value}} if section else {name: value}


# Every flag: the setting it sets, an argument, and the value the setting gets from it.
FLAGS = {
    "--host": ("host", "0.0.0.0", "0.0.0.0"),
    "--port": ("port", "9001", 9001),
    "--workers": ("workers", "3", 3),
    "--config": ("config_file", str(CONFIG), CONFIG),
    "--agent": ("agent", "echo", "echo"),
    "--data-dir": ("data_dir", "voxline-data", Path("voxline-data")),
    "--database-url": (
        "database_url",
        "postgresql://voxline@db.internal/voxline",
        "postgresql://voxline@db.internal/voxline",
    ),
    "--node": ("node", "node-a", "node-a"),
    "--redis-url": ("redis_url", "redis://127.0.0.1:6391/2", "redis://127.0.0.1:6391/2"),
    "--public-url": ("public_url", "https://voice.example.com", "https://voice.example.com"),
    "--trusted-proxy": ("trusted_proxies", "10.0.0.2", ["10.0.0.2"]),
    "--knowledge": ("knowledge", "clinic.md", Path("clinic.md")),
    "--stt-model": ("stt.model", "base.en", "base.en"),
    "--stt-model-8k": ("stt.model_8k", "tiny.en", "tiny.en"),
    "--tts-voice": ("tts.voice", "amy.onnx", Path("amy.onnx")),
    "--tts-voices-dir": ("tts.voices_dir", "voices", Path("voices")),
    "--llm-url": ("llm.url", "http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1"),
    "--llm-model": ("llm.model", "llama3.2", "llama3.2"),
    "--llm-key": ("llm.key", "sk-test", "sk-test"),
}


def test_the_table_holds_the_flags_tested_here() -> None:
    assert serve_module.SERVE_FLAGS.paths == {flag: path for flag, (path, _, _) in FLAGS.items()}


@pytest.mark.parametrize("flag", FLAGS)
def test_a_flag_sets_its_setting_and_no_other(served: Served, flag: str) -> None:
    path, argument, value = FLAGS[flag]
    settings = served.invoke(flag, argument)
    assert setting(settings, path) == value
    assert settings == Settings(**arguments(path, value))


def test_a_list_flag_is_given_once_per_item(served: Served) -> None:
    settings = served.invoke("--trusted-proxy", "10.0.0.2", "--trusted-proxy", "10.1.0.0/16")
    assert settings.trusted_proxies == ["10.0.0.2", "10.1.0.0/16"]
    assert served.invoke().trusted_proxies == []


def test_without_flags_the_variables_and_the_file_decide(
    served: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "voxline.toml"
    config.write_text('[stt]\nmodel = "from-file"\nbeam = 3\n[llm]\nmodel = "from-file"')
    monkeypatch.setenv("VOXLINE_STT_MODEL", "from-variable")
    settings = served.invoke("--config", str(config))
    assert (settings.stt.model, settings.stt.beam) == ("from-variable", 3)
    assert settings.llm.model == "from-file"
    settings = served.invoke("--config", str(config), "--stt-model", "from-flag")
    assert (settings.stt.model, settings.stt.beam) == ("from-flag", 3)


def test_the_command_options_run_the_server(served: Served, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["serve", "--data-dir", str(tmp_path), "--print-key", "--log-level", "debug"]
    )
    assert result.exit_code == 0, result.output
    [(settings, log_level)] = served.runs
    assert log_level == "debug"
    assert settings.web_key is not None
    assert settings.web_key in result.output


def test_help_lists_every_flag_with_its_setting_description(served: Served) -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())  # unwrap rich's columns
    for flag, (path, _, _) in FLAGS.items():
        section, _, name = path.rpartition(".")
        model = type(setting(Settings(), section)) if section else Settings
        description = model.model_fields[name].description
        assert description, flag
        assert f"{flag} " in text
        assert description in text, flag
    assert "--print-key" in text
    assert "--log-level" in text


def test_invalid_settings_print_where_they_are(served: Served, tmp_path: Path) -> None:
    config = tmp_path / "voxline.toml"
    config.write_text("[stt]\nbeam = 0")
    result = runner.invoke(app, ["serve", "--config", str(config), "--port", "70000"])
    assert result.exit_code == 2
    assert "setting stt.beam: Input should be greater than or equal to 1" in result.output
    assert "setting port: Input should be less than or equal to 65535" in result.output
    assert served.runs == []


def test_the_banner_says_where_the_server_is_once_it_has_started(served: Served) -> None:
    result = runner.invoke(app, ["serve", "--port", "9005"])
    assert result.exit_code == 0, result.output
    assert "(default agent) is up on http://127.0.0.1:9005" in result.output
    assert "realtime socket: ws://127.0.0.1:9005/v1/omni" in result.output


def test_an_unknown_agent_is_refused(served: Served) -> None:
    result = runner.invoke(app, ["serve", "--agent", "parrot"])
    assert result.exit_code == 2
    assert "parrot" in result.output
    assert served.runs == []


def test_the_quickstart_key_reaches_every_route_a_newcomer_tries_and_is_kept(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path)
    secret = serve_module.quickstart_key(settings)
    assert serve_module.quickstart_key(settings) == secret  # shown again, not replaced
    with Database(settings.database) as db:
        key = KeyStore(db).authenticate(secret)
    assert key is not None and key.env == "test"
    assert key.scopes == serve_module.QUICKSTART_SCOPES
    assert oct((tmp_path / "quickstart-key").stat().st_mode & 0o777) == "0o600"


def test_a_quickstart_key_of_fewer_scopes_is_replaced(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with Database(settings.database) as db:
        _, old_secret = KeyStore(db).create(env="test", scopes=["omni:session"])
    (tmp_path / "quickstart-key").write_text(old_secret + "\n")
    secret = serve_module.quickstart_key(settings)
    assert secret != old_secret
    with Database(settings.database) as db:
        assert KeyStore(db).authenticate(old_secret) is None  # revoked, not left about
        assert KeyStore(db).authenticate(secret) is not None
