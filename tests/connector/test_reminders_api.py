"""Reminders kept true: planned on every change, snoozed and done through the API."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from connector.store.db import get_store
from connector.store.models import OutboxItem
from tests.connector.samples import deal_body


def _reminders(client: FlaskClient, auth: dict[str, str], deal: str = "OPP-1") -> list[dict]:  # type: ignore[type-arg]
    return client.get(f"/api/v1/deals/{deal}/reminders", headers=auth).json["items"]  # type: ignore[no-any-return]


def _outbox(app: Flask) -> dict[str, OutboxItem]:
    with get_store(app).session() as session:
        return {o.idempotency_key: o for o in session.scalars(select(OutboxItem))}


def test_entering_a_stage_plans_its_reminders(client: FlaskClient, auth: dict[str, str]) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="lead_generation"), headers=auth)
    reminders = _reminders(client, auth)
    assert {r["rule"] for r in reminders} == {"first-contact", "qualify-or-drop"}
    assert all(r["status"] == "open" for r in reminders)
    assert all("Fabrikam" in r["title"] or "Fabrikam" in r["message"] for r in reminders)


def test_due_times_fall_in_the_reps_working_hours(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    client.put(
        "/api/v1/reps/ann.lee@contoso.com",
        json={"time_zone": "America/Los_Angeles", "work_start": "08:00", "work_end": "16:00"},
        headers=auth,
    )
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth)
    for reminder in _reminders(client, auth):
        local = dt.datetime.fromisoformat(reminder["due_at"]).astimezone(
            ZoneInfo("America/Los_Angeles")
        )
        assert local.isoweekday() <= 5
        assert dt.time(8) <= local.time() <= dt.time(16)


def test_a_stage_change_cancels_the_old_reminders_and_withdraws_them(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="lead_generation"), headers=auth)
    old = _reminders(client, auth)
    client.post("/api/v1/deals/OPP-1/stage", json={"stage": "deal_closing"}, headers=auth)
    after = {r["rule"]: r for r in _reminders(client, auth)}
    assert after["first-contact"]["status"] == "cancelled"
    assert after["send-contract"]["status"] == "open"
    outbox = _outbox(app)
    withdrawn = [outbox[f"calendar:{key}"] for key in _keys(app, old)]
    assert all(item.payload["version"] == 2 for item in withdrawn)
    assert all(item.next_attempt_at <= dt.datetime.now(dt.UTC) for item in withdrawn)


def _keys(app: Flask, reminders: list[dict]) -> list[str]:  # type: ignore[type-arg]
    from connector.store.models import Reminder

    with get_store(app).session() as session:
        return [session.get(Reminder, r["id"]).key for r in reminders]  # type: ignore[union-attr]


def test_a_won_deal_has_no_open_reminders(client: FlaskClient, auth: dict[str, str]) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth)
    client.post("/api/v1/deals/OPP-1/stage", json={"stage": "won"}, headers=auth)
    assert {r["status"] for r in _reminders(client, auth)} == {"cancelled"}


def test_a_held_call_resets_the_idle_reminder(client: FlaskClient, auth: dict[str, str]) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth)
    idle = next(r for r in _reminders(client, auth) if r["kind"] == "idle")
    call = {
        "kind": "call",
        "subject": "Pricing",
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    client.post("/api/v1/deals/OPP-1/interactions", json=call, headers=auth)
    idles = [r for r in _reminders(client, auth) if r["kind"] == "idle"]
    by_id = {r["id"]: r for r in idles}
    assert by_id[idle["id"]]["status"] == "cancelled"
    fresh = [r for r in idles if r["status"] == "open"]
    assert len(fresh) == 1
    assert fresh[0]["id"] != idle["id"]
    assert fresh[0]["due_at"] >= idle["due_at"]


def test_put_again_keeps_reminders_as_they_are(client: FlaskClient, auth: dict[str, str]) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth)
    before = _reminders(client, auth)
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth)
    assert _reminders(client, auth) == before


def test_snooze_and_done(app: Flask, client: FlaskClient, auth: dict[str, str]) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth)
    first, second = _reminders(client, auth)[:2]
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(microsecond=0)
    snoozed = client.post(
        f"/api/v1/reminders/{first['id']}/snooze", json={"until": until.isoformat()}, headers=auth
    )
    assert snoozed.status_code == 200
    assert snoozed.json["status"] == "snoozed"
    assert snoozed.json["snoozed_until"] == until.isoformat().replace("+00:00", "Z")
    by_option = client.post(
        f"/api/v1/reminders/{second['id']}/snooze", json={"option": "next_week"}, headers=auth
    )
    assert by_option.json["status"] == "snoozed"
    done = client.post(f"/api/v1/reminders/{first['id']}/done", json={}, headers=auth)
    assert done.json["status"] == "done"
    assert done.json["done_by"] == "key:test-write"
    again = client.post(f"/api/v1/reminders/{first['id']}/done", json={}, headers=auth)
    assert again.status_code == 200
    late = client.post(
        f"/api/v1/reminders/{first['id']}/snooze", json={"option": "1d"}, headers=auth
    )
    assert late.status_code == 409
    listed = client.get("/api/v1/reminders?rep=ann.lee@contoso.com", headers=auth).json["items"]
    assert first["id"] not in {r["id"] for r in listed}
    assert client.post("/api/v1/reminders/999999/done", json={}, headers=auth).status_code == 404


def test_snooze_needs_exactly_one_of_until_or_option(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth)
    rid = _reminders(client, auth)[0]["id"]
    for body in [{}, {"until": "2030-01-01T09:00:00Z", "option": "1d"}, {"option": "fortnight"}]:
        assert (
            client.post(f"/api/v1/reminders/{rid}/snooze", json=body, headers=auth).status_code
            == 422
        )
    past = client.post(
        f"/api/v1/reminders/{rid}/snooze", json={"until": "2020-01-01T00:00:00Z"}, headers=auth
    )
    assert past.json["errors"][0]["field"] == "until"


def test_list_reminders_due_before(client: FlaskClient, auth: dict[str, str]) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth)
    everything = client.get("/api/v1/reminders", headers=auth).json["items"]
    cutoff = everything[0]["due_at"]
    early = client.get("/api/v1/reminders", query_string={"due_before": cutoff}, headers=auth).json
    assert early["items"] == []


def test_a_bad_rule_duration_is_a_422_naming_it(client: FlaskClient, auth: dict[str, str]) -> None:
    body = {
        "name": "Enterprise",
        "stages": [
            {
                "key": "pilot",
                "name": "Pilot",
                "rules": [{"kind": "on_enter", "after": "3 fortnights", "message": "Hi"}],
            }
        ],
    }
    answer = client.put("/api/v1/pipelines/enterprise", json=body, headers=auth)
    assert answer.status_code == 422
    assert answer.json["errors"][0]["field"].startswith("stages.0.rules.0")
    assert "fortnights" in answer.json["detail"]
    body["stages"][0]["rules"] = [
        {"kind": "on_enter", "after": "2 business days", "message": "{deal.nope}"}
    ]  # type: ignore[index]
    template = client.put("/api/v1/pipelines/enterprise", json=body, headers=auth)
    assert template.status_code == 422
    assert "nope" in template.json["detail"]


def test_deleting_a_deal_withdraws_its_reminders(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth)
    client.delete("/api/v1/deals/OPP-1", headers=auth)
    calendar = [o for k, o in _outbox(app).items() if k.startswith("calendar:")]
    assert calendar
    assert all(o.payload["version"] == 2 for o in calendar)


def _set(app: Flask, rule: str, occurrence: str | None = None, **fields: object) -> int:
    from connector.store.models import Reminder

    with get_store(app).session() as session:
        query = select(Reminder).where(Reminder.rule_id == rule)
        if occurrence is not None:
            query = query.where(Reminder.occurrence == occurrence)
        reminder = session.scalars(query).one()
        for name, value in fields.items():
            setattr(reminder, name, value)
        return reminder.id


def test_overdue_means_past_due_and_stage_deadline_is_the_slas_limit(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    now = dt.datetime.now(dt.UTC)
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth)
    late = _set(app, "gone-quiet", due_at=now - dt.timedelta(days=13))
    limit = _set(app, "negotiation-stalls", "overdue", due_at=now + dt.timedelta(days=3))
    warning = _set(app, "negotiation-stalls", "warn", due_at=now - dt.timedelta(days=1))
    snoozed = _set(
        app,
        "prepare-close",
        due_at=now - dt.timedelta(days=2),
        status="snoozed",
        snoozed_until=now + dt.timedelta(days=1),
    )

    listed = client.get("/api/v1/reminders", headers=auth).json["items"]

    by_id = {r["id"]: r for r in listed}
    assert (by_id[late]["overdue"], by_id[late]["stage_deadline"]) == (True, False)
    assert (by_id[limit]["overdue"], by_id[limit]["stage_deadline"]) == (False, True)
    assert (by_id[warning]["overdue"], by_id[warning]["stage_deadline"]) == (True, False)
    assert by_id[snoozed]["overdue"] is False  # put off until tomorrow: not late yet
    client.post(f"/api/v1/reminders/{late}/done", json={}, headers=auth)
    done = {r["id"]: r for r in _reminders(client, auth)}[late]
    assert (done["status"], done["overdue"]) == ("done", False)  # nothing left to be late


def test_the_api_and_the_teams_list_agree_on_what_is_overdue(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    from connector.settings import current_settings
    from connector.store.models import Rep
    from connector.teams.views import my_reminders_view

    now = dt.datetime.now(dt.UTC)
    client.put("/api/v1/reps/ann.lee@contoso.com", json={"time_zone": "UTC"}, headers=auth)
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth)
    _set(app, "gone-quiet", due_at=now - dt.timedelta(days=13))
    listed = client.get("/api/v1/reminders", headers=auth).json["items"]
    with app.app_context(), get_store(app).session() as session:
        rep = session.scalars(select(Rep).where(Rep.email == "ann.lee@contoso.com")).one()
        view = my_reminders_view(session, rep, current_settings(), now)
    on_the_card = {int(line.reminder_id): line.overdue for line in view.reminders}
    assert on_the_card == {r["id"]: r["overdue"] for r in listed}
    assert sum(on_the_card.values()) == 1


def test_the_openapi_schema_says_what_overdue_and_stage_deadline_mean(
    client: FlaskClient,
) -> None:
    schemas = client.get("/api/openapi.json").json["components"]["schemas"]
    fields = schemas["ReminderOut"]["properties"]
    assert "Past its due time" in fields["overdue"]["description"]
    assert "deadline" in fields["stage_deadline"]["description"]


def test_a_replan_of_many_deals_inside_another_tells_its_changes_once_at_the_outer_end(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    from typing import Any

    from connector.deals.changes import announce
    from connector.signals import reminders_changed
    from connector.stage_reminders.replan import deferred_deliveries
    from connector.store.models import Deal, Reminder, utcnow

    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth)
    told: list[list[int]] = []

    def receiver(_session: Any, *, reminders: Any, now: dt.datetime) -> None:
        told.append(sorted(r.id for r in reminders))

    reminders_changed.connect(receiver)
    try:
        with get_store(app).session() as session:
            deal = session.scalar(select(Deal))
            moved = session.scalars(select(Reminder).where(Reminder.status == "open")).first()
            assert deal is not None
            assert moved is not None
            moved.due_at -= dt.timedelta(days=3)  # the re-plan puts it back: a change
            settings, now = app.extensions["dealbridge.settings"], utcnow()
            with deferred_deliveries(session, settings, now):
                with deferred_deliveries(session, settings, now):
                    announce(session, deal, now)
                assert told == []  # the inner one joined the outer
            assert told == [[moved.id]]
    finally:
        reminders_changed.disconnect(receiver)
