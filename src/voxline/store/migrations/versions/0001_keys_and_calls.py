"""API keys and call records."""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("env", sa.Text, sa.CheckConstraint("env IN ('test', 'live')"), nullable=False),
        sa.Column("secret_digest", sa.LargeBinary, nullable=False, unique=True),
        sa.Column("display_prefix", sa.Text, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column(
            "concurrency",
            sa.Integer,
            sa.CheckConstraint("concurrency IS NULL OR concurrency >= 1"),
        ),
        sa.Column(
            "daily_audio_seconds",
            sa.Float,
            sa.CheckConstraint("daily_audio_seconds IS NULL OR daily_audio_seconds > 0"),
        ),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_table(
        "calls",
        sa.Column("call_id", sa.Text, primary_key=True),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("session_label", sa.Text),
        sa.Column("transport", sa.Text, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("close_code", sa.Integer),
        sa.Column("close_reason", sa.Text),
        sa.Column("audio_in_seconds", sa.Float, nullable=False),
        sa.Column("audio_out_seconds", sa.Float, nullable=False),
        sa.Column("turns", sa.Integer, nullable=False),
        sa.Column("barge_ins", sa.Integer, nullable=False),
    )
    op.create_index("calls_by_start", "calls", ["started_at"])
