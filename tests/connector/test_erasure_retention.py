"""A customer contact who asks to be forgotten (`dealbridge erase-person`), and interactions
kept only as long as `DEALBRIDGE_INTERACTION_RETENTION_DAYS` says (off by default)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from connector.admin.cli import cli
from connector.store.db import get_store
from connector.store.models import Deal, DealContact, Interaction, OutboxItem, utcnow
from tests.connector.conftest import make_app
from tests.connector.samples import deal_body

DANA = "dana.ruiz@fabrikam.com"


@pytest.fixture
def env(app: Flask, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    settings = app.extensions["dealbridge.settings"]
    values = {
        "DEALBRIDGE_DATABASE_URL": settings.effective_database_url,
        "DEALBRIDGE_SCHEDULER_ENABLED": "false",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def _meeting(deal_id: int | None, key: str, started: dt.datetime, *people: str) -> Interaction:
    details: dict[str, Any] = {
        "organizer": people[0],
        "attendees": [
            {
                "email": p,
                "name": p.split("@")[0].title(),
                "response": "accepted",
                "type": "required",
            }
            for p in people
        ],
        "internal_participants": ["ann.lee@contoso.com"],
        "candidates": [{"deal": "OPP-1", "rule": "contact", "address": people[0]}],
        "explanation": f"matched on {people[0]}",
    }
    return Interaction(
        deal_id=deal_id,
        kind="meeting",
        source="outlook",
        external_key=key,
        status="held",
        subject="Pricing call",
        started_at=started,
        match_rule="contact",
        matched_address=people[0],
        details=details,
    )


def _seed(app: Flask, auth: dict[str, str]) -> int:
    answer = app.test_client().put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth)
    assert answer.status_code == 201
    now = utcnow()
    with get_store(app).session() as session:
        deal = session.scalar(select(Deal).where(Deal.crm_id == "OPP-1"))
        assert deal is not None
        session.add(_meeting(deal.id, "m1", now, DANA, "ann.lee@contoso.com"))
        session.add(_meeting(deal.id, "m2", now, "lee@fabrikam.com", "ann.lee@contoso.com"))
        session.add(
            OutboxItem(
                kind="webhook",
                idempotency_key="webhook:x",
                payload={"type": "interaction.logged", "data": {"address": DANA}},
                status="done",
            )
        )
        return deal.id


def _everything(app: Flask) -> str:
    with get_store(app).session() as session:
        rows: list[Any] = [
            [i.details.model_dump(mode="json") if i.details else None, i.matched_address, i.subject]
            for i in session.scalars(select(Interaction))
        ]
        rows += [c.email for c in session.scalars(select(DealContact))]
        rows += [o.payload for o in session.scalars(select(OutboxItem))]
        return json.dumps(rows).lower()


def test_erase_person_dry_run_then_erase(
    app: Flask, env: dict[str, str], auth: dict[str, str]
) -> None:
    _seed(app, auth)
    before = _everything(app)
    assert DANA in before

    dry = CliRunner().invoke(cli, ["erase-person", DANA.upper(), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "2 interactions" in dry.output or "1 interaction" in dry.output
    assert "dry run" in dry.output.lower()
    assert _everything(app) == before

    done = CliRunner().invoke(cli, ["erase-person", DANA])
    assert done.exit_code == 0, done.output
    after = _everything(app)
    assert DANA not in after
    assert "dana" not in after.replace("ruiz", "")  # nor her name beside the address
    assert "lee@fabrikam.com" in after  # others stay
    assert "ann.lee@contoso.com" in after


def test_erase_person_refuses_what_is_not_an_address(env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["erase-person", "dana"])
    assert result.exit_code == 2
    assert "email" in result.output.lower()


def test_retention_is_off_by_default_and_deletes_older_interactions_when_set(
    tmp_path: Path, migrated_template: Path
) -> None:
    from connector.meetings.retention import purge_interactions

    old = utcnow() - dt.timedelta(days=400)
    for days, expected in ((None, {"old", "new"}), (365, {"new"})):
        app = make_app(tmp_path / f"r{days}.db", migrated_template, interaction_retention_days=days)
        with get_store(app).session() as session:
            session.add(_meeting(None, "old", old, DANA))
            session.add(_meeting(None, "new", utcnow(), DANA))
        purge_interactions(app)
        with get_store(app).session() as session:
            kept = set(session.scalars(select(Interaction.external_key)))
        assert kept == expected
        get_store(app).dispose()


def test_a_retention_shorter_than_the_calendar_window_is_refused() -> None:
    from connector.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="INTERACTION_RETENTION_DAYS"):
        load_settings({"interaction_retention_days": 7, "sync_days_back": 30}, env_file=False)
