"""The tables, as the queries see them; the migrations (``voxline.store.migrations``) build
them, on SQLite and PostgreSQL alike, and a test checks that the two agree.

Times are seconds since the epoch (floats), as everywhere else in voxline.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    text,
)

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("env", Text, CheckConstraint("env IN ('test', 'live')"), nullable=False),
    Column("secret_digest", LargeBinary, nullable=False, unique=True),
    Column("display_prefix", Text, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("concurrency", Integer, CheckConstraint("concurrency IS NULL OR concurrency >= 1")),
    Column(
        "daily_audio_seconds",
        Float,
        CheckConstraint("daily_audio_seconds IS NULL OR daily_audio_seconds > 0"),
    ),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("owner", Text, nullable=False, server_default="default"),
)

calls = Table(
    "calls",
    metadata,
    Column("call_id", Text, primary_key=True),
    Column("key_id", Text, nullable=False),
    Column("session_label", Text),
    Column("transport", Text, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("close_code", Integer),
    Column("close_reason", Text),
    Column("audio_in_seconds", Float, nullable=False),
    Column("audio_out_seconds", Float, nullable=False),
    Column("turns", Integer, nullable=False),
    Column("barge_ins", Integer, nullable=False),
    #: The process that wrote the row (``servers``), to close it if that process dies.
    Column("server_id", Text),
    #: The name of the node (machine, container) that served the call.
    Column("node", Text),
    #: The stored agent (``agents``) that served the call, null if it named none; its id
    #: only, as the record outlives the agent.
    Column("agent_id", Text),
    Index("calls_by_start", "started_at"),
    Index(
        "open_calls_by_server",
        "server_id",
        sqlite_where=text("ended_at IS NULL"),
        postgresql_where=text("ended_at IS NULL"),
    ),
    Index(
        "open_calls_by_node",
        "node",
        sqlite_where=text("ended_at IS NULL"),
        postgresql_where=text("ended_at IS NULL"),
    ),
)

servers = Table(
    "servers",
    metadata,
    Column("server_id", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("pid_started_at", Float, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)

agents = Table(
    "agents",
    metadata,
    Column("id", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("settings", Text, nullable=False),
    Column("vocabulary", Text, nullable=False),
    Column("knowledge", Text),
    Column("knowledge_file", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("agents_by_owner", "owner", "created_at"),
)
