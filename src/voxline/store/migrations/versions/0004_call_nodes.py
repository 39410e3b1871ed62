"""The node (machine, container) that served each call, for servers sharing a database,
and its calls still open (how far a drain has come)."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("calls", sa.Column("node", sa.Text))
    op.create_index(
        "open_calls_by_node",
        "calls",
        ["node"],
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )
