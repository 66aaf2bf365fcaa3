"""Domain signals: a change reaches its subscribers with no wiring at the call site."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.deals.changes import upsert_deal
from connector.deals.models import DealIn
from connector.meetings.interactions import choose_deal
from connector.signals import deal_changed
from connector.stage_reminders.replan import on_deal_changed
from connector.store.db import get_store
from connector.store.models import Interaction, OutboxItem, Reminder, utcnow
from connector.store.types import MeetingDetails
from tests.connector.conftest import make_app
from tests.databases import Template

DEAL = DealIn.model_validate(
    {"title": "Fabrikam renewal", "pipeline": "classic5", "stage": "negotiation"}
)


def _upsert(session: Session, crm_id: str = "OPP-1") -> None:
    now = utcnow() - dt.timedelta(days=20)
    upsert_deal(session, crm_id, DEAL, actor="test", now=now, default_pipeline="classic5")


def _reminders(app: Flask) -> list[Reminder]:
    with get_store(app).session() as session:
        return list(session.scalars(select(Reminder)))


def _outbox_kinds(app: Flask) -> set[str]:
    with get_store(app).session() as session:
        return set(session.scalars(select(OutboxItem.kind)))


def test_a_deal_change_replans_with_no_extra_argument(app: Flask) -> None:
    with app.app_context(), get_store(app).session() as session:
        _upsert(session)

    assert _reminders(app), "upsert_deal alone must plan the deal's reminders"


def test_a_session_opened_outside_any_app_refuses_the_change(app: Flask) -> None:
    with Session(get_store(app).engine) as session, pytest.raises(RuntimeError, match="no app"):
        _upsert(session)  # nobody could re-plan it: failing beats a deal without reminders


def test_a_deal_change_with_nothing_to_replan_it_fails(app: Flask) -> None:
    deal_changed.disconnect(on_deal_changed)  # as if stage_reminders.init_app was forgotten
    try:
        with (
            get_store(app).session() as session,
            pytest.raises(RuntimeError, match=r"stage_reminders\.init_app"),
        ):
            _upsert(session)
    finally:
        deal_changed.connect(on_deal_changed)
    assert not _reminders(app)


def test_each_app_replans_with_its_own_settings(
    app: Flask, tmp_path: Path, migrated_template: Template
) -> None:
    """Signals are process-wide; the receiver acts with the settings of the session's app."""
    calendar_only = make_app(
        tmp_path / "other.db", migrated_template, reminder_channels=["calendar"]
    )
    try:
        with get_store(calendar_only).session() as session:
            _upsert(session)
        with get_store(app).session() as session:
            _upsert(session)

        assert _outbox_kinds(calendar_only) == {"calendar"}
        assert {"calendar", "teams"} <= _outbox_kinds(app)
    finally:
        get_store(calendar_only).dispose()


def test_a_chosen_deal_becomes_one_webhook(tmp_path: Path, migrated_template: Template) -> None:
    app = make_app(tmp_path / "hooks.db", migrated_template, webhook_url="http://crm.invalid/hooks")
    try:
        with get_store(app).session() as session:
            _upsert(session, "OPP-1")
            _upsert(session, "OPP-2")
            start = utcnow() - dt.timedelta(days=1)
            interaction = Interaction(
                kind="meeting",
                source="graph",
                external_key="graph:meeting-1",
                status="needs_choice",
                subject="Renewal",
                started_at=start,
                ended_at=start + dt.timedelta(hours=1),
                created_by="ann@contoso.example",
                details=MeetingDetails(),
            )
            session.add(interaction)
            session.flush()
            choose_deal(session, interaction.id, "OPP-2", by="ann@contoso.example", now=utcnow())
        with get_store(app).session() as session:
            hooks = list(session.scalars(select(OutboxItem).where(OutboxItem.kind == "webhook")))

        assert [h.payload["type"] for h in hooks] == ["interaction.updated"]
        assert hooks[0].payload["data"]["deal"] == "OPP-2"
        assert hooks[0].payload["data"]["by"] == "ann@contoso.example"
    finally:
        get_store(app).dispose()
