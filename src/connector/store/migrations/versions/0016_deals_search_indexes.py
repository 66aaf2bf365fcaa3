"""deals by owner and by account: the indexes deal search and "may see" read

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 05:45:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_deals_owner_status", "deals", ["owner_email", "status", "account_name"], unique=False
    )
    op.create_index("ix_deals_account_status", "deals", ["account_name", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_deals_account_status", table_name="deals")
    op.drop_index("ix_deals_owner_status", table_name="deals")
