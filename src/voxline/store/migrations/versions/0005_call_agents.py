"""The stored agent each call was served by (see voxline.store.agents), null for a call that
named none; calls recorded before it have none."""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("calls", sa.Column("agent_id", sa.Text))
