"""Teams attendance checks; the rep's brief-before-a-meeting preference

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 05:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import connector.store.models

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attendance_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interaction_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", connector.store.models.UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", connector.store.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", connector.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["interaction_id"], ["interactions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("interaction_id"),
    )
    with op.batch_alter_table("attendance_checks", schema=None) as batch_op:
        batch_op.create_index("ix_attendance_checks_status_due", ["status", "due_at"], unique=False)
    with op.batch_alter_table("rep_preferences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("brief_minutes", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rep_preferences", schema=None) as batch_op:
        batch_op.drop_column("brief_minutes")
    with op.batch_alter_table("attendance_checks", schema=None) as batch_op:
        batch_op.drop_index("ix_attendance_checks_status_due")
    op.drop_table("attendance_checks")
