"""Server settings: defaults, then a TOML config file, then ``VOXLINE_*`` variables, then flags."""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

_DATABASE_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://", "sqlite:///")


class ConfigFileError(ValueError):
    """The TOML settings file is missing, unreadable or not TOML."""


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("voxline", appauthor=False))


class SttSettings(BaseSettings):
    """The default agent's speech recognition: embedded Whisper unless ``url`` names a server."""

    model_config = SettingsConfigDict(env_prefix="VOXLINE_STT_", extra="forbid")

    model: str | None = Field(
        None,
        description="Whisper model: tiny.en (packaged), a cached name or a CTranslate2 "
        "directory; the model name at the transcription server",
    )
    model_8k: str | None = Field(
        None, description="the model of 8 kHz (telephone) sessions; unset: the same model"
    )
    workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="decodes at once per process; unset: its share of the cores, at most 8",
    )
    threads: int = Field(1, ge=1, le=64, description="cores per decode")
    beam: int = Field(
        5,
        ge=1,
        le=10,
        description="beam width of a decode that ends a turn when no other turn's decode "
        "waits beside it (then, and for partial transcripts, greedy); 1 is always greedy",
    )
    url: str | None = Field(None, description="OpenAI-compatible transcription server")
    key: str | None = Field(None, description="API key of the transcription server")


class TtsSettings(BaseSettings):
    """The default agent's speech: embedded Piper unless ``url`` names a server."""

    model_config = SettingsConfigDict(env_prefix="VOXLINE_TTS_", extra="forbid")

    voice: Path | None = Field(
        None,
        description="default Piper voice (.onnx, with .onnx.json); unset: the packaged voice",
    )
    voices_dir: Path | None = Field(
        None,
        description="directory of further Piper voices (each a .onnx with its .onnx.json), "
        "offered besides the default and the packaged voice",
    )
    max_loaded_voices: int = Field(
        4, ge=1, le=64, description="voices loaded at once besides the default one"
    )
    url: str | None = Field(None, description="OpenAI-compatible speech server")
    key: str | None = Field(None, description="API key of the speech server")
    remote_voice: str = Field("alloy", description="voice name at the speech server")


class LlmSettings(BaseSettings):
    """The default agent's brain: a chat completions server, else answers from its knowledge."""

    model_config = SettingsConfigDict(env_prefix="VOXLINE_LLM_", extra="forbid")

    url: str | None = Field(
        None,
        description="OpenAI-compatible chat completions server; unset: answers come from "
        "the knowledge file",
    )
    model: str = Field("gpt-4o-mini", description="chat model at the LLM server")
    key: str | None = Field(None, description="API key of the LLM server")


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
    page_tokens_per_minute_per_address: int = Field(
        10, ge=1, description="browser tokens the page at / mints per client address"
    )
    max_http_audio_requests_per_key: int = Field(
        4,
        ge=1,
        description="HTTP speech and transcription requests one key has under way at once",
    )


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
    agent_id: str | None = Field(
        None,
        description="the stored agent phone calls start from, unless the call names one "
        "(agents of the phone key's owner)",
    )
    configure: dict[str, Any] = Field(
        default_factory=dict, description="the configure frame each phone call starts with"
    )


class SectionedEnvSource(EnvSettingsSource):
    """``VOXLINE_*`` variables, a section's (``stt``, ``limits``, ...) read under the section's own
    prefix: ``VOXLINE_STT_BEAM`` is ``stt.beam``. A section left to read its variables itself
    as it is built would rank them below the TOML file, whose values reach it as arguments;
    read here, they rank between the file and the flags like every other variable, and a bad
    one is reported as ``stt.beam``. A variable named after a whole section (``VOXLINE_STT``)
    is not one."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if section_type(field) is not None:
            return None, field_name, False
        return super().get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        for name, field in self.settings_cls.model_fields.items():
            section = section_type(field)
            if section is not None and (section_values := EnvSettingsSource(section)()):
                values[name] = section_values
        return values


def _toml_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    """The settings of the TOML file at ``path``, which must exist and be TOML (the source
    itself would take a missing file for an empty one)."""
    try:
        with path.open("rb") as file:
            tomllib.load(file)
    except OSError as exc:
        raise ConfigFileError(f"config file {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"config file {path}: not TOML ({exc})") from exc
    return TomlConfigSettingsSource(settings_cls, toml_file=path)


def section_type(field: FieldInfo) -> type[BaseSettings] | None:
    """The settings class of a section field (``Settings.stt``); None for a plain setting."""
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
        return annotation
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOXLINE_", extra="forbid")

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")
    workers: int = Field(
        1, ge=1, le=64, description="server processes sharing the port; above 1 needs redis_url"
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="keys, agents and call records live here unless database_url is set",
    )
    database_url: str | None = Field(
        None,
        description="the database of keys, agents and call records: postgresql://… for one "
        "that several nodes share; unset: the SQLite file voxline.db in data_dir",
    )
    node: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=255,
        description="this node's name: in its call records, and what /admin/drain drains; "
        "unique among the nodes sharing a database and Redis",
    )
    agent: Literal["echo", "default"] = Field(
        "default", description="echo repeats callers; default answers them"
    )
    knowledge: Path | None = Field(
        None, description="knowledge file the default agent answers from"
    )
    stt: SttSettings = Field(default_factory=SttSettings)
    tts: TtsSettings = Field(default_factory=TtsSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    redis_url: str | None = Field(
        None, description="Redis the server processes share limits and browser tokens through"
    )
    public_url: str | None = Field(
        None, description="external base URL (https://host) when behind a proxy"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses (or networks) of the reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty: no forwarded header is, from anyone",
    )
    web_key: str | None = Field(
        None,
        description="secret key (omni:session) the page at / mints its browser tokens from; "
        "unset: the page gets none (serve --print-key uses the quickstart key)",
    )
    transfer_destination: str | None = Field(
        None,
        description="the destination of transfer_to_human events (a number or queue the "
        "client's bridge dials) unless a session's configure sets its own",
    )
    max_session_seconds: float = Field(3600.0, gt=0)
    idle_session_seconds: float | None = Field(
        60.0,
        gt=0,
        description="a session in which neither side has sent or said anything this long is "
        "closed (session_end idle_timeout); unset: never",
    )
    drain_seconds: float = Field(
        0.0,
        ge=0,
        description="on SIGTERM or SIGINT: how long live calls may go on to their own end "
        "(no new session is admitted, /readyz answers 503) before the rest are ended with "
        "session_end server_shutdown; 0: at once",
    )
    shutdown_grace_seconds: float = Field(
        5.0,
        ge=0,
        description="on SIGTERM or SIGINT: how long ended sessions get to close and finish "
        "their records before the process stops anyway",
    )
    max_connections: int | None = Field(
        None,
        ge=1,
        description="connections (sockets and HTTP) one process holds at once; beyond it, "
        "HTTP 503; unset: the open-file limit less headroom",
    )
    limits: LimitSettings = Field(default_factory=LimitSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    freeswitch: FreeSwitchSettings = Field(default_factory=FreeSwitchSettings)
    phone: PhoneSettings = Field(default_factory=PhoneSettings)

    config_file: Path | None = Field(None, exclude=True, description="TOML settings file")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        env_settings = SectionedEnvSource(settings_cls)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        # The file is named by the argument (--config), else by VOXLINE_CONFIG_FILE.
        config_file = init_settings().get("config_file") or env_settings().get("config_file")
        if config_file is not None:
            sources.append(_toml_source(settings_cls, Path(config_file)))
        return tuple(sources)

    @model_validator(mode="after")
    def _workers_share_state(self) -> Settings:
        if self.workers > 1 and not self.redis_url:
            raise ValueError(
                "workers above 1 need redis_url: the processes must share limits and browser tokens"
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _database_engine(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(_DATABASE_SCHEMES):
            raise ValueError("a database URL is postgresql://… or sqlite:///PATH")
        return url

    @property
    def database(self) -> str | Path:
        """Where the store is: ``database_url``, else the SQLite file in ``data_dir``."""
        return self.database_url or self.data_dir / "voxline.db"
