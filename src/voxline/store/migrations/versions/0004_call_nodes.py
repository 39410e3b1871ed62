"""The node (machine, container) that served each call, for servers sharing a database."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("calls", sa.Column("node", sa.Text))
