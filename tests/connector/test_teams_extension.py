"""Deal search and share (message extension), link unfurling, and the bot's `deal <text>` and
`my day`, driven as Teams drives them: signed invokes from the sandbox's simulated users
through the Bot Connector relay, answered by our app over real HTTP.

Who is who: Ann (the world's rep) and Bob both own open deals on Northwind, so each may see
the other's Northwind deals; Carol owns Contoso, which neither Ann nor Bob works on.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from connector.settings import SETTINGS_EXTENSION
from connector.store.db import get_store
from connector.store.models import Deal, Interaction, Reminder
from tests.connector.samples import deal_body
from tests.connector.test_bot_world import REP, TeamsWorld, teams_sandbox, world

__all__ = ["teams_sandbox", "world"]

BOB = "bob.stone@contoso.example"
CAROL = "carol.diaz@contoso.example"
PATTERN = "https://crm.contoso.example/deals/{deal_id}"
CARD = "application/vnd.microsoft.card.adaptive"
THUMBNAIL = "application/vnd.microsoft.card.thumbnail"


def _deal(world: TeamsWorld, crm_id: str, **fields: Any) -> None:
    body = deal_body(**{"owner": REP, "crm_url": PATTERN.format(deal_id=crm_id), **fields})
    answer = world.client.put(f"/api/v1/deals/{crm_id}", json=body, headers=world.auth)
    assert answer.status_code in (200, 201), answer.json


@pytest.fixture
def crm(world: TeamsWorld) -> TeamsWorld:
    """The world with reps Bob and Carol, a CRM link pattern, and deals on three accounts."""
    settings = world.app.extensions[SETTINGS_EXTENSION]
    world.app.extensions[SETTINGS_EXTENSION] = settings.model_copy(
        update={"crm_link_pattern": PATTERN}
    )
    for email, name in ((BOB, "Bob Stone"), (CAROL, "Carol Diaz")):
        user = world.control("POST", "/users", {"userPrincipalName": email, "displayName": name})
        assert user.status_code == 201, user.text
        answer = world.client.put(
            f"/api/v1/reps/{email}",
            json={"display_name": name, "entra_id": user.json()["id"]},
            headers=world.auth,
        )
        assert answer.status_code in (200, 201), answer.json
    northwind = {"name": "Northwind Traders", "domains": ["northwind.example"]}
    _deal(
        world,
        "OPP-1",
        title="Fleet telematics renewal",
        account=northwind,
        contacts=[{"name": "Jordan Lee", "email": "jlee@northwind.example"}],
        stage="negotiation",
    )
    _deal(
        world,
        "OPP-2",
        owner=BOB,
        title="Cold-chain sensors pilot",
        account=northwind,
        contacts=[{"name": "Sam Patel", "email": "spatel@northwind.example"}],
    )
    _deal(world, "OPP-3", owner=CAROL, title="Contoso fleet tracking", account={"name": "Contoso"})
    _deal(world, "OPP-4", title="Fabrikam ERP rollout", account={"name": "Fabrikam"})
    _deal(world, "OPP-5", title="Fleet archive (closed)", account=northwind, status="won")
    now = dt.datetime.now(dt.UTC)
    with get_store(world.app).session() as session:
        for crm_id, hours in (("OPP-1", 30), ("OPP-4", 2), ("OPP-2", 1)):
            deal = session.scalar(select(Deal).where(Deal.crm_id == crm_id))
            assert deal is not None
            deal.last_interaction_at = now - dt.timedelta(hours=hours)
        opp1 = session.scalar(select(Deal).where(Deal.crm_id == "OPP-1"))
        assert opp1 is not None
        session.add(
            Interaction(
                deal_id=opp1.id,
                kind="meeting",
                source="graph",
                external_key="test:pricing-review",
                status="held",
                subject="Pricing review",
                started_at=now - dt.timedelta(hours=30),
            )
        )
    return world


def search(world: TeamsWorld, text: str | None, who: str = REP, **extra: Any) -> dict[str, Any]:
    answer = world.control("POST", f"/teams/{who}/extension/query", {"text": text, **extra})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def unfurl(world: TeamsWorld, url: str, who: str = REP) -> dict[str, Any]:
    answer = world.control("POST", f"/teams/{who}/extension/queryLink", {"url": url})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def ids(result: dict[str, Any]) -> list[str]:
    return [r["content"]["body"][-1]["facts"][-1]["value"] for r in result["results"]]


def facts(card: dict[str, Any]) -> dict[str, str]:
    for element in card["body"]:
        if element.get("type") == "FactSet":
            return {f["title"]: f["value"] for f in element["facts"]}
    return {}


def executes(card: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(card, dict):
        if card.get("type") == "Action.Execute":
            found.append(card)
        for value in card.values():
            found += executes(value)
    elif isinstance(card, list):
        for value in card:
            found += executes(value)
    return found


def _crm_ids(result: dict[str, Any]) -> list[str]:
    return [facts(r["content"])["CRM id"] for r in result["results"]]


# --- search ----------------------------------------------------------------------------------


def test_a_search_answers_with_the_prescribed_result_list_of_deal_cards(crm: TeamsWorld) -> None:
    answer = search(crm, "fleet")

    assert answer["status"] == 200
    envelope = answer["body"]["composeExtension"]
    assert (envelope["type"], envelope["attachmentLayout"]) == ("result", "list")
    [result] = envelope["attachments"]
    assert result["contentType"] == CARD
    assert result["preview"]["contentType"] == THUMBNAIL
    assert result["preview"]["content"] == {
        "title": "Fleet telematics renewal",
        "subtitle": "Northwind Traders · Jordan Lee (jlee@northwind.example)",
        "text": "OPP-1 · Negotiation",
    }
    card = result["content"]
    assert card["version"] == "1.5"
    shown = facts(card)
    assert shown["Stage"] == "Negotiation"
    assert shown["Amount"] == "€84,000"
    assert shown["Close date"] == "31 Jan 2027"
    assert shown["Last contact"].startswith("Meeting: Pricing review")
    assert "Next reminder" in shown
    assert [a["title"] for a in card["actions"] if a["type"] == "Action.OpenUrl"] == ["Open in CRM"]


def test_own_deals_come_first_then_deals_shared_by_account(crm: TeamsWorld) -> None:
    # "northwind" matches Ann's OPP-1 and Bob's OPP-2 (same account); OPP-2 was active last,
    # yet Ann's own comes first.
    assert _crm_ids(search(crm, "northwind")) == ["OPP-1", "OPP-2"]
    assert _crm_ids(search(crm, "northwind", who=BOB)) == ["OPP-2", "OPP-1"]


def test_the_text_matches_title_account_contact_and_crm_id(crm: TeamsWorld) -> None:
    assert _crm_ids(search(crm, "TELEMATICS")) == ["OPP-1"]
    assert _crm_ids(search(crm, "fabrikam")) == ["OPP-4"]
    assert _crm_ids(search(crm, "sam patel")) == ["OPP-2"]
    assert _crm_ids(search(crm, "spatel@")) == ["OPP-2"]
    assert _crm_ids(search(crm, "opp-4")) == ["OPP-4"]
    assert _crm_ids(search(crm, "100%_")) == []


def test_an_empty_query_gives_the_rep_s_most_recently_active_deals(crm: TeamsWorld) -> None:
    # initialRun (the extension opened): own deals, most recently active first, then shared
    assert _crm_ids(search(crm, None)) == ["OPP-4", "OPP-1", "OPP-2"]
    assert _crm_ids(search(crm, "")) == ["OPP-4", "OPP-1", "OPP-2"]
    assert _crm_ids(search(crm, None, skip=1, count=1)) == ["OPP-1"]


def test_a_rep_never_finds_a_deal_they_may_not_see(crm: TeamsWorld) -> None:
    # Carol's Contoso deal and the closed Northwind deal are not offered to Ann
    assert "OPP-3" not in _crm_ids(search(crm, "fleet"))
    assert _crm_ids(search(crm, "contoso")) == []
    assert _crm_ids(search(crm, "archive")) == []
    # Carol sees only her own
    assert _crm_ids(search(crm, None, who=CAROL)) == ["OPP-3"]


def test_someone_who_is_not_a_rep_gets_a_message_not_results(crm: TeamsWorld) -> None:
    user = crm.control(
        "POST", "/users", {"userPrincipalName": "eve@contoso.example", "displayName": "Eve"}
    )
    assert user.status_code == 201

    answer = search(crm, "fleet", who="eve@contoso.example")

    envelope = answer["body"]["composeExtension"]
    assert envelope["type"] == "message"
    assert "does not know you as a rep" in envelope["text"]
    assert answer["results"] == []


def test_a_search_from_another_tenant_gets_a_message_and_no_deal(crm: TeamsWorld) -> None:
    settings = crm.app.extensions[SETTINGS_EXTENSION]
    crm.app.extensions[SETTINGS_EXTENSION] = settings.model_copy(
        update={"tenant_id": "00000000-0000-0000-0000-0000000000aa"}
    )
    answer = search(crm, "fleet")

    envelope = answer["body"]["composeExtension"]
    assert envelope["type"] == "message"
    assert "another organization" in envelope["text"]
    assert unfurl(crm, "https://crm.contoso.example/deals/OPP-1")["unfurled"] is None


# --- link unfurling --------------------------------------------------------------------------


def test_a_pasted_deal_link_unfurls_into_its_1_3_card(crm: TeamsWorld) -> None:
    answer = unfurl(crm, "https://crm.contoso.example/deals/OPP-1?tab=overview")

    envelope = answer["body"]["composeExtension"]
    assert (envelope["type"], envelope["attachmentLayout"]) == ("result", "list")
    unfurled = answer["unfurled"]
    assert unfurled["contentType"] == CARD
    assert unfurled["preview"]["content"]["title"] == "Fleet telematics renewal"
    card = unfurled["content"]
    assert card["version"] == "1.3"
    assert executes(card) == []
    assert "refresh" not in card
    assert facts(card)["CRM id"] == "OPP-1"
    # a deal shared by account unfurls too
    assert (
        facts(unfurl(crm, "https://crm.contoso.example/deals/OPP-2")["unfurled"]["content"])[
            "CRM id"
        ]
        == "OPP-2"
    )


def test_a_link_to_a_deal_the_rep_may_not_see_unfurls_to_nothing(crm: TeamsWorld) -> None:
    for url in (
        "https://crm.contoso.example/deals/OPP-3",  # Carol's
        "https://crm.contoso.example/deals/NOPE-9",  # no such deal: the same answer
        "https://elsewhere.example/deals/OPP-1",  # not the CRM's host
    ):
        answer = unfurl(crm, url)
        assert answer["unfurled"] is None, url
        envelope = answer["body"]["composeExtension"]
        assert envelope == {"type": "result", "attachmentLayout": "list", "attachments": []}
    text = str(unfurl(crm, "https://crm.contoso.example/deals/OPP-3")["body"])
    assert "Contoso fleet" not in text
    assert "Carol" not in text


def test_without_a_link_pattern_nothing_unfurls(crm: TeamsWorld) -> None:
    settings = crm.app.extensions[SETTINGS_EXTENSION]
    crm.app.extensions[SETTINGS_EXTENSION] = settings.model_copy(update={"crm_link_pattern": None})
    assert unfurl(crm, "https://crm.contoso.example/deals/OPP-1")["unfurled"] is None


def test_a_broken_invoke_value_is_answered_not_a_500(crm: TeamsWorld) -> None:
    answer = crm.control(
        "POST", f"/teams/{REP}/extension/query", {"text": "x", "commandId": "y" * 65}
    )
    assert answer.status_code == 200
    assert answer.json()["body"]["composeExtension"]["type"] == "message"


# --- a shared card in a group chat -----------------------------------------------------------


def _share(world: TeamsWorld, text: str, *members: str) -> tuple[str, str, dict[str, Any]]:
    chat = world.control("POST", "/teams/chats", {"members": [REP, *members]})
    assert chat.status_code == 201, chat.text
    chat_id = chat.json()["id"]
    [result] = search(world, text, chatId=chat_id)["results"]
    shared = world.control("POST", f"/teams/{REP}/chats/{chat_id}/messages", {"attachment": result})
    assert shared.status_code == 201, shared.text
    assert shared.json()["botAdded"] is True  # Action.Execute in it: the bot joins (JIT)
    return chat_id, shared.json()["id"], result["content"]


def _press(
    world: TeamsWorld, who: str, chat_id: str, card_id: str, verb: str, **inputs: Any
) -> dict[str, Any]:
    answer = world.control(
        "POST",
        f"/teams/{who}/chats/{chat_id}/activities/{card_id}/actions",
        {"verb": verb, "inputs": inputs},
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_shared_card_works_for_a_colleague_on_the_account_as_themselves(
    crm: TeamsWorld,
) -> None:
    chat_id, card_id, card = _share(crm, "telematics", BOB, CAROL)
    # refreshed automatically for the sharer and the reps who may see the deal
    user_ids = card["refresh"]["userIds"]
    assert any(i.startswith("8:orgid:") for i in user_ids)

    answer = _press(crm, BOB, chat_id, card_id, "note", note="Bob called Jordan.")

    assert answer["status"] == 200
    assert answer["body"]["type"] == CARD
    with get_store(crm.app).session() as session:
        note = session.scalar(select(Interaction).where(Interaction.kind == "note"))
        assert note is not None
        assert (note.text, note.created_by) == ("Bob called Jordan.", BOB)
    crm.drain()
    assert "note.logged" in crm.webhooks()


def test_a_shared_card_s_buttons_refuse_someone_who_may_not_see_the_deal(
    crm: TeamsWorld,
) -> None:
    chat_id, card_id, _ = _share(crm, "telematics", BOB, CAROL)

    answer = _press(crm, CAROL, chat_id, card_id, "note", note="Carol was here.")

    assert answer["body"]["statusCode"] == 403
    assert answer["body"]["type"] == "application/vnd.microsoft.error"
    assert "Only the deal's owner" in answer["body"]["value"]["message"]
    with get_store(crm.app).session() as session:
        assert session.scalar(select(Interaction).where(Interaction.kind == "note")) is None


def test_each_member_s_refresh_shows_their_own_view(crm: TeamsWorld) -> None:
    chat_id, card_id, _ = _share(crm, "telematics", BOB, CAROL)

    # Carol's refresh (the card lists no id of hers, so she presses refresh in the menu)
    carol = _press(crm, CAROL, chat_id, card_id, "refresh")
    carol_card = carol["body"]["value"]
    assert {a["verb"] for a in executes(carol_card)} == {"refresh"}
    assert "Only the deal's owner" in str(carol_card)
    # Bob opens the chat: listed in userIds, Teams refreshes it for him, buttons and all
    opened = crm.control("POST", f"/teams/{BOB}/chats/{chat_id}/open").json()
    [refreshed] = opened["refreshed"]
    assert refreshed["body"]["type"] == CARD
    bob_view = crm.control("GET", f"/teams/{BOB}/chats/{chat_id}").json()["cards"][0]
    assert bob_view["ownView"] is True
    assert {a["verb"] for a in executes(bob_view["attachment"]["content"])} >= {"note", "advance"}
    # Carol opening the chat triggers nothing: she is not in userIds
    assert crm.control("POST", f"/teams/{CAROL}/chats/{chat_id}/open").json()["refreshed"] == []


def test_a_colleague_moves_the_shared_deal_and_the_crm_hears_it_was_them(crm: TeamsWorld) -> None:
    chat_id, card_id, _ = _share(crm, "telematics", BOB)

    answer = _press(crm, BOB, chat_id, card_id, "advance", stage="deal_closing")

    assert answer["body"]["type"] == CARD, answer
    assert facts(answer["body"]["value"])["Stage"] != "Negotiation"
    crm.drain()
    assert "deal.stage_changed" in crm.webhooks()
    with get_store(crm.app).session() as session:
        deal = session.scalar(select(Deal).where(Deal.crm_id == "OPP-1"))
        assert deal is not None
        assert deal.stage_key == "deal_closing"
        assert deal.stage_changes[-1].changed_by == BOB


# --- the bot: deal <text>, my day, unknown text, help --------------------------------------


def test_deal_text_answers_in_the_chat_with_the_same_deal_cards(crm: TeamsWorld) -> None:
    crm.install()
    crm.say("deal northwind")

    answer = crm.chat()[-1]
    assert answer["attachmentLayout"] == "carousel"
    assert [facts(a["content"])["CRM id"] for a in answer["attachments"]] == ["OPP-1", "OPP-2"]
    searched = search(crm, "northwind")["results"][0]["content"]
    assert facts(answer["attachments"][0]["content"]) == facts(searched)

    crm.say("deal contoso")
    assert "No open deal you may see matches" in crm.chat()[-1]["text"]


def test_my_day_answers_with_the_deals_due_today(crm: TeamsWorld) -> None:
    crm.install()
    with get_store(crm.app).session() as session:
        reminder = session.scalars(
            select(Reminder)
            .join(Reminder.deal)
            .where(Deal.crm_id == "OPP-4", Reminder.status == "open")
        ).first()
        assert reminder is not None
        reminder.due_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)

    crm.say("My day")

    answer = crm.chat()[-1]
    assert answer["summary"].startswith("Your day:")
    assert facts(answer["attachments"][0]["content"])["CRM id"] == "OPP-4"


def test_unknown_text_suggests_the_commands(crm: TeamsWorld) -> None:
    crm.install()
    crm.say("what's up with northwind")

    card = crm.chat()[-1]["attachments"][0]["content"]
    text = str(card)
    assert "did not understand" in text
    for command in ("deal <text>", "my day", "reminders", "deals", "digest on|off", "help"):
        assert command in text
    assert "Try “deal northwind” or “my day”." in text


def test_help_lists_every_command_including_digest(crm: TeamsWorld) -> None:
    crm.install()
    crm.say("help")

    card = crm.chat()[-1]["attachments"][0]["content"]
    [commands] = [e for e in card["body"] if e.get("type") == "FactSet"]
    titles = [f["title"] for f in commands["facts"]]
    assert titles == [
        "deal <text>",
        "my day",
        "reminders",
        "deals",
        "digest on|off",
        "settings",
        "help",
    ]
    # the manifest's command list names the same first words
    from manifest import bot_commands

    assert {t.split()[0] if t != "my day" else t for t in titles} == set(bot_commands())
