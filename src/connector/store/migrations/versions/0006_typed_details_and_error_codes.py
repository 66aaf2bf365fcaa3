"""typed interaction details (null for hand-logged), mailbox error code and missing permission

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 01:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_error_code", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("missing_permission", sa.String(length=100), nullable=True))
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.alter_column("details", existing_type=sa.JSON(), nullable=True)
    # A call, email or note logged by hand carries no details: None, not an empty meeting.
    op.execute(sa.text("UPDATE interactions SET details = NULL WHERE source <> 'outlook'"))


def downgrade() -> None:
    op.execute(sa.text("UPDATE interactions SET details = '{}' WHERE details IS NULL"))
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.alter_column("details", existing_type=sa.JSON(), nullable=False)
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_column("missing_permission")
        batch_op.drop_column("last_error_code")
