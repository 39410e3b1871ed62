"""Server settings: defaults, then a TOML config file, then ``VOXLINE_*`` variables, then flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("voxline", appauthor=False))


class LimitSettings(BaseSettings):
    """Per-key and per-address limits. Values of ``None`` disable a limit."""

    model_config = SettingsConfigDict(env_prefix="VOXLINE_LIMITS_", extra="forbid")

    default_concurrency: int = Field(20, ge=1, description="concurrent sessions per key")
    test_daily_audio_seconds: float = Field(
        3600.0, gt=0, description="daily caller+agent audio cap for test keys"
    )
    connects_per_minute_per_key: int = Field(120, ge=1)
    connects_per_minute_per_address: int = Field(600, ge=1)
    auth_failures_per_minute_per_address: int = Field(20, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOXLINE_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    agent: Literal["echo", "default"] = "default"
    # The default agent's engines: embedded models unless pointed elsewhere.
    stt_model: str | None = Field(
        None, description="CTranslate2 Whisper model directory, or the remote model name"
    )
    stt_url: str | None = Field(None, description="OpenAI-compatible transcription server")
    stt_key: str | None = None
    tts_voice: Path | None = Field(None, description="Piper voice (.onnx, with .onnx.json)")
    tts_url: str | None = Field(None, description="OpenAI-compatible speech server")
    tts_key: str | None = None
    tts_remote_voice: str = "alloy"
    knowledge: Path | None = Field(None, description="knowledge file for the default brain")
    llm_url: str | None = Field(None, description="OpenAI-compatible chat completions server")
    llm_model: str = "gpt-4o-mini"
    llm_key: str | None = None
    redis_url: str | None = None
    public_url: str | None = Field(
        None, description="external base URL (https://host) when behind a proxy"
    )
    max_session_seconds: float = Field(3600.0, gt=0)
    limits: LimitSettings = Field(default_factory=LimitSettings)

    config_file: Path | None = Field(None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = init_settings().get("config_file")
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "voxline.db"
