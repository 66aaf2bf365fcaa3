"""The bulk API writes new deals with one insert per table; what it writes is what creating
each deal alone writes: the deals, their contacts, domains and first stage change, the
reminders planned for them and the deliveries queued for those (on both databases). The API's
clock is held still so both runs plan from the same instant."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from connector.store.db import get_store
from connector.store.models import (
    Deal,
    DealContact,
    DealDomain,
    OutboxItem,
    Reminder,
    Rep,
    StageChange,
)
from tests.connector.conftest import make_app
from tests.connector.samples import deal_body
from tests.databases import Template

SETTINGS = {
    "reminder_channels": ["calendar", "teams"],
    "webhook_url": "https://crm.example.com/hooks",
    "webhook_secret": "bulk-rows-secret",
    "api_key": "bulk-rows-key-0123456789",
}
AUTH = {"Authorization": "Bearer bulk-rows-key-0123456789"}
NOW = dt.datetime(2026, 11, 16, 9, 0, tzinfo=dt.UTC)  # a Monday


def _deals() -> list[dict[str, Any]]:
    """Shapes a CRM sends: with and without account, contacts, amount, link; owned by a rep
    with her own working hours, by one DealBridge has not met, by nobody; won and lost."""
    return [
        {"id": "B1", **deal_body()},
        {"id": "B2", **deal_body(stage="negotiation", owner="bo.chen@contoso.com")},
        {"id": "B3", "title": "Bare", "stage": "lead_generation"},
        {
            "id": "B4",
            **deal_body(
                contacts=[
                    {"email": "Dana.Ruiz@Fabrikam.com"},
                    {"name": "Eli", "email": "eli@fabrikam.com"},
                ],
                account={"name": "Fabrikam", "domains": ["fabrikam.com", "fabrikam.de"]},
                amount="12.5",
                crm_url=None,
            ),
        },
        {"id": "B5", **deal_body(stage="won")},
        {"id": "B6", **deal_body(stage="solution_presentation", owner=None, status="lost")},
    ]


def _sorted(rows: Any) -> list[tuple[Any, ...]]:
    return sorted(rows, key=repr)  # None beside strings: order by what they print


def _named(payload: dict[str, Any], reminder_keys: dict[int, str]) -> str:
    """A delivery's payload with the reminder it names by key, not by id."""
    named = dict(payload)
    if "reminder_id" in named:
        named["reminder_id"] = reminder_keys[named["reminder_id"]]
    return repr(sorted(named.items()))


def _rows(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the deals brought, keyed by the deal's CRM id (no ids, no clock)."""
    with get_store(app).session() as session:
        crm: dict[int, str] = dict(session.execute(select(Deal.id, Deal.crm_id)).all())
        deal_columns = [c for c in Deal.__table__.columns.keys() if c != "id"]  # noqa: SIM118
        reminder_columns = [
            c
            for c in Reminder.__table__.columns.keys()  # noqa: SIM118
            if c not in ("id", "deal_id", "created_at", "updated_at")
        ]
        reminder_keys = dict(session.execute(select(Reminder.id, Reminder.key)).all())
        return {
            "deals": _sorted(
                tuple(getattr(d, c) for c in deal_columns) for d in session.scalars(select(Deal))
            ),
            "contacts": _sorted(
                (crm[c.deal_id], c.name, c.email) for c in session.scalars(select(DealContact))
            ),
            "domains": _sorted(
                (crm[d.deal_id], d.domain) for d in session.scalars(select(DealDomain))
            ),
            "stages": _sorted(
                (crm[s.deal_id], s.pipeline_id, s.from_stage, s.to_stage, s.changed_by)
                for s in session.scalars(select(StageChange))
            ),
            "reminders": _sorted(
                (crm[r.deal_id], *(getattr(r, c) for c in reminder_columns))
                for r in session.scalars(select(Reminder))
            ),
            "outbox": _sorted(
                (o.kind, o.idempotency_key, str(o.status), o.attempts, o.next_attempt_at, named)
                for o in session.scalars(select(OutboxItem))
                for named in [_named(o.payload, reminder_keys)]
            ),
        }


def _app(folder: Path, template: Template) -> Flask:
    folder.mkdir()
    app = make_app(folder / "dealbridge.db", template, **SETTINGS)
    with get_store(app).session() as session:
        session.add(
            Rep(
                email="ann.lee@contoso.com",
                display_name="Ann Lee",
                time_zone="Europe/Berlin",
                working_days=[1, 2, 3, 4],
                work_start="08:00",
                work_end="16:00",
            )
        )
    return app


def test_a_bulk_of_new_deals_writes_what_creating_each_alone_writes(
    tmp_path: Path, migrated_template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("connector.api.deals.utcnow", lambda: NOW)
    one_by_one = _app(tmp_path / "one", migrated_template)
    bulk = _app(tmp_path / "bulk", migrated_template)
    try:
        for deal in _deals():
            body = {k: v for k, v in deal.items() if k != "id"}
            answer = one_by_one.test_client().put(
                f"/api/v1/deals/{deal['id']}", json=body, headers=AUTH
            )
            assert answer.status_code == 201, answer.json
        answer = bulk.test_client().post(
            "/api/v1/deals:bulk", json={"deals": _deals()}, headers=AUTH
        )
        assert answer.json["created"] == len(_deals()), answer.json
        alone, together = _rows(one_by_one), _rows(bulk)
        assert together["reminders"], "the deals planned reminders"
        assert together["outbox"], "and queued their deliveries"
        assert together == alone
    finally:
        get_store(one_by_one).dispose()
        get_store(bulk).dispose()


def test_insert_numbered_gives_each_row_its_own_id_in_order(app: Flask) -> None:
    """The ids come back in the rows' order and are the ids stored (SQLite: numbered before the
    insert; PostgreSQL: returned in order), after the rows already there."""
    from sqlalchemy.orm import Session

    from connector.store.db import insert_numbered
    from connector.store.models import Pipeline, utcnow

    now = utcnow()
    with Session(get_store(app).engine) as session:
        pipeline_id = session.scalars(select(Pipeline.id)).first()
        rows = [
            {
                "crm_id": f"N-{n:03d}",
                "title": f"Deal {n}",
                "pipeline_id": pipeline_id,
                "stage_key": "lead_generation",
                "status": "open",
                "stage_entered_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for n in (5, 3, 9, 1)  # not in any sorted order
        ]
        first = insert_numbered(session, Deal, rows[:1])
        rest = insert_numbered(session, Deal, rows[1:])
        session.commit()
        stored = dict(session.execute(select(Deal.crm_id, Deal.id)).all())
    assert [stored[row["crm_id"]] for row in rows] == first + rest
    assert len(set(first + rest)) == 4
    assert rest[0] > first[0]
