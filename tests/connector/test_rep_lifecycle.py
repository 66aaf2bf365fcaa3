"""A rep deactivated stops everything at once; reactivated, she is back. Over real HTTP: the
sandbox tenant (Graph subscriptions, Outlook, the Bot Connector), our app serving the bot and
the Graph notifications, and a fake CRM."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select, update
from werkzeug.serving import make_server

from connector.api.keys import create_key
from connector.meetings.notifications import ensure_subscriptions
from connector.microsoft365 import close as close_graph
from connector.outbox import enqueue
from connector.store.db import get_store
from connector.store.models import OutboxItem, Reminder
from connector.teams.delivery import DailyCardPayload
from sandbox.server import RunningSandbox, serve_in_background
from tests.connector.conftest import _free_port, make_app
from tests.connector.test_bot_world import (
    REP,
    WEBHOOK_SECRET,
    TeamsWorld,
    fake_crm,
    teams_sandbox,
)

__all__ = ["teams_sandbox"]


@pytest.fixture
def office(
    teams_sandbox: RunningSandbox, tmp_path: Path, migrated_template: Path
) -> Iterator[TeamsWorld]:
    """The Teams world with both channels on and Graph able to reach our notification URL."""
    sandbox = teams_sandbox
    http = requests.Session()
    http.post(f"{sandbox.base_url}/_sandbox/reset").raise_for_status()
    user = http.post(
        f"{sandbox.base_url}/_sandbox/users",
        json={"userPrincipalName": REP, "displayName": "Ann Lee"},
    )
    assert user.status_code == 201, user.text
    metadata = http.get(f"{sandbox.base_url}/_sandbox/teams/bot").json()["openIdMetadata"]
    port = _free_port()
    with fake_crm() as crm:
        app = make_app(
            tmp_path / "dealbridge.db",
            migrated_template,
            tenant_id=sandbox.tenant_id,
            client_id=sandbox.client_id,
            client_secret=sandbox.client_secret,
            login_base_url=sandbox.base_url,
            graph_base_url=sandbox.base_url,
            bot_openid_metadata_url=metadata,
            public_url=f"http://127.0.0.1:{port}",
            reminder_channels=["calendar", "teams"],
            webhook_url=crm.url,
            webhook_secret=WEBHOOK_SECRET,
        )
        server = make_server("127.0.0.1", port, app, threaded=True)
        thread = serve_in_background(server)
        bot_url = f"http://127.0.0.1:{port}/api/messages"
        http.post(f"{sandbox.base_url}/_sandbox/teams/bot", json={"endpoint": bot_url})
        with get_store(app).session() as session:
            key = create_key(session, "test-write", "write")
        world = TeamsWorld(sandbox, app, bot_url, crm, user.json()["id"], key, http)
        world.client.put(
            f"/api/v1/reps/{REP}",
            json={"display_name": "Ann Lee", "entra_id": world.rep_user_id},
            headers=world.auth,
        )
        try:
            yield world
        finally:
            server.shutdown()
            thread.join(timeout=5)
            close_graph(app)
            get_store(app).dispose()


def _state(w: TeamsWorld) -> dict[str, Any]:
    answer = w.control("GET", "/state")
    assert answer.status_code == 200
    state: dict[str, Any] = answer.json()
    return state


def _subscriptions(w: TeamsWorld) -> list[dict[str, Any]]:
    return [
        s
        for s in _state(w)["subscriptions"]
        if w.rep_user_id in s["resource"] or REP in s["resource"]
    ]


def _events(w: TeamsWorld) -> int:
    return int(_state(w)["eventsByMailbox"].get(REP, 0))


def _everything_due(w: TeamsWorld) -> None:
    """Every queued delivery due now (as if the reminders' days had come)."""
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with get_store(w.app).session() as session:
        session.execute(update(Reminder).values(due_at=past))
        session.execute(
            update(OutboxItem).where(OutboxItem.status == "pending").values(next_attempt_at=past)
        )
    w.drain()


def _open_reminders(w: TeamsWorld) -> list[Reminder]:
    with get_store(w.app).session() as session:
        found = list(
            session.scalars(
                select(Reminder).where(Reminder.rep_email == REP, Reminder.status == "open")
            )
        )
        session.expunge_all()
        return found


def _texts(activity: dict[str, Any]) -> str:
    return json.dumps(activity.get("attachments", []))


def _set_active(w: TeamsWorld, active: bool) -> None:
    answer = w.client.put(f"/api/v1/reps/{REP}", json={"active": active}, headers=w.auth)
    assert answer.status_code == 200, answer.json
    assert answer.json["active"] is active


def test_deactivating_a_rep_stops_everything_for_her_at_once(office: TeamsWorld) -> None:
    w = office
    w.install()
    w.deal(stage="negotiation")
    _everything_due(w)
    assert ensure_subscriptions(w.app) == {REP: "created"}
    assert len(_subscriptions(w)) == 1
    opened = _open_reminders(w)
    assert opened
    assert _events(w) == len(opened)
    cards = [a for a in w.chat() if a.get("attachments")]
    assert len(cards) == len(opened)

    _set_active(w, False)
    w.drain()

    assert _subscriptions(w) == []
    assert _events(w) == 0
    assert _open_reminders(w) == []
    chat = [a for a in w.chat() if a.get("attachments")]
    assert len(chat) == len(cards)  # no new card, the ones sent now say they were withdrawn
    assert all("no longer active" in _texts(a) for a in chat), [_texts(a)[:300] for a in chat]
    assert "rep.deactivated" in w.webhooks()
    [hook] = [json.loads(r.body) for r in w.crm.received if b"rep.deactivated" in r.body]
    assert hook["data"]["rep"] == REP
    assert hook["data"]["deals"] == ["OPP-1"]

    # No new card of any kind: her digest, asked for now, is not sent.
    with get_store(w.app).session() as session:
        day = dt.date.today()
        payload = DailyCardPayload(kind="digest", rep=REP, day=day)
        enqueue(session, "teams_card", f"teams_card:digest:{REP}:{day.isoformat()}", payload)
    w.drain()
    assert len([a for a in w.chat() if a.get("attachments")]) == len(cards)

    # Nothing brings her back but an admin: a CRM update of her deal plans nothing for her.
    w.deal(stage="negotiation", amount="90000.00")
    _everything_due(w)
    assert _open_reminders(w) == []
    assert len([a for a in w.chat() if a.get("attachments")]) == len(cards)
    assert _events(w) == 0
    assert ensure_subscriptions(w.app) == {}


def test_reactivating_a_rep_brings_her_back(office: TeamsWorld) -> None:
    w = office
    w.install()
    w.deal(stage="negotiation")
    _everything_due(w)
    ensure_subscriptions(w.app)
    planned = {r.key for r in _open_reminders(w)}
    _set_active(w, False)
    w.drain()

    _set_active(w, True)
    _everything_due(w)

    assert len(_subscriptions(w)) == 1
    assert {r.key for r in _open_reminders(w)} == planned
    assert _events(w) == len(planned)


def test_deleting_a_rep_stops_everything_and_forgets_her(office: TeamsWorld) -> None:
    from connector.store.models import Mailbox, RepPreference, TeamsCard, TeamsConversation

    w = office
    w.install()
    w.say("digest on")
    w.deal(stage="negotiation")
    _everything_due(w)
    ensure_subscriptions(w.app)
    assert _events(w) > 0

    answer = w.client.delete(f"/api/v1/reps/{REP}", headers=w.auth)
    assert answer.status_code == 204, answer.json
    w.drain()

    assert w.client.get(f"/api/v1/reps/{REP}", headers=w.auth).status_code == 404
    assert _subscriptions(w) == []
    assert _events(w) == 0
    assert _open_reminders(w) == []
    with get_store(w.app).session() as session:
        for table, column in (
            (TeamsConversation, TeamsConversation.rep_email),
            (TeamsCard, TeamsCard.rep_email),
            (Mailbox, Mailbox.rep_email),
            (RepPreference, RepPreference.rep_email),
        ):
            assert session.scalars(select(table).where(column == REP)).all() == [], table
    [hook] = [json.loads(r.body) for r in w.crm.received if b"rep.deactivated" in r.body]
    assert (hook["data"]["deals"], hook["data"]["deleted"]) == (["OPP-1"], True)
    assert w.client.delete(f"/api/v1/reps/{REP}", headers=w.auth).status_code == 404
