"""Interaction.details' typed shape: a dict as written today validates and round-trips."""

from __future__ import annotations

import sqlalchemy as sa

from connector.store.types import MeetingDetails, MeetingDetailsJSON

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
