"""Settings: the engine sections, their variables, the TOML file, and which source wins."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from tests.support.examples import CONFIG, REPOSITORY
from voxline.config import ConfigFileError, LlmSettings, Settings, SttSettings, TtsSettings


@pytest.fixture(autouse=True)
def no_voxline_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.upper().startswith("VOXLINE_"):
            monkeypatch.delenv(name)


def setting(settings: Settings, path: str) -> Any:
    value: Any = settings
    for name in path.split("."):
        value = getattr(value, name)
    return value


def toml_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "voxline.toml"
    path.write_text(text)
    return path


# The variables of the engine settings, named as when the settings were flat (stt_model, ...).
ENGINE_VARIABLES = {
    "VOXLINE_STT_MODEL": ("stt.model", "base.en", "base.en"),
    "VOXLINE_STT_MODEL_8K": ("stt.model_8k", "tiny.en", "tiny.en"),
    "VOXLINE_STT_WORKERS": ("stt.workers", "3", 3),
    "VOXLINE_STT_THREADS": ("stt.threads", "2", 2),
    "VOXLINE_STT_BEAM": ("stt.beam", "1", 1),
    "VOXLINE_STT_URL": ("stt.url", "https://stt.example/v1", "https://stt.example/v1"),
    "VOXLINE_STT_KEY": ("stt.key", "stt-secret", "stt-secret"),
    "VOXLINE_TTS_VOICE": ("tts.voice", "voices/amy.onnx", Path("voices/amy.onnx")),
    "VOXLINE_TTS_VOICES_DIR": ("tts.voices_dir", "voices", Path("voices")),
    "VOXLINE_TTS_MAX_LOADED_VOICES": ("tts.max_loaded_voices", "2", 2),
    "VOXLINE_TTS_URL": ("tts.url", "https://tts.example/v1", "https://tts.example/v1"),
    "VOXLINE_TTS_KEY": ("tts.key", "tts-secret", "tts-secret"),
    "VOXLINE_TTS_REMOTE_VOICE": ("tts.remote_voice", "nova", "nova"),
    "VOXLINE_LLM_URL": ("llm.url", "http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1"),
    "VOXLINE_LLM_MODEL": ("llm.model", "llama3.2", "llama3.2"),
    "VOXLINE_LLM_KEY": ("llm.key", "llm-secret", "llm-secret"),
}


def test_every_engine_setting_has_a_variable() -> None:
    sections: dict[str, type[BaseSettings]] = {
        "stt": SttSettings,
        "tts": TtsSettings,
        "llm": LlmSettings,
    }
    paths = {
        f"{name}.{field}" for name, section in sections.items() for field in section.model_fields
    }
    assert paths == {path for path, _, _ in ENGINE_VARIABLES.values()}


@pytest.mark.parametrize("variable", ENGINE_VARIABLES)
def test_engine_variables_keep_their_names(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    path, text, value = ENGINE_VARIABLES[variable]
    assert setting(Settings(), path) != value
    monkeypatch.setenv(variable, text)
    assert setting(Settings(), path) == value


def test_engine_settings_come_from_toml_tables(tmp_path: Path) -> None:
    config = toml_file(
        tmp_path,
        """
        [stt]
        model = "base.en"
        model_8k = "tiny.en"
        beam = 2
        url = "https://stt.example/v1"

        [tts]
        voice = "voices/amy.onnx"
        remote_voice = "nova"

        [llm]
        url = "http://127.0.0.1:11434/v1"
        model = "llama3.2"
        key = "llm-secret"
        """,
    )
    settings = Settings(config_file=config)
    assert (settings.stt.model, settings.stt.model_8k, settings.stt.beam) == (
        "base.en",
        "tiny.en",
        2,
    )
    assert settings.stt.url == "https://stt.example/v1"
    assert settings.stt.threads == 1  # the rest keep their defaults
    assert (settings.tts.voice, settings.tts.remote_voice) == (Path("voices/amy.onnx"), "nova")
    assert settings.llm.model_dump() == {
        "url": "http://127.0.0.1:11434/v1",
        "model": "llama3.2",
        "key": "llm-secret",
    }


# A top-level setting, an engine setting, and another section's setting: each with its TOML
# line, its variable, and values for the file, the variable and the argument (the flag).
PRECEDENCE_CASES = [
    ("port", "port = {}", "VOXLINE_PORT", 8000, 9001, 9002, 9003),
    ("stt.beam", "[stt]\nbeam = {}", "VOXLINE_STT_BEAM", 5, 1, 3, 7),
    ("llm.model", '[llm]\nmodel = "{}"', "VOXLINE_LLM_MODEL", "gpt-4o-mini", "a", "b", "c"),
    (
        "limits.default_concurrency",
        "[limits]\ndefault_concurrency = {}",
        "VOXLINE_LIMITS_DEFAULT_CONCURRENCY",
        20,
        3,
        5,
        7,
    ),
]


@pytest.mark.parametrize(
    ("path", "line", "variable", "default", "in_file", "in_variable", "in_argument"),
    PRECEDENCE_CASES,
    ids=[case[0] for case in PRECEDENCE_CASES],
)
def test_arguments_beat_variables_beat_the_file_beats_defaults(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    path: str,
    line: str,
    variable: str,
    default: object,
    in_file: object,
    in_variable: object,
    in_argument: object,
) -> None:
    section, _, name = path.rpartition(".")
    argument: dict[str, Any] = {section: {name: in_argument}} if section else {name: in_argument}
    config = toml_file(tmp_path, line.format(in_file))

    assert setting(Settings(), path) == default
    assert setting(Settings(config_file=config), path) == in_file
    monkeypatch.setenv(variable, str(in_variable))
    assert setting(Settings(config_file=config), path) == in_variable
    assert setting(Settings(config_file=config, **argument), path) == in_argument


def test_a_section_merges_what_each_source_sets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = toml_file(tmp_path, '[stt]\nmodel = "base.en"\nthreads = 2\nbeam = 3')
    monkeypatch.setenv("VOXLINE_STT_BEAM", "5")
    monkeypatch.setenv("VOXLINE_STT_THREADS", "4")
    settings = Settings(config_file=config, stt={"threads": 8})
    assert settings.stt.model_dump() == {
        "model": "base.en",  # the file
        "model_8k": None,  # the default
        "workers": None,
        "threads": 8,  # the argument, over the variable and the file
        "beam": 5,  # the variable, over the file
        "url": None,
        "key": None,
    }


def test_a_variable_named_after_a_whole_section_is_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOXLINE_STT", "whisper")
    monkeypatch.setenv("VOXLINE_LLM", '{"model": "llama3.2"}')
    monkeypatch.setenv("VOXLINE_LIMITS", "none")
    settings = Settings()
    assert settings.stt == SttSettings()
    assert settings.llm.model == "gpt-4o-mini"


def error_locations(excinfo: pytest.ExceptionInfo[ValidationError]) -> list[tuple[Any, ...]]:
    return [(error["loc"], error["type"]) for error in excinfo.value.errors()]


def test_errors_name_the_section_and_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VOXLINE_STT_BEAM", "0")
    with pytest.raises(ValidationError) as excinfo:
        Settings()
    assert error_locations(excinfo) == [(("stt", "beam"), "greater_than_equal")]

    monkeypatch.delenv("VOXLINE_STT_BEAM")
    with pytest.raises(ValidationError) as excinfo:
        Settings(config_file=toml_file(tmp_path, '[tts]\nvoise = "amy.onnx"'))
    assert error_locations(excinfo) == [(("tts", "voise"), "extra_forbidden")]


def test_the_flat_names_are_gone_from_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as excinfo:
        Settings(config_file=toml_file(tmp_path, 'stt_model = "base.en"'))
    assert error_locations(excinfo) == [(("stt_model",), "extra_forbidden")]


def test_settings_survive_the_handover_to_worker_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(stt={"beam": 3}, llm={"url": "http://127.0.0.1:11434/v1"})
    monkeypatch.setenv("VOXLINE_STT_BEAM", "5")  # a worker's own variables do not win
    assert Settings.model_validate(settings.model_dump(mode="json")) == settings


def test_the_config_file_can_come_from_its_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VOXLINE_CONFIG_FILE", str(toml_file(tmp_path, "port = 9100")))
    assert Settings().port == 9100
    other = tmp_path / "other.toml"
    other.write_text("port = 9200")
    assert Settings(config_file=other).port == 9200  # the flag wins


@pytest.mark.parametrize(
    ("text", "message"),
    [(None, "No such file or directory"), ("port = = 1", "not TOML"), (b"\xff", "not TOML")],
)
def test_a_config_file_that_cannot_be_read_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str | bytes | None, message: str
) -> None:
    path = tmp_path / "voxline.toml"
    if isinstance(text, str):
        path.write_text(text)
    elif text is not None:
        path.write_bytes(text)
    with pytest.raises(ConfigFileError, match=message):
        Settings(config_file=path)
    monkeypatch.setenv("VOXLINE_CONFIG_FILE", str(path))
    with pytest.raises(ConfigFileError, match=message):
        Settings()


def test_the_example_config_file_is_valid_and_sets_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPOSITORY)
    settings = Settings(config_file=CONFIG)
    assert settings.knowledge == Path("examples/knowledge/acme-dental.json")
    assert settings.knowledge.is_file()
    # Every other value it sets is the default, so the comments tell the truth.
    assert settings.model_dump(exclude={"knowledge"}) == Settings().model_dump(
        exclude={"knowledge"}
    )
