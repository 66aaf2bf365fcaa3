"""Ids never given twice on SQLite: deals, stage changes, interactions, reminders, outbox

SQLite gives the next new row the largest id plus one, so deleting the newest row hands its id
to the next: a new reminder took over the Teams card of a deleted deal's reminder (its key
``reminder:<id>``), a new interaction the webhook key of a forgotten one. AUTOINCREMENT makes
SQLite remember the largest id it gave. The tables are rebuilt (batch mode copies each into a
new one with its indexes and constraints); ``env.py`` turns foreign keys off around the
migrations, else dropping the old ``deals`` would cascade into every child table.

Ids deleted before this migration and above the largest left may be given once more: SQLite
did not remember them. PostgreSQL's sequences never give an id twice: nothing to do there.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 12:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("deals", "stage_changes", "interactions", "reminders", "outbox")


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)


def _rebuild(*, autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "foreign keys are on: rebuilding deals would delete its children (env.py turns "
            "them off before the migrations)"
        )
    for name in TABLES:
        with op.batch_alter_table(
            name, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass
    broken = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"rows pointing at nothing after the rebuild: {broken[:5]}")
