"""reminders.overdue is reminders.stage_deadline: an sla's reminder at the stage's deadline

Whether a reminder is past due is computed when asked (the API's ``overdue``); the column only
ever said which reminder of an sla rule is the one at its limit.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02 01:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.alter_column("overdue", new_column_name="stage_deadline")


def downgrade() -> None:
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.alter_column("stage_deadline", new_column_name="overdue")
