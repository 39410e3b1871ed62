"""Server settings: defaults, then a TOML config file, then ``VOXLINE_*`` variables, then flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, model_validator
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
    max_sessions: int | None = Field(
        None, ge=1, description="sessions this server process holds at once, whatever the key"
    )
    test_daily_audio_seconds: float = Field(
        3600.0, gt=0, description="daily caller+agent audio cap for test keys"
    )
    connects_per_minute_per_key: int = Field(120, ge=1)
    connects_per_minute_per_address: int = Field(600, ge=1)
    auth_failures_per_minute_per_address: int = Field(20, ge=1)


class TwilioSettings(BaseSettings):
    """Phone calls through Twilio Media Streams (``/twilio/voice``, ``/twilio/media``)."""

    model_config = SettingsConfigDict(env_prefix="VOXLINE_TWILIO_", extra="forbid")

    account_sid: str | None = None
    auth_token: str | None = Field(None, description="signs webhooks; authenticates REST calls")
    public_host: str | None = Field(
        None, description="host[:port] Twilio reaches this server at, over https and wss"
    )
    transfer_number: str | None = Field(None, description="what transfer_to_human dials")
    api_base_url: str = Field(
        "https://api.twilio.com", description="Twilio's REST API (another base for a proxy)"
    )


class FreeSwitchSettings(BaseSettings):
    """Phone calls through FreeSWITCH: ``mod_audio_stream`` audio, Event Socket control."""

    model_config = SettingsConfigDict(env_prefix="VOXLINE_FREESWITCH_", extra="forbid")

    stream_token: str | None = Field(
        None, description="secret the audio stream URL carries as ?token=; unset: disabled"
    )
    esl_host: str = "127.0.0.1"
    esl_port: int = Field(8021, ge=1, le=65535)
    esl_password: str = "ClueCon"
    transfer_target: str | None = Field(
        None, description="uuid_transfer destination: '<extension> [<dialplan> [<context>]]'"
    )


class PhoneSettings(BaseSettings):
    """What every phone call (Twilio or FreeSWITCH) is: whose key, which agent setup."""

    model_config = SettingsConfigDict(env_prefix="VOXLINE_PHONE_", extra="forbid")

    key_id: str | None = Field(
        None, description="the API key phone calls are accounted and limited to"
    )
    label: str | None = Field(None, description="session label of phone calls")
    configure: dict[str, Any] = Field(
        default_factory=dict, description="the configure frame each phone call starts with"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOXLINE_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(
        1, ge=1, le=64, description="server processes sharing the port; above 1 needs redis_url"
    )
    data_dir: Path = Field(default_factory=default_data_dir)
    agent: Literal["echo", "default"] = "default"
    # The default agent's engines: embedded models unless pointed elsewhere.
    stt_model: str | None = Field(
        None, description="CTranslate2 Whisper model directory, or the remote model name"
    )
    stt_model_8k: str | None = Field(
        None, description="stt_model for 8 kHz (telephone) sessions; unset: stt_model"
    )
    stt_workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="decodes at once per process; unset: its share of the cores, at most 8",
    )
    stt_threads: int = Field(1, ge=1, le=64, description="cores per decode")
    stt_beam: int = Field(1, ge=1, le=10, description="beam width of a decode; 1 is greedy")
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
    web_key: str | None = Field(
        None,
        description="secret key (omni:session) the page at / mints its browser tokens from; "
        "unset: the page gets none (serve --print-key uses the quickstart key)",
    )
    max_session_seconds: float = Field(3600.0, gt=0)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    freeswitch: FreeSwitchSettings = Field(default_factory=FreeSwitchSettings)
    phone: PhoneSettings = Field(default_factory=PhoneSettings)

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

    @model_validator(mode="after")
    def _workers_share_state(self) -> Settings:
        if self.workers > 1 and not self.redis_url:
            raise ValueError(
                "workers above 1 need redis_url: the processes must share limits and browser tokens"
            )
        return self

    @property
    def database_path(self) -> Path:
        return self.data_dir / "voxline.db"
