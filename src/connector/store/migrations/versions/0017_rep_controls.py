"""the rep's own controls: preferences (channels, quiet hours, digest time, capture pause)
and meeting exclusions

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 05:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import connector.store.models

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rep_preferences") as batch:
        batch.add_column(sa.Column("channels", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("quiet_start", sa.String(length=5), nullable=True))
        batch.add_column(sa.Column("quiet_end", sa.String(length=5), nullable=True))
        batch.add_column(sa.Column("digest_time", sa.String(length=5), nullable=True))
        batch.add_column(
            sa.Column("capture_paused_until", connector.store.models.UTCDateTime(), nullable=True)
        )
    op.create_table(
        "meeting_exclusions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_key", sa.String(length=512), nullable=False),
        sa.Column("meeting_key", sa.String(length=512), nullable=False),
        sa.Column("rep_email", sa.String(length=320), nullable=False),
        sa.Column("interaction_id", sa.Integer(), nullable=True),
        sa.Column("previous_status", sa.String(length=16), nullable=False),
        sa.Column("created_at", connector.store.models.UTCDateTime(), nullable=False),
        sa.Column("undo_until", connector.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["interaction_id"], ["interactions.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("series_key"),
    )
    op.create_index(
        op.f("ix_meeting_exclusions_rep_email"), "meeting_exclusions", ["rep_email"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_meeting_exclusions_rep_email"), table_name="meeting_exclusions")
    op.drop_table("meeting_exclusions")
    with op.batch_alter_table("rep_preferences") as batch:
        batch.drop_column("capture_paused_until")
        batch.drop_column("digest_time")
        batch.drop_column("quiet_end")
        batch.drop_column("quiet_start")
        batch.drop_column("channels")
