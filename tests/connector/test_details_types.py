"""Interaction.details' typed shape: a dict as written today validates and round-trips."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from pydantic import ValidationError

from connector.store.db import Store, get_store
from connector.store.models import Interaction, utcnow
from connector.store.types import MeetingDetails, MeetingDetailsJSON
from tests.connector.samples import deal_body

WRITTEN_TODAY = {
    "ical_uid": "uid-1",
    "series_id": None,
    "event_type": "singleInstance",
    "original_start": None,
    "organizer": "ana@contoso.test",
    "attendees": [
        {
            "email": "buyer@fabrikam.test",
            "name": "Buyer",
            "response": "accepted",
            "type": "required",
        }
    ],
    "online": True,
    "location": None,
    "mailboxes": ["ana@contoso.test"],
    "internal_participants": ["ana@contoso.test"],
    "explanation": "matched by attendee domain",
    "candidates": [{"deal": "crm-1", "rule": "domain", "address": "fabrikam.test"}],
    "chosen_by": "ana@contoso.test",
    "chosen_at": "2026-01-05T10:00:00+00:00",
    "outcome": {"outcome": "won", "note": None, "stage_name": None, "by": "ana", "at": "x"},
}


def test_a_details_dict_as_written_today_validates_with_its_fields() -> None:
    details = MeetingDetails.model_validate(WRITTEN_TODAY)

    assert details.attendees[0].email == "buyer@fabrikam.test"
    assert details.candidates[0].deal == "crm-1"
    assert details.outcome is not None
    assert details.outcome.outcome == "won"


def test_details_stored_through_the_column_type_come_back_typed_and_unchanged() -> None:
    engine = sa.create_engine("sqlite://")
    table = sa.Table("t", sa.MetaData(), sa.Column("details", MeetingDetailsJSON()))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert().values(details=WRITTEN_TODAY))
        raw = conn.execute(sa.text("select details from t")).scalar_one()
        loaded = conn.execute(sa.select(table.c.details)).scalar_one()

    assert isinstance(loaded, MeetingDetails)
    assert loaded.model_dump(mode="json", exclude_unset=True) == WRITTEN_TODAY
    assert '"ical_uid": "uid-1"' in raw


def test_an_empty_details_dict_stays_empty() -> None:
    assert MeetingDetails.model_validate({}).model_dump(exclude_unset=True) == {}


def test_details_dump_only_the_keys_given_so_the_wire_is_unchanged() -> None:
    given = {"mailboxes": ["ana@contoso.test"], "legacy_key": 1}

    assert MeetingDetails.model_validate(given).model_dump(mode="json") == given


# ---- wired to Interaction.details --------------------------------------------------------


def _meeting_row(app: Flask, details: MeetingDetails) -> int:
    start = utcnow()
    with get_store(app).session() as session:
        row = Interaction(
            kind="meeting",
            source="outlook",
            external_key="outlook:uid-1",
            status="held",
            started_at=start,
            ended_at=start,
            details=details,
        )
        session.add(row)
        session.flush()
        return row.id


def test_a_change_to_details_after_load_is_persisted(app: Flask) -> None:
    row_id = _meeting_row(app, MeetingDetails(mailboxes=("ana@contoso.test",)))
    with get_store(app).session() as session:
        row = session.get(Interaction, row_id)
        assert row is not None
        assert row.details is not None
        row.details = row.details.but(chosen_by="raj@contoso.test", outcome={"outcome": "won"})

    with get_store(app).session() as session:
        again = session.get(Interaction, row_id)
        assert again is not None
        assert again.details is not None
        assert again.details.chosen_by == "raj@contoso.test"
        assert again.details.outcome is not None
        assert again.details.outcome.outcome == "won"
        assert again.details.mailboxes == ("ana@contoso.test",)


def test_a_change_in_place_that_the_store_would_not_see_is_refused(app: Flask) -> None:
    row_id = _meeting_row(app, MeetingDetails(mailboxes=("ana@contoso.test",)))
    with get_store(app).session() as session:
        row = session.get(Interaction, row_id)
        assert row is not None
        assert row.details is not None
        with pytest.raises(ValidationError):
            row.details.chosen_by = "raj@contoso.test"
        with pytest.raises(AttributeError):
            row.details.mailboxes.append("raj@contoso.test")  # type: ignore[attr-defined]


def test_equal_details_write_nothing_and_other_details_write(app: Flask) -> None:
    row_id = _meeting_row(app, MeetingDetails(mailboxes=("ana@contoso.test",)))
    with get_store(app).session() as session:
        row = session.get(Interaction, row_id)
        assert row is not None
        assert row.details is not None
        row.details = MeetingDetails(mailboxes=["ana@contoso.test"])
        assert not session.is_modified(row)  # the same stored JSON: no UPDATE
        row.details = MeetingDetails(mailboxes=["ana@contoso.test"], location=None)
        assert session.is_modified(row)  # the stored JSON would gain a key


def test_a_call_logged_by_hand_has_no_details(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth)
    call = {"kind": "call", "subject": "Intro call", "occurred_at": "2026-01-05T10:00:00Z"}

    logged = client.post("/api/v1/deals/OPP-1/interactions", json=call, headers=auth)

    assert logged.status_code == 201
    assert logged.json["details"] is None
    listed = client.get("/api/v1/deals/OPP-1/interactions", headers=auth).json["items"]
    assert [i["details"] for i in listed] == [None]
    with get_store(app).session() as session:
        raw = session.execute(sa.text("select details from interactions")).scalar_one()
    assert raw is None


def test_the_migration_keeps_meetings_details_and_drops_the_empty_ones_of_hand_logged(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(store.alembic_config(), "0005")
    insert = sa.text(
        "insert into interactions (kind, source, external_key, status, started_at, details,"
        " created_at, updated_at) values (:kind, :source, :key, 'held', :at, :details, :at, :at)"
    )
    at = dt.datetime(2026, 1, 5, 10)
    with store.engine.begin() as conn:
        conn.execute(
            insert, {"kind": "note", "source": "api", "key": "api:1", "at": at, "details": "{}"}
        )
        conn.execute(
            insert,
            {
                "kind": "meeting",
                "source": "outlook",
                "key": "outlook:1",
                "at": at,
                "details": json.dumps(WRITTEN_TODAY),
            },
        )
    store.upgrade()
    with store.session() as session:
        rows = {i.kind: i.details for i in session.scalars(sa.select(Interaction))}
    store.dispose()

    assert rows["note"] is None
    assert rows["meeting"] is not None
    assert rows["meeting"].stored() == WRITTEN_TODAY
