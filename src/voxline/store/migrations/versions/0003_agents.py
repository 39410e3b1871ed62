"""Stored agent profiles (see voxline.store.agents), and the owner each key acts for: a
key sees and uses its owner's agents only."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("owner", sa.Text, nullable=False, server_default="default"))
    op.create_table(
        "agents",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("vocabulary", sa.Text, nullable=False),
        sa.Column("knowledge", sa.Text),
        sa.Column("knowledge_file", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("agents_by_owner", "agents", ["owner", "created_at"])
