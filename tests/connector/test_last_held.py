"""A round looks up its deals' last held interactions at once (``preload_last_held``); the
re-plan's ``last_held`` of any other deal, or of the same deal a second time, still looks
its own up instead of finding nothing."""

from __future__ import annotations

import datetime as dt

from flask import Flask
from flask.testing import FlaskClient

from connector.deals.changes import get_deal
from connector.stage_reminders.replan import last_held, preload_last_held
from connector.store.db import get_store
from tests.connector.samples import deal_body

CALLED = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)


def _deal_with_a_call(client: FlaskClient, auth: dict[str, str], crm_id: str) -> None:
    assert client.put(f"/api/v1/deals/{crm_id}", json=deal_body(), headers=auth).status_code == 201
    body = {"kind": "call", "subject": "Pricing", "occurred_at": CALLED.isoformat()}
    answer = client.post(f"/api/v1/deals/{crm_id}/interactions", json=body, headers=auth)
    assert answer.status_code == 201, answer.json


def test_last_held_of_a_deal_not_preloaded_or_read_again_is_looked_up(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    _deal_with_a_call(client, auth, "OPP-1")
    _deal_with_a_call(client, auth, "OPP-2")
    now = dt.datetime.now(dt.UTC)
    with app.app_context(), get_store(app).session() as session:
        first, other = get_deal(session, "OPP-1"), get_deal(session, "OPP-2")
        held = preload_last_held(session, [first.id], now)
        assert held == {first.id: {"call": CALLED}}
        assert last_held(session, other, now) == {"call": CALLED}  # not preloaded
        assert last_held(session, first, now) == {"call": CALLED}  # preloaded
        assert last_held(session, first, now) == {"call": CALLED}  # again
