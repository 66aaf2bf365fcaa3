"""SQLite and PostgreSQL behave the same: limits, NUL bytes, ids, time zones, JSON, migrations.

Every test here runs on both databases (``pytest`` and ``pytest --database=postgresql``):
SQLite ignores ``VARCHAR(n)``, keeps NUL bytes and stores 64-bit integers, PostgreSQL refuses
all three; the API refuses them first, with a 422 naming the field, on both.
"""

# ruff: noqa: E501  (the tables of cases read best one case a line)
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from connector.admin.cli import cli
from connector.store.db import Store, get_store
from connector.store.models import Deal, Interaction, OutboxItem
from tests.connector.samples import deal_body
from tests.databases import Template

LONG_EMAIL = f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 40}.com"  # 237 characters, valid


def _pipeline(stage_name: str = "Qualify", name: str = "Enterprise") -> dict[str, Any]:
    return {
        "name": name,
        "stages": [
            {"key": "qualify", "name": stage_name},
            {"key": "won", "name": "Won", "won": True},
        ],
    }


def _problem_fields(answer: Any) -> list[str]:
    assert answer.status_code == 422, (answer.status_code, answer.get_data(as_text=True))
    assert answer.mimetype == "application/problem+json"
    return [e["field"] for e in answer.json["errors"]]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", "/api/v1/pipelines/enterprise", _pipeline(stage_name="s" * 201), "stages.0.name"),
        ("PUT", "/api/v1/pipelines/enterprise", _pipeline(name="p" * 201), "name"),
        ("PUT", "/api/v1/deals/OPP-1", deal_body(crm_url="https://crm.example.com/" + "x" * 1990), "crm_url"),
        ("POST", "/api/v1/deals/OPP-1/interactions", {"kind": "call", "subject": "Call", "by": LONG_EMAIL}, "by"),
    ],
    ids=["stage-name", "pipeline-name", "crm-url", "interaction-by"],
)  # fmt: skip
def test_a_value_longer_than_its_column_is_a_422_naming_the_field(
    client: FlaskClient, auth: dict[str, str], method: str, path: str, body: Any, field: str
) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth)
    answer = client.open(path, method=method, json=body, headers=auth)
    assert _problem_fields(answer) == [field]


def test_values_at_their_columns_limits_are_stored_whole(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    answer = client.put(
        "/api/v1/pipelines/enterprise", json=_pipeline("s" * 200, "p" * 200), headers=auth
    )
    assert answer.status_code in (200, 201), answer.json
    stored = client.get("/api/v1/pipelines/enterprise", headers=auth).json
    assert (stored["name"], stored["stages"][0]["name"]) == ("p" * 200, "s" * 200)
    url = "https://crm.example.com/" + "x" * (2000 - len("https://crm.example.com/"))
    assert client.put(
        "/api/v1/deals/OPP-1", json=deal_body(crm_url=url), headers=auth
    ).status_code in (200, 201)
    assert client.get("/api/v1/deals/OPP-1", headers=auth).json["crm_url"] == url
    by = "r" * 60 + "@contoso.com"
    call = {"kind": "call", "subject": "S" * 500, "by": by}
    assert (
        client.post("/api/v1/deals/OPP-1/interactions", json=call, headers=auth).status_code == 201
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "location"),
    [
        ("PUT", "/api/v1/deals/OPP-1", deal_body(title="Fabrikam\x00ERP"), "title", "body"),
        ("PUT", "/api/v1/deals/OPP-1", deal_body(contacts=[{"name": "Da\x00na", "email": "dana@fabrikam.com"}]), "contacts.0.name", "body"),
        ("POST", "/api/v1/deals/OPP-1/interactions", {"kind": "note", "text": "recap\x00sent"}, "text", "body"),
        ("PUT", "/api/v1/reps/ann@contoso.com", {"display_name": "Ann\x00Lee"}, "display_name", "body"),
        ("PUT", "/api/v1/pipelines/enterprise", _pipeline(stage_name="Qual\x00ify"), "stages.0.name", "body"),
        ("GET", "/api/v1/analytics/funnel?pipeline=classic5&product=a%00b", None, "product", "query"),
        ("GET", "/api/v1/deals/ab%00c", None, "deal_id", "path"),
        ("GET", "/api/v1/pipelines/a%00b", None, "pipeline_id", "path"),
        ("GET", "/api/v1/deals/ab%00c/interactions", None, "deal_id", "path"),
    ],
    ids=["deal-title", "contact-name", "note-text", "rep-name", "stage-name", "funnel-product", "deal-path", "pipeline-path", "interactions-path"],
)  # fmt: skip
def test_a_nul_byte_is_a_422_naming_the_field(
    client: FlaskClient,
    auth: dict[str, str],
    method: str,
    path: str,
    body: Any,
    field: str,
    location: str,
) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth)
    answer = client.open(path, method=method, json=body, headers=auth)
    assert _problem_fields(answer) == [field]
    assert answer.json["errors"][0]["location"] == location


@pytest.mark.parametrize("value", [2**31, 2**63, 10**20])
@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("POST", "/api/v1/reminders/{}/done", "reminder_id"),
        ("POST", "/api/v1/reminders/{}/snooze", "reminder_id"),
        ("POST", "/api/v1/interactions/{}/deal", "interaction_id"),
    ],
)
def test_an_id_beyond_the_id_columns_is_a_422_naming_it(
    client: FlaskClient, auth: dict[str, str], method: str, path: str, field: str, value: int
) -> None:
    answer = client.open(path.format(value), method=method, json={}, headers=auth)
    assert _problem_fields(answer) == [field]
    assert answer.json["errors"][0]["location"] == "path"


def test_the_largest_id_is_a_plain_404(client: FlaskClient, auth: dict[str, str]) -> None:
    answer = client.post(f"/api/v1/reminders/{2**31 - 1}/done", json={}, headers=auth)
    assert answer.status_code == 404


# ---- types, time zones and JSON: what goes in comes out, on both ---------------------------


def test_times_are_stored_as_utc_and_come_back_aware_whatever_zone_went_in(app: Flask) -> None:
    berlin = dt.timezone(dt.timedelta(hours=1))
    written = dt.datetime(2026, 11, 23, 9, 30, 15, 123456, tzinfo=berlin)
    with get_store(app).session() as session:
        session.add(OutboxItem(kind="webhook", idempotency_key="k1", next_attempt_at=written))
    with get_store(app).session() as session:
        item = session.scalars(sa.select(OutboxItem)).one()
        raw = session.execute(sa.text("SELECT next_attempt_at FROM outbox")).scalar_one()
        due = session.scalars(
            sa.select(OutboxItem.id).where(
                OutboxItem.next_attempt_at <= dt.datetime(2026, 11, 23, 8, 30, 15, 123456, dt.UTC)
            )
        ).all()
    assert item.next_attempt_at == written
    assert item.next_attempt_at.tzinfo == dt.UTC
    assert item.next_attempt_at.hour == 8  # 09:30 in UTC+1 is 08:30 UTC
    # The column holds naive UTC on both (PostgreSQL's ``timestamp``, not ``timestamptz``, so
    # the server's TimeZone setting never shifts it).
    assert str(raw).startswith("2026-11-23 08:30:15.123456")
    assert due == [item.id]  # comparisons in SQL are in UTC too


@pytest.mark.parametrize(
    "written",
    [
        dt.datetime(2026, 11, 23, 8, 30, tzinfo=dt.UTC),  # no microseconds: still six digits
        dt.datetime(2026, 11, 23, 8, 30, 15, 1, tzinfo=dt.UTC),
        dt.datetime(1, 1, 1, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),  # year 1, UTC+1
        dt.datetime(2026, 3, 29, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=-9, minutes=-30))),
    ],
)
def test_a_time_is_stored_as_the_text_sqlalchemy_writes_and_compares_in_utc(
    app: Flask, written: dt.datetime
) -> None:
    """SQLite keeps times as text, compared as text: the store's own writer (one function,
    ``UTCDateTime.bind_processor``) writes exactly SQLAlchemy's DATETIME format."""
    with get_store(app).session() as session:
        session.add(OutboxItem(kind="webhook", idempotency_key="k1", next_attempt_at=written))
    with get_store(app).session() as session:
        item = session.scalars(sa.select(OutboxItem)).one()
        raw = session.execute(sa.text("SELECT next_attempt_at FROM outbox")).scalar_one()
        earlier = written - dt.timedelta(microseconds=1)
        due = session.scalars(
            sa.select(OutboxItem.id).where(OutboxItem.next_attempt_at > earlier)
        ).all()
    utc = written.astimezone(dt.UTC).replace(tzinfo=None)
    sqlalchemy_text = sa.DateTime().dialect_impl(sa.dialects.sqlite.dialect())
    expected = sqlalchemy_text.bind_processor(sa.dialects.sqlite.dialect())(utc)  # type: ignore[misc]
    assert item.next_attempt_at == written
    assert str(raw) == (expected if isinstance(raw, str) else str(utc))
    assert due == [item.id]


def test_naive_times_are_refused_by_the_store_on_both(app: Flask) -> None:
    with (
        pytest.raises(sa.exc.StatementError, match="naive datetime"),
        get_store(app).session() as session,
    ):
        session.add(
            OutboxItem(
                kind="webhook", idempotency_key="k2", next_attempt_at=dt.datetime(2026, 1, 1)
            )
        )


def test_json_keeps_types_order_unicode_and_nesting(app: Flask) -> None:
    payload = {
        "b": 1,
        "a": [1, 2.5, True, None, "x"],
        "nested": {"deep": {"deeper": ["ü", "日本", "emoji 🤝"]}},
        "big": 2**53,
        "escaped": 'quote " backslash \\ nul-escape-free',
    }
    with get_store(app).session() as session:
        session.add(OutboxItem(kind="webhook", idempotency_key="k3", payload=payload))
    with get_store(app).session() as session:
        item = session.scalars(sa.select(OutboxItem)).one()
        assert item.payload == payload
        assert list(item.payload) == ["b", "a", "nested", "big", "escaped"]  # key order kept
        item.payload = {**item.payload, "b": 2}
    with get_store(app).session() as session:
        assert session.scalars(sa.select(OutboxItem)).one().payload["b"] == 2


def test_json_is_stored_as_text_any_json_reader_reads_and_odd_values_are_refused(
    app: Flask,
) -> None:
    payload = {"name": "Zoë 日本", "n": [1, 2.5, None], "ok": True}
    with get_store(app).session() as session:
        session.add(OutboxItem(kind="webhook", idempotency_key="k4", payload=payload))
    with get_store(app).session() as session:
        raw = session.execute(sa.text("SELECT payload FROM outbox")).scalar_one()
        text = raw if isinstance(raw, str) else json.dumps(raw)  # psycopg parses json itself
        assert json.loads(text) == payload
        if isinstance(raw, str):
            assert "Zoë 日本" in raw  # kept as UTF-8, not \u-escaped
    # SQLAlchemy wraps the error on SQLite; psycopg writes JSON itself, after SQLAlchemy
    with (
        pytest.raises((sa.exc.StatementError, ValueError), match="serialize"),
        get_store(app).session() as session,
    ):
        session.add(OutboxItem(kind="webhook", idempotency_key="k5", payload={"x": object()}))


def test_amounts_keep_their_cents_and_dates_their_day(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    """15 digits: SQLite's NUMERIC is a double (16 digits came back ...56.75 for ...56.78)."""
    body = deal_body(amount="9999999999999.99", expected_close_date="2200-12-31")
    assert client.put("/api/v1/deals/OPP-1", json=body, headers=auth).status_code in (200, 201)
    stored = client.get("/api/v1/deals/OPP-1", headers=auth).json
    assert (stored["amount"], stored["expected_close_date"]) == ("9999999999999.99", "2200-12-31")
    too_many = client.put(
        "/api/v1/deals/OPP-2", json=deal_body(amount="12345678901234.56"), headers=auth
    )
    assert _problem_fields(too_many) == ["amount"]


def test_listing_is_in_a_stated_order_not_the_storage_order(
    client: FlaskClient, auth: dict[str, str], app: Flask
) -> None:
    for n in (3, 1, 2):
        client.put(f"/api/v1/deals/OPP-{n}", json=deal_body(), headers=auth)
    with get_store(app).session() as session:  # rewrite a row: PostgreSQL moves it to the end
        deal = session.scalars(sa.select(Deal).where(Deal.crm_id == "OPP-3")).one()
        deal.title = "Renamed"
    first = client.get("/api/v1/deals", headers=auth).json["items"]
    again = client.get("/api/v1/deals", headers=auth).json["items"]
    assert [d["id"] for d in first] == [d["id"] for d in again]
    assert len(first) == 3


# ---- locking: a writer waits for another, on both --------------------------------------------


def test_a_second_writer_waits_for_the_first_and_sees_its_write(app: Flask) -> None:
    """``write_lock``: BEGIN IMMEDIATE on SQLite, row locks (FOR UPDATE) on PostgreSQL."""
    import threading

    from connector.store.db import write_lock

    store = get_store(app)
    with store.session() as session:
        session.add(
            Interaction(kind="note", source="api", external_key="x", status="held", subject="0")
        )
    inside = threading.Event()
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            with store.session() as session:
                write_lock(session)
                row = session.scalars(
                    sa.select(Interaction).where(Interaction.external_key == "x").with_for_update()
                ).one()
                inside.set()
                row.subject = str(int(row.subject or "0") + 1)
                threading.Event().wait(0.2)  # hold the lock while the other tries
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=bump)
    first.start()
    inside.wait(10)
    bump()  # must wait for the first and read its committed value
    first.join(10)
    assert errors == []
    with store.session() as session:
        assert session.scalars(sa.select(Interaction.subject)).one() == "2"


# ---- migrations ----------------------------------------------------------------------------


def test_db_upgrade_migrates_an_empty_database_to_head(
    tmp_path: Path, migrated_template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = migrated_template.empty(tmp_path / "empty.db")
    monkeypatch.setenv("DEALBRIDGE_DATABASE_URL", url)
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    store = Store(url)
    try:
        assert store.is_current()
        tables = set(sa.inspect(store.engine).get_table_names())
        assert {"deals", "interactions", "outbox", "reminders", "mailboxes"} <= tables
    finally:
        store.dispose()


def test_the_migrated_schema_matches_the_models(app: Flask) -> None:
    """Alembic's autogenerate finds nothing to do: migrations and models agree on this database."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from connector.store.models import Base

    with get_store(app).engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = [
            d
            for d in compare_metadata(context, Base.metadata)
            if not (isinstance(d, tuple) and d[0] == "remove_table")  # APScheduler's own table
        ]
    assert differences == []


# ---- the admin guide's URL, and which database we use --------------------------------------


def test_the_admin_guides_postgresql_url_makes_a_store_and_is_shown_masked() -> None:
    """``postgresql+psycopg://`` needs the ``dealbridge[postgres]`` extra (psycopg 3)."""
    store = Store("postgresql+psycopg://dealbridge:s3cret-pw@db.contoso.com/dealbridge")
    try:
        assert store.engine.dialect.driver == "psycopg"
        assert store.display_url == "postgresql+psycopg://dealbridge:***@db.contoso.com/dealbridge"
    finally:
        store.dispose()


def test_doctor_names_the_database_it_checked_with_the_password_masked(
    tmp_path: Path, migrated_template: Template
) -> None:
    from connector.admin.doctor import run_checks
    from tests.connector.conftest import make_app

    url = migrated_template.fresh(tmp_path / "doctor.db")
    if url.startswith("postgresql"):  # the throwaway cluster trusts any password
        url = url.replace("postgres@", "postgres:s3cret-pw@")
    app = make_app(tmp_path / "unused.db", migrated_template, database_url=url)
    try:
        line = next(r for r in run_checks(app) if r.name == "Database migrations")
    finally:
        get_store(app).dispose()
    assert line.status == "ok", line.detail
    assert get_store(app).display_url in line.detail
    assert "s3cret-pw" not in line.detail
    assert "is at the newest revision" in line.detail


def test_a_nul_byte_in_one_bulk_item_fails_that_item_naming_its_field(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    fine, with_nul = (
        deal_body(),
        deal_body(contacts=[{"name": "Da\x00na", "email": "dana@fabrikam.com"}]),
    )
    body = {"deals": [fine | {"id": "OPP-1"}, with_nul | {"id": "OPP-2"}]}
    answer = client.post("/api/v1/deals:bulk", json=body, headers=auth)
    assert answer.status_code == 200, answer.json
    assert (answer.json["created"], answer.json["failed"]) == (1, 1)
    failed = answer.json["items"][1]
    assert [e["field"] for e in failed["errors"]] == ["deals.1.contacts.0.name"]


def test_the_text_backslash_u0000_is_not_a_nul_byte(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    """The body is searched for the escape ``\\u0000`` once; an escaped backslash before
    ``u0000`` is six plain characters, stored as sent (the fields are then each looked at)."""
    title = "Fabrikam \\u0000 ERP"
    answer = client.put("/api/v1/deals/OPP-1", json=deal_body(title=title), headers=auth)
    assert answer.status_code == 201, answer.json
    assert client.get("/api/v1/deals/OPP-1", headers=auth).json["title"] == title
