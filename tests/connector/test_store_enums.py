"""Statuses and kinds are StrEnums stored as the same strings as before; others fail loudly."""

from __future__ import annotations

import hashlib
from enum import StrEnum

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from connector.store.db import get_store
from connector.store.models import Base, Deal, Interaction, OutboxItem, Reminder, TeamsCard
from connector.store.types import (
    CardKind,
    DealStatus,
    InteractionKind,
    InteractionStatus,
    MeetingDetails,
    OutboxStatus,
    ReminderKind,
    ReminderStatus,
    StrEnumColumn,
)
from connector.teams.views import interaction_stamp
from reminders.rules import RULE_KINDS
from tests.connector.samples import deal_body

# Every value the code writes, as found by grepping src and tests (and none in migrations).
WRITTEN = {
    DealStatus: {"open", "won", "lost"},
    InteractionKind: {"meeting", "call", "email", "note"},
    InteractionStatus: {
        "scheduled",
        "held",
        "needs_choice",
        "unmatched",
        "cancelled",
        "no_show",
        "withdrawn",
    },
    ReminderStatus: {"open", "snoozed", "done", "cancelled"},
    ReminderKind: set(RULE_KINDS),
    OutboxStatus: {"pending", "in_flight", "done", "dead"},
    CardKind: {
        "reminder",
        "meeting_logged",
        "pick_deal",
        "after_meeting",
        "digest",
        "health",
        "brief",  # the brief before a customer meeting
    },
}
COLUMNS = {
    (Deal, "status"): DealStatus,
    (Interaction, "kind"): InteractionKind,
    (Interaction, "status"): InteractionStatus,
    (Reminder, "status"): ReminderStatus,
    (Reminder, "kind"): ReminderKind,
    (OutboxItem, "status"): OutboxStatus,
    (TeamsCard, "kind"): CardKind,
}


def _table(enum: type[StrEnum]) -> tuple[sa.Engine, sa.Table]:
    engine = sa.create_engine("sqlite://")
    table = sa.Table("t", sa.MetaData(), sa.Column("v", StrEnumColumn(enum, 32)))
    table.metadata.create_all(engine)
    return engine, table


@pytest.mark.parametrize("enum", list(WRITTEN), ids=lambda e: e.__name__)
def test_the_enum_is_exactly_the_strings_written(enum: type[StrEnum]) -> None:
    assert {m.value for m in enum} == WRITTEN[enum]


@pytest.mark.parametrize("enum", list(WRITTEN), ids=lambda e: e.__name__)
def test_every_value_round_trips_as_the_same_string(enum: type[StrEnum]) -> None:
    engine, table = _table(enum)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"v": m} for m in enum])
        raw = conn.execute(sa.text("select v from t")).scalars().all()
        loaded = conn.execute(sa.select(table.c.v)).scalars().all()
    assert raw == [m.value for m in enum]
    assert loaded == list(enum)
    assert all(type(v) is enum for v in loaded)


def test_an_unknown_stored_value_fails_loudly_naming_the_enum() -> None:
    engine, table = _table(DealStatus)
    with engine.begin() as conn:
        conn.execute(sa.text("insert into t (v) values ('archived')"))
        with pytest.raises(LookupError, match=r"'archived' where a DealStatus belongs"):
            conn.execute(sa.select(table.c.v)).scalars().all()


def test_an_unknown_value_is_never_written() -> None:
    engine, table = _table(DealStatus)
    with engine.begin() as conn, pytest.raises(sa.exc.StatementError, match="archived"):
        conn.execute(table.insert(), [{"v": "archived"}])


@pytest.mark.parametrize(("column", "enum"), list(COLUMNS.items()), ids=str)
def test_the_models_columns_hold_their_enum_and_every_value_fits(
    column: tuple[type[Base], str], enum: type[StrEnum]
) -> None:
    model, name = column
    kind = model.__table__.c[name].type  # type: ignore[attr-defined]
    assert isinstance(kind, StrEnumColumn)
    assert kind.enum is enum
    assert max(len(m.value) for m in enum) <= kind.impl_instance.length


def test_rows_written_by_the_api_load_as_enums(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth)
    call = {"kind": "call", "subject": "Intro", "occurred_at": "2026-01-05T10:00:00Z"}
    client.post("/api/v1/deals/OPP-1/interactions", json=call, headers=auth)
    with get_store(app).session() as session:
        deal = session.scalars(sa.select(Deal)).one()
        interaction = session.scalars(sa.select(Interaction)).one()
        assert deal.status is DealStatus.OPEN
        assert (interaction.kind, interaction.status) == (
            InteractionKind.CALL,
            InteractionStatus.HELD,
        )
        assert type(interaction.status) is InteractionStatus


def test_a_meeting_cards_stamp_is_what_it_was_with_plain_strings() -> None:
    """Cards sent before the enums keep their stamps (else every card would be re-sent)."""
    outcome = {"outcome": "won", "note": None, "stage_name": None, "by": "ann", "at": "x"}
    details = MeetingDetails(chosen_at="2026-01-05T10:00:00+00:00", outcome=outcome)
    interaction = Interaction(
        deal_id=7, status=InteractionStatus.HELD, match_rule="chosen", details=details
    )
    before = (7, "held", "chosen", "2026-01-05T10:00:00+00:00", str(outcome))
    expected = "i" + hashlib.sha256(repr(before).encode()).hexdigest()[:16]
    assert interaction_stamp(interaction) == expected
