"""Ids that go out (in webhooks, the API, card and delivery keys) are never given twice, and the
migration that makes them so on SQLite (0019) keeps every row and every link between rows."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from flask import Flask
from flask.testing import FlaskClient

from connector.store.db import get_store, insert_numbered
from connector.store.models import Interaction, OutboxItem, Reminder, utcnow
from tests.connector.samples import deal_body

REBUILT = ("deals", "stage_changes", "interactions", "reminders", "outbox")
CHILDREN = ("deal_contacts", "deal_domains", "stage_changes", "reminders", "interactions")


def _counts(app: Flask) -> dict[str, int]:
    with get_store(app).session() as session:
        return {
            t: session.execute(sa.text(f"select count(*) from {t}")).scalar_one()
            for t in {*REBUILT, *CHILDREN}
        }


def _schema(app: Flask) -> dict[str, str]:
    """Every index and table of the database, as SQLite keeps their definitions."""
    with get_store(app).session() as session:
        rows = session.execute(
            sa.text(
                "select name, sql from sqlite_master where sql is not null and name "
                "not like 'sqlite_%' order by name"
            )
        ).all()
    return dict(rows)


def _parts(schema: dict[str, str]) -> dict[str, set[str]]:
    """Each definition as its columns and constraints, in any order (a rebuilt table lists
    its constraints in another order)."""
    return {name: {p.strip(" \n\t(),") for p in sql.split(",")} for name, sql in schema.items()}


def _deals(client: FlaskClient, auth: dict[str, str], *crm_ids: str) -> None:
    for crm_id in crm_ids:
        answer = client.put(f"/api/v1/deals/{crm_id}", json=deal_body(), headers=auth)
        assert answer.status_code in (200, 201), answer.json


def _log_call(client: FlaskClient, auth: dict[str, str], crm_id: str) -> int:
    call = {"kind": "call", "subject": "Intro call", "occurred_at": "2026-01-05T10:00:00Z"}
    answer = client.post(f"/api/v1/deals/{crm_id}/interactions", json=call, headers=auth)
    assert answer.status_code == 201, answer.json
    return int(answer.json["id"])


def test_a_deleted_newest_rows_id_is_not_given_to_the_next(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    _deals(client, auth, "OPP-1", "OPP-2")
    first = _log_call(client, auth, "OPP-2")
    with get_store(app).session() as session:
        reminders = set(session.scalars(sa.select(Reminder.id).join(Reminder.deal)))
    assert client.delete("/api/v1/deals/OPP-2", headers=auth).status_code == 204

    # a deal and a call: the ORM's own inserts; a deal's reminders: numbered together (store.db)
    _deals(client, auth, "OPP-3")
    again = _log_call(client, auth, "OPP-1")
    with get_store(app).session() as session:
        now = utcnow()
        row = {
            "kind": "test",
            "payload": {},
            "status": "pending",
            "next_attempt_at": now,
            "attempts": 0,
            "result": {},
            "created_at": now,
            "updated_at": now,
        }
        top = session.scalar(sa.select(sa.func.max(OutboxItem.id)))
        session.execute(sa.delete(OutboxItem).where(OutboxItem.id == top))
        [numbered] = insert_numbered(session, OutboxItem, [row | {"idempotency_key": "t:1"}])
        now_reminders = set(session.scalars(sa.select(Reminder.id)))
        interactions = set(session.scalars(sa.select(Interaction.id)))

    assert again > first
    assert first not in interactions
    deleted = reminders - now_reminders
    assert deleted  # OPP-2's went with it
    assert not deleted & now_reminders
    assert min(now_reminders - (reminders - deleted)) > max(reminders)
    assert top is not None
    assert numbered > top


def test_the_migration_keeps_every_row_and_link_and_leaves_foreign_keys_on(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    _deals(client, auth, "OPP-1", "OPP-2", "OPP-3")
    _log_call(client, auth, "OPP-1")
    store = get_store(app)
    if store.engine.dialect.name != "sqlite":
        return  # PostgreSQL: nothing to rebuild (sequences never give an id twice)
    before, schema = _counts(app), _schema(app)
    assert all("AUTOINCREMENT" in schema[t] for t in REBUILT)

    command.downgrade(store.alembic_config(), "0018")
    assert not any("AUTOINCREMENT" in sql for sql in _schema(app).values())
    assert _counts(app) == before
    command.upgrade(store.alembic_config(), "head")

    assert _counts(app) == before
    # the same tables, columns, indexes and constraints as a new database
    assert _parts(_schema(app)) == _parts(schema)
    with store.session() as session:
        assert session.execute(sa.text("PRAGMA foreign_keys")).scalar_one() == 1
        assert session.execute(sa.text("PRAGMA foreign_key_check")).all() == []
    assert client.delete("/api/v1/deals/OPP-1", headers=auth).status_code == 204
    after = _counts(app)
    assert after["deal_contacts"] == before["deal_contacts"] - 1  # still cascades
    assert after["interactions"] == before["interactions"] - 1
