"""Proactive delivery against the sandbox's Bot Connector: send, update, blocked, throttled,
idempotent retries, and a rep the bot has never heard from (install through Graph)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, select

from connector.meetings.sync import sync_mailbox
from connector.outbox import Delivered, DrainReport, delivery_of, drain
from connector.store.db import get_store
from connector.store.models import (
    Deal,
    OutboxItem,
    Reminder,
    TeamsCard,
    TeamsConversation,
    utcnow,
)
from connector.teams.delivery import deliver_reminders
from sandbox.config import ALL_ROLES
from tests.connector.conftest import meeting
from tests.connector.test_bot_world import REP, TeamsWorld, teams_sandbox, world

__all__ = ["teams_sandbox", "world"]
TEAMS_APP_ID = "5e0d7a36-9f7b-4d8e-a1c2-3b4c5d6e7f80"


def _colleague_installs(world: TeamsWorld) -> None:
    """Someone else in the tenant talks to the bot: Teams' serviceUrl becomes known."""
    bo = "bo@contoso.example"
    world.control("POST", "/users", {"userPrincipalName": bo, "displayName": "Bo Berg"})
    world.install(bo)


def _due_card(world: TeamsWorld) -> int:
    world.deal(stage="negotiation")
    return world.due_reminder()


def _key(world: TeamsWorld, reminder_id: int) -> str:
    with get_store(world.app).session() as session:
        reminder = session.get(Reminder, reminder_id)
        assert reminder is not None
        return f"teams:{reminder.key}"


def _conversation(world: TeamsWorld) -> TeamsConversation:
    with get_store(world.app).session() as session:
        found = session.scalar(select(TeamsConversation).where(TeamsConversation.rep_email == REP))
        assert found is not None
        session.expunge(found)
        return found


def test_a_due_reminder_appears_as_a_card_in_the_reps_chat(world: TeamsWorld) -> None:
    install = world.install()
    reminder_id = _due_card(world)

    world.drain()

    [sent] = world.chat()
    card = sent["attachments"][0]["content"]
    assert sent["summary"].startswith("Reminder: ")
    assert card["refresh"]["userIds"] == [install["teamsUserId"]]
    with get_store(world.app).session() as session:
        stored = session.scalar(select(TeamsCard).where(TeamsCard.key == f"reminder:{reminder_id}"))
        assert stored is not None
        assert (stored.activity_id, stored.rep_email) == (sent["id"], REP)


def test_done_from_the_api_updates_the_same_card(world: TeamsWorld) -> None:
    world.install()
    reminder_id = _due_card(world)
    world.drain()

    world.client.post(f"/api/v1/reminders/{reminder_id}/done", json={}, headers=world.auth)
    world.drain()

    [sent] = world.chat()
    assert sent["versions"] == 2
    assert "Done by" in json_text(sent)


def json_text(activity: dict[str, object]) -> str:
    import json

    return json.dumps(activity, ensure_ascii=False)


def test_a_retried_delivery_never_posts_a_second_card(world: TeamsWorld) -> None:
    world.install()
    reminder_id = _due_card(world)
    world.drain()
    item = world.outbox(_key(world, reminder_id))

    outcomes = dict(deliver_reminders(world.app, [delivery_of(world.app, item)]))

    assert len(world.chat()) == 1
    assert outcomes[item.id] == Delivered({"skipped": "the card is current"})


def test_a_rep_who_blocked_the_bot_is_recorded_and_not_retried(world: TeamsWorld) -> None:
    world.install()
    world.control("POST", f"/teams/{REP}/block", {"blocked": True})
    reminder_id = _due_card(world)

    first = world.drain()
    again = world.drain()

    item = world.outbox(_key(world, reminder_id))
    assert (first.failed, item.status) == (1, "dead")
    assert again.claimed == 0
    conversation = _conversation(world)
    assert conversation.blocked_at is not None
    assert "ConversationBlockedByUser" in (conversation.blocked_reason or "")
    assert world.chat() == []


def test_throttling_is_retried_after_the_connectors_retry_after(world: TeamsWorld) -> None:
    world.install()
    reminder_id = _due_card(world)
    world.control("POST", "/faults", {"route": "teams/v3", "status": 429, "retryAfter": 120})

    report = world.drain()

    item = world.outbox(_key(world, reminder_id))
    assert (report.retried, item.status) == (1, "pending")
    assert item.next_attempt_at >= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=110)
    assert "429" in (item.last_error or "")


def test_a_rep_the_bot_never_heard_from_gets_the_app_installed_through_graph(
    world: TeamsWorld,
) -> None:
    world.app.extensions["dealbridge.settings"] = world.app.extensions[
        "dealbridge.settings"
    ].model_copy(update={"teams_app_id": TEAMS_APP_ID})
    world.control("POST", "/teamsApps", {"externalId": TEAMS_APP_ID, "displayName": "DealBridge"})
    roles = world.control("GET", "/settings").json()["roles"]
    world.control("PATCH", "/settings", {"roles": [*roles, "AppCatalog.Read.All"]})
    _colleague_installs(world)
    reminder_id = _due_card(world)

    world.drain()

    sent = world.chat()
    assert len(sent) == 1, (world.outbox(_key(world, reminder_id)).last_error, _rows(world))
    assert world.control("GET", f"/teams/{REP}").json()["installed"] is True
    assert sent[0]["summary"].startswith("Reminder: ")
    conversation = _conversation(world)
    assert conversation.conversation_id == sent[0]["conversation"]["id"]
    assert conversation.fallback_reason is None


def test_without_permission_to_install_the_reason_is_recorded(world: TeamsWorld) -> None:
    world.app.extensions["dealbridge.settings"] = world.app.extensions[
        "dealbridge.settings"
    ].model_copy(update={"teams_app_id": TEAMS_APP_ID})
    _colleague_installs(world)
    reminder_id = _due_card(world)

    world.drain()

    assert world.outbox(_key(world, reminder_id)).status == "dead"
    reason = _conversation(world).fallback_reason or ""
    assert "cannot install the app" in reason
    assert "AppCatalog.Read.All" in reason


def test_meeting_cards_queued_by_the_meeting_sync_are_delivered(world: TeamsWorld) -> None:
    from tests.connector.test_bot_actions import _meeting

    world.install()
    world.deal("OPP-1")
    meeting = _meeting(world, status="held", on="OPP-1")
    with get_store(world.app).session() as session:
        session.add(
            OutboxItem(
                kind="teams_card",
                idempotency_key=f"teams_card:meeting_logged:{meeting}:{REP}",
                payload={"kind": "meeting_logged", "interaction_id": meeting, "rep": REP},
            )
        )

    world.drain()

    [sent] = world.chat()
    assert sent["summary"] == "Meeting logged on Fabrikam ERP rollout"


def _rows(world: TeamsWorld) -> list[tuple[str | None, str, str | None]]:
    with get_store(world.app).session() as session:
        return [
            (c.rep_email, c.service_url, c.conversation_id)
            for c in session.scalars(select(TeamsConversation))
        ]


# --- an answer lost after the Bot Connector posted -------------------------------------------

CHAT_READ_ROLES = [*ALL_ROLES, "Chat.Read.All"]


def _lose_next_post(world: TeamsWorld, how: str = "lost") -> None:
    fault = {"route": "POST .*/activities$", "status": how, "count": 1}
    assert world.control("POST", "/faults", fault).status_code == 201


def _grant(world: TeamsWorld, roles: list[str]) -> None:
    # before the app's first token: the roles claim is read when a token is issued
    assert world.control("PATCH", "/settings", {"roles": roles}).status_code == 200


def _retry_all(world: TeamsWorld) -> DrainReport:
    return drain(world.app, now=utcnow() + dt.timedelta(hours=2))


@pytest.mark.parametrize("how", ["lost", "lost_reset"])
def test_a_card_whose_answer_was_lost_is_found_in_the_chat_not_posted_again(
    world: TeamsWorld, how: str
) -> None:
    _grant(world, CHAT_READ_ROLES)
    world.install()
    reminder_id = _due_card(world)
    _lose_next_post(world, how)

    first = world.drain()
    assert (first.uncertain, first.delivered) == (1, 0)
    assert len(world.chat()) == 1  # the Connector posted it; we did not hear back
    _retry_all(world)

    [sent] = world.chat()
    item = world.outbox(_key(world, reminder_id))
    assert item.status == "done"
    assert item.result == {"activity": sent["id"], "action": "found", "lost_answers": 1}
    with get_store(world.app).session() as session:
        card = session.scalar(select(TeamsCard).where(TeamsCard.key == f"reminder:{reminder_id}"))
        assert card is not None
        assert card.activity_id == sent["id"]  # later changes update this very card


def test_without_chat_read_a_lost_answer_is_posted_again_and_counted(world: TeamsWorld) -> None:
    world.install()
    reminder_id = _due_card(world)
    _lose_next_post(world)

    world.drain()
    _retry_all(world)

    assert len(world.chat()) == 2  # the documented trade-off: a duplicate, never a missed card
    item = world.outbox(_key(world, reminder_id))
    assert item.status == "done"
    assert item.result["unchecked_repeats"] == 1
    assert item.result["lost_answers"] == 1


def test_a_card_lost_before_the_post_is_posted_after_looking(world: TeamsWorld) -> None:
    _grant(world, CHAT_READ_ROLES)
    world.install()
    reminder_id = _due_card(world)
    fault = {"route": "POST .*/activities$", "status": "timeout", "count": 1, "timeoutSeconds": 0}
    assert world.control("POST", "/faults", fault).status_code == 201

    world.drain()  # a 504 the Connector gave without posting: uncertain for us all the same
    _retry_all(world)

    [sent] = world.chat()
    item = world.outbox(_key(world, reminder_id))
    assert (item.status, item.result["action"]) == ("done", "send")
    assert item.result["activity"] == sent["id"]


# --- a meeting round moves reminders whose cards were sent ----------------------------------

ACCOUNTS = ("fabrikam.com", "northwind.com", "tailspin.com")


def _card_for_first_reminder(world: TeamsWorld, crm_id: str) -> int:
    """Post the card of the deal's first open reminder (as if its day had come)."""
    now = dt.datetime.now(dt.UTC)
    with get_store(world.app).session() as session:
        reminder = session.scalars(
            select(Reminder)
            .join(Reminder.deal)
            .where(Deal.crm_id == crm_id, Reminder.status == "open")
            .order_by(Reminder.due_at, Reminder.id)
        ).first()
        assert reminder is not None
        reminder.due_at = now - dt.timedelta(minutes=1)
        item = session.scalar(
            select(OutboxItem).where(OutboxItem.idempotency_key == f"teams:{reminder.key}")
        )
        assert item is not None
        item.next_attempt_at, item.status = now - dt.timedelta(seconds=1), "pending"
        reminder_id = reminder.id
    world.drain()
    return reminder_id


def test_a_meeting_round_refreshes_the_sent_cards_of_the_reminders_it_moved_asking_once(
    world: TeamsWorld,
) -> None:
    """Three deals' reminders move when their meetings are logged; two had their cards sent.
    Those two cards show the new state, the third gets none, and the round asks once which
    cards were sent, not once per reminder it moved."""
    world.install()
    for n, domain in enumerate(ACCOUNTS, 1):
        account = {"name": domain.split(".")[0].title(), "domains": [domain]}
        contacts = [{"name": "Buyer", "email": f"buyer@{domain}"}]
        world.deal(f"OPP-{n}", stage="negotiation", account=account, contacts=contacts)
    sent = {_card_for_first_reminder(world, crm) for crm in ("OPP-1", "OPP-2")}
    posted = {a["id"]: a for a in world.chat()}
    assert len(posted) == 2
    held = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=3)
    for domain in ACCOUNTS:
        body = meeting(f"Review with {domain}", held, [f"buyer@{domain}"])
        assert world.control("POST", f"/users/{REP}/events", body).status_code == 201
    statements: list[str] = []
    engine = get_store(world.app).engine
    listen = lambda *a: statements.append(a[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listen)
    try:
        report = sync_mailbox(world.app, REP)
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert report.error is None, report.error

    with get_store(world.app).session() as session:
        moved = session.scalars(select(Reminder).where(Reminder.version > 1)).all()
        assert {r.id for r in moved} >= sent
        assert len(moved) > len(sent)  # reminders without a card moved too
        refreshes = session.scalars(
            select(OutboxItem).where(OutboxItem.idempotency_key.like("teams_card:reminder_%"))
        ).all()
        assert {i.payload["reminder_id"] for i in refreshes} == sent
    lookups = [s for s in statements if "FROM teams_cards" in s]
    assert len(lookups) == 1, lookups
    world.drain()
    after = {a["id"]: a for a in world.chat() if a["id"] in posted}
    assert [a["versions"] for a in after.values()] == [2, 2]


def test_a_new_deals_reminder_never_takes_over_the_card_of_a_deleted_deals(
    world: TeamsWorld,
) -> None:
    """The newest deal is deleted after its reminder's card was sent; the next deal's reminders
    must not inherit that card (SQLite gives a deleted top id again unless told not to): its
    first reminder is posted as a card of its own, and the old card is left as it was."""
    world.install()
    world.deal("OPP-1", stage="negotiation")
    old = _card_for_first_reminder(world, "OPP-1")
    answer = world.client.delete("/api/v1/deals/OPP-1", headers=world.auth)
    assert answer.status_code == 204
    world.drain()
    before = {a["id"]: a["versions"] for a in world.chat()}

    world.deal("OPP-2", stage="negotiation")
    new = _card_for_first_reminder(world, "OPP-2")

    chat = world.chat()
    assert len(chat) == len(before) + 1
    assert {a["id"]: a["versions"] for a in chat if a["id"] in before} == before
    with get_store(world.app).session() as session:
        ids = set(session.scalars(select(Reminder.id)))
    assert old not in ids  # no reminder of the new deal answers to the deleted one's id
    assert new != old
