"""The deals API: upsert, history, bulk, list, delete, stage moves."""

from __future__ import annotations

import time

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from connector.store.db import get_store
from connector.store.models import StageChange
from tests.connector.samples import deal_body


def test_put_creates_then_updates_a_deal(client: FlaskClient, auth: dict[str, str]) -> None:
    created = client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth)
    assert created.status_code == 201
    assert created.json["stage"] == "first_interaction"
    assert created.json["stage_name"] == "First interaction"
    assert created.json["amount"] == "84000.00"
    assert created.json["account"] == {"name": "Fabrikam", "domains": ["fabrikam.com"]}

    updated = client.put("/api/v1/deals/OPP-1", json=deal_body(title="ERP phase 2"), headers=auth)
    assert updated.status_code == 200
    assert updated.json["title"] == "ERP phase 2"


def test_put_is_idempotent(client: FlaskClient, auth: dict[str, str]) -> None:
    first = client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth).json
    time.sleep(0.01)
    second = client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth)
    assert second.status_code == 200
    assert second.json["updated_at"] == first["updated_at"]
    history = client.get("/api/v1/deals/OPP-1/stages", headers=auth).json["items"]
    assert len(history) == 1


def test_changed_stage_records_history_and_restarts_the_stage_clock(
    client: FlaskClient, auth: dict[str, str], app: Flask
) -> None:
    first = client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth).json
    time.sleep(0.01)
    moved = client.put(
        "/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth
    ).json
    assert moved["stage_entered_at"] > first["stage_entered_at"]
    history = client.get("/api/v1/deals/OPP-1/stages", headers=auth).json["items"]
    assert [(h["from_stage"], h["to_stage"]) for h in history] == [
        (None, "first_interaction"),
        ("first_interaction", "negotiation"),
    ]
    assert history[1]["changed_by"] == "key:test-write"
    with get_store(app).session() as session:
        assert len(list(session.scalars(select(StageChange)))) == 2


def test_won_stage_closes_the_deal(client: FlaskClient, auth: dict[str, str]) -> None:
    won = client.put("/api/v1/deals/OPP-1", json=deal_body(stage="won"), headers=auth).json
    assert won["status"] == "won"
    lost = client.put(
        "/api/v1/deals/OPP-2", json=deal_body(stage="negotiation", status="lost"), headers=auth
    ).json
    assert lost["status"] == "lost"
    assert lost["stage"] == "negotiation"


def test_unknown_stage_is_a_422_naming_the_valid_stages(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    answer = client.put("/api/v1/deals/OPP-1", json=deal_body(stage="closing"), headers=auth)
    assert answer.status_code == 422
    assert answer.content_type == "application/problem+json"
    problem = answer.json
    assert problem["errors"][0]["field"] == "stage"
    assert "lead_generation" in problem["detail"]
    assert "deal_closing" in problem["detail"]


def test_unknown_pipeline_is_a_422(client: FlaskClient, auth: dict[str, str]) -> None:
    answer = client.put("/api/v1/deals/OPP-1", json=deal_body(pipeline="nope"), headers=auth)
    assert answer.status_code == 422
    assert answer.json["errors"][0]["field"] == "pipeline"


def test_invalid_fields_are_each_named(client: FlaskClient, auth: dict[str, str]) -> None:
    body = deal_body(amount="-5", currency="euro", owner="not-an-email", colour="red")
    answer = client.put("/api/v1/deals/OPP-1", json=body, headers=auth)
    assert answer.status_code == 422
    fields = {e["field"] for e in answer.json["errors"]}
    assert {"amount", "currency", "owner", "colour"} <= fields


def test_amount_needs_a_currency(client: FlaskClient, auth: dict[str, str]) -> None:
    body = deal_body()
    del body["currency"]
    answer = client.put("/api/v1/deals/OPP-1", json=body, headers=auth)
    assert answer.status_code == 422
    assert "currency" in answer.json["detail"]


def test_get_and_delete_a_deal(client: FlaskClient, auth: dict[str, str]) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth)
    assert client.get("/api/v1/deals/OPP-1", headers=auth).json["id"] == "OPP-1"
    assert client.delete("/api/v1/deals/OPP-1", headers=auth).status_code == 204
    missing = client.get("/api/v1/deals/OPP-1", headers=auth)
    assert missing.status_code == 404
    assert missing.content_type == "application/problem+json"
    assert client.delete("/api/v1/deals/OPP-1", headers=auth).status_code == 404


def test_list_filters_and_pages_with_a_cursor(client: FlaskClient, auth: dict[str, str]) -> None:
    for i in range(7):
        stage = "negotiation" if i % 2 else "first_interaction"
        owner = "raj@contoso.com" if i < 3 else "ann.lee@contoso.com"
        client.put(f"/api/v1/deals/D{i}", json=deal_body(stage=stage, owner=owner), headers=auth)
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/deals", query_string=query, headers=auth).json
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"D{i}" for i in range(7)]
    negotiating = client.get("/api/v1/deals?stage=negotiation", headers=auth).json["items"]
    assert [d["id"] for d in negotiating] == ["D1", "D3", "D5"]
    rajs = client.get("/api/v1/deals?owner=RAJ@contoso.com", headers=auth).json["items"]
    assert len(rajs) == 3


def test_list_updated_since_returns_later_changes_only(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    client.put("/api/v1/deals/OLD", json=deal_body(), headers=auth)
    time.sleep(0.01)
    new = client.put("/api/v1/deals/NEW", json=deal_body(), headers=auth).json
    page = client.get(
        "/api/v1/deals", query_string={"updated_since": new["updated_at"]}, headers=auth
    ).json
    assert [d["id"] for d in page["items"]] == ["NEW"]


def test_list_rejects_bad_queries(client: FlaskClient, auth: dict[str, str]) -> None:
    for query, field in [
        ({"cursor": "garbage"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"status": "maybe"}, "status"),
        ({"updated_since": "2026-01-01T00:00:00"}, "updated_since"),
        ({"sort": "title"}, "sort"),
    ]:
        answer = client.get("/api/v1/deals", query_string=query, headers=auth)
        assert answer.status_code == 422, query
        assert answer.json["errors"][0]["field"] == field
        assert answer.json["errors"][0]["location"] == "query"


def test_stage_move_records_who_moved_it(client: FlaskClient, auth: dict[str, str]) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth)
    moved = client.post("/api/v1/deals/OPP-1/stage", json={"stage": "negotiation"}, headers=auth)
    assert moved.status_code == 200
    assert moved.json["stage"] == "negotiation"
    unknown = client.post("/api/v1/deals/OPP-1/stage", json={"stage": "limbo"}, headers=auth)
    assert unknown.status_code == 422
    assert "valid: lead_generation" in unknown.json["detail"]
    missing = client.post("/api/v1/deals/NOPE/stage", json={"stage": "won"}, headers=auth)
    assert missing.status_code == 404


def test_bulk_applies_each_item_alone(client: FlaskClient, auth: dict[str, str]) -> None:
    client.put("/api/v1/deals/B0", json=deal_body(), headers=auth)
    deals = [
        {"id": "B0", **deal_body()},
        {"id": "B1", **deal_body(stage="negotiation")},
        {"id": "B2", **deal_body(stage="nowhere")},
        {"id": "B3", **deal_body(currency="euros")},
        {"title": "no id", "stage": "won"},
        {"id": "B0", **deal_body(title="again")},
    ]
    answer = client.post("/api/v1/deals:bulk", json={"deals": deals}, headers=auth)
    assert answer.status_code == 200
    result = answer.json
    assert (result["created"], result["unchanged"], result["failed"]) == (1, 1, 4)
    by_index = {item["index"]: item for item in result["items"]}
    assert by_index[1]["result"] == "created"
    assert by_index[2]["errors"][0]["field"] == "deals.2.stage"
    assert by_index[3]["errors"][0]["field"] == "deals.3.currency"
    assert by_index[4]["errors"][0]["field"] == "deals.4.id"
    assert "twice" in by_index[5]["errors"][0]["message"]
    assert client.get("/api/v1/deals/B2", headers=auth).status_code == 404
    assert client.get("/api/v1/deals/B1", headers=auth).status_code == 200


def test_bulk_refuses_more_than_a_thousand(client: FlaskClient, auth: dict[str, str]) -> None:
    deals = [{"id": f"X{i}", "title": "t", "stage": "won"} for i in range(1001)]
    answer = client.post("/api/v1/deals:bulk", json={"deals": deals}, headers=auth)
    assert answer.status_code == 422
    assert answer.json["errors"][0]["field"] == "deals"


def test_bulk_of_a_thousand_is_accepted(client: FlaskClient, auth: dict[str, str]) -> None:
    deals = [{"id": f"X{i}", **deal_body(title=f"Deal {i}")} for i in range(1000)]
    answer = client.post("/api/v1/deals:bulk", json={"deals": deals}, headers=auth)
    assert answer.status_code == 200
    assert answer.json["created"] == 1000
