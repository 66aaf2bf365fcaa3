"""Interactions, pipelines, reps, the funnel, health and the OpenAPI document."""

from __future__ import annotations

import importlib
import pkgutil
import re

from flask import Flask
from flask.testing import FlaskClient

import connector.api
from connector.api.routing import Api
from connector.store.db import get_store
from connector.store.models import Deal, StageChange, utcnow
from tests.connector.samples import deal_body

_RULE_PARAM = re.compile(r"<(?:[a-z_]+(?:\([^)]*\))?:)?([a-z_]+)>")


def test_log_a_call_by_hand_moves_last_interaction(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth)
    call = {"kind": "call", "subject": "Pricing call", "occurred_at": "2026-11-20T10:00:00+01:00"}
    answer = client.post("/api/v1/deals/OPP-1/interactions", json=call, headers=auth)
    assert answer.status_code == 201
    assert answer.json["status"] == "held"
    assert answer.json["started_at"] == "2026-11-20T09:00:00Z"
    deal = client.get("/api/v1/deals/OPP-1", headers=auth).json
    assert deal["last_interaction_at"] == "2026-11-20T09:00:00Z"
    listed = client.get("/api/v1/deals/OPP-1/interactions", headers=auth).json["items"]
    assert [i["subject"] for i in listed] == ["Pricing call"]


def test_external_id_logs_an_interaction_once(client: FlaskClient, auth: dict[str, str]) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth)
    note = {"kind": "note", "text": "Budget approved", "external_id": "crm-note-7"}
    assert (
        client.post("/api/v1/deals/OPP-1/interactions", json=note, headers=auth).status_code == 201
    )
    again = client.post("/api/v1/deals/OPP-1/interactions", json=note, headers=auth)
    assert again.status_code == 200
    clash = client.post(
        "/api/v1/deals/OPP-1/interactions", json={**note, "text": "Other"}, headers=auth
    )
    assert clash.status_code == 409
    assert len(client.get("/api/v1/deals/OPP-1/interactions", headers=auth).json["items"]) == 1


def test_interaction_needs_content_and_a_known_kind(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth)
    empty = client.post("/api/v1/deals/OPP-1/interactions", json={"kind": "call"}, headers=auth)
    assert empty.status_code == 422
    meeting = client.post(
        "/api/v1/deals/OPP-1/interactions", json={"kind": "lunch", "text": "x"}, headers=auth
    )
    assert meeting.json["errors"][0]["field"] == "kind"


def test_the_five_presets_are_installed(client: FlaskClient, auth: dict[str, str]) -> None:
    pipelines = client.get("/api/v1/pipelines", headers=auth).json["items"]
    assert {p["id"] for p in pipelines} == {"journey7", "classic5", "b2b6", "aida4", "measure5"}
    classic = client.get("/api/v1/pipelines/classic5", headers=auth).json
    assert [s["name"] for s in classic["stages"]] == [
        "Lead generation",
        "First interaction",
        "Solution presentation",
        "Negotiation",
        "Deal closing",
        "Won",
        "Lost",
    ]
    assert classic["stages"][-2]["won"]
    assert classic["stages"][-1]["lost"]
    journey = client.get("/api/v1/pipelines/journey7", headers=auth).json
    assert len([s for s in journey["stages"] if not (s["won"] or s["lost"])]) == 7


def test_put_pipeline_creates_and_reorders(client: FlaskClient, auth: dict[str, str]) -> None:
    body = {
        "name": "Enterprise",
        "stages": [
            {"key": "discovery", "name": "Discovery", "probability": 10},
            {"key": "pilot", "name": "Pilot", "probability": 50},
            {"key": "signed", "name": "Signed", "probability": 100, "won": True},
        ],
    }
    created = client.put("/api/v1/pipelines/enterprise", json=body, headers=auth)
    assert created.status_code == 201
    body["stages"].reverse()
    updated = client.put("/api/v1/pipelines/enterprise", json=body, headers=auth)
    assert updated.status_code == 200
    assert [s["key"] for s in updated.json["stages"]] == ["signed", "pilot", "discovery"]


def test_removing_a_stage_that_holds_deals_is_a_409(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth)
    classic = client.get("/api/v1/pipelines/classic5", headers=auth).json
    stages = [
        {"key": s["key"], "name": s["name"], "won": s["won"], "lost": s["lost"]}
        for s in classic["stages"]
        if s["key"] != "negotiation"
    ]
    answer = client.put(
        "/api/v1/pipelines/classic5", json={"name": "Classic", "stages": stages}, headers=auth
    )
    assert answer.status_code == 409
    assert "negotiation (1 deals)" in answer.json["detail"]


def test_pipeline_validation(client: FlaskClient, auth: dict[str, str]) -> None:
    twice = {"name": "x", "stages": [{"key": "a", "name": "A"}, {"key": "a", "name": "B"}]}
    assert client.put("/api/v1/pipelines/p", json=twice, headers=auth).status_code == 422
    closed = {"name": "x", "stages": [{"key": "w", "name": "W", "won": True}]}
    assert client.put("/api/v1/pipelines/p", json=closed, headers=auth).status_code == 422
    bad_id = {"name": "x", "stages": [{"key": "a", "name": "A"}]}
    answer = client.put("/api/v1/pipelines/Bad%20Id", json=bad_id, headers=auth)
    assert answer.status_code == 422
    assert answer.json["errors"][0]["location"] == "path"


def test_reps_put_get_list(client: FlaskClient, auth: dict[str, str]) -> None:
    body = {"display_name": "Ann Lee", "time_zone": "Europe/Berlin", "work_start": "08:30"}
    created = client.put("/api/v1/reps/Ann.Lee@contoso.com", json=body, headers=auth)
    assert created.status_code == 201
    assert created.json["email"] == "ann.lee@contoso.com"
    client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth)
    rep = client.get("/api/v1/reps/ann.lee@contoso.com", headers=auth).json
    assert (rep["time_zone"], rep["work_start"], rep["work_end"]) == (
        "Europe/Berlin",
        "08:30",
        "17:00",
    )
    assert rep["open_deals"] == 1
    assert len(client.get("/api/v1/reps", headers=auth).json["items"]) == 1
    assert client.get("/api/v1/reps/nobody@contoso.com", headers=auth).status_code == 404


def test_rep_validation_names_the_field(client: FlaskClient, auth: dict[str, str]) -> None:
    for body, field in [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"work_start": "25:00"}, "work_start"),
        ({"working_days": [0, 8]}, "working_days.0"),
        ({"work_start": "18:00", "work_end": "09:00"}, "(body)"),
    ]:
        answer = client.put("/api/v1/reps/ann@contoso.com", json=body, headers=auth)
        assert answer.status_code == 422, body
        assert answer.json["errors"][0]["field"] == field
    late = client.put("/api/v1/reps/ann@contoso.com", json={"work_end": "08:00"}, headers=auth)
    assert late.status_code == 422
    assert late.json["errors"][0]["field"] == "work_end"
    assert client.put("/api/v1/reps/not-an-email", json={}, headers=auth).status_code == 422


def test_funnel_reproduces_the_worked_example(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    """500 requests, 300 contacted, 120 presentations → 60 % and 40 % (and 24 % overall)."""
    now = utcnow()
    with get_store(app).session() as session:
        for i in range(500):
            stages = ["lead", "qualified_lead", "presentation"][: 1 + (i < 300) + (i < 120)]
            deal = Deal(
                crm_id=f"M{i}", title=f"Request {i}", pipeline_id="measure5", stage_key=stages[-1]
            )
            session.add(deal)
            previous = None
            for step, stage in enumerate(stages):
                deal.stage_changes.append(
                    StageChange(
                        pipeline_id="measure5",
                        from_stage=previous,
                        to_stage=stage,
                        changed_at=now.replace(microsecond=0)
                        - (3 - step) * (now - now.replace(hour=0)) / 3,
                        changed_by="test",
                    )
                )
                previous = stage
    funnel = client.get("/api/v1/analytics/funnel?pipeline=measure5", headers=auth).json
    stages = {s["stage"]: s for s in funnel["stages"]}
    assert funnel["deals"] == 500
    assert [stages[k]["reached"] for k in ("lead", "qualified_lead", "presentation")] == [
        500,
        300,
        120,
    ]
    assert stages["lead"]["conversion_to_next"] == 60.0
    assert stages["qualified_lead"]["conversion_to_next"] == 40.0
    assert stages["presentation"]["conversion_from_first"] == 24.0
    assert stages["lead"]["in_stage_now"] == 200
    assert stages["lead"]["avg_days_in_stage"] is not None


def test_funnel_counts_skipped_and_won_stages_as_reached(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    client.put("/api/v1/deals/A", json=deal_body(stage="lead_generation"), headers=auth)
    client.post("/api/v1/deals/A/stage", json={"stage": "negotiation"}, headers=auth)
    client.put("/api/v1/deals/B", json=deal_body(stage="won"), headers=auth)
    funnel = client.get("/api/v1/analytics/funnel?pipeline=classic5", headers=auth).json
    reached = [s["reached"] for s in funnel["stages"]]
    assert reached == [2, 2, 2, 2, 1]
    assert funnel["won"] == 1


def test_funnel_query_is_validated(client: FlaskClient, auth: dict[str, str]) -> None:
    assert client.get("/api/v1/analytics/funnel", headers=auth).status_code == 422
    missing = client.get("/api/v1/analytics/funnel?pipeline=nope", headers=auth)
    assert missing.status_code == 404
    backwards = client.get(
        "/api/v1/analytics/funnel",
        query_string={
            "pipeline": "classic5",
            "from": "2026-02-01T00:00:00Z",
            "to": "2026-01-01T00:00:00Z",
        },
        headers=auth,
    )
    assert backwards.status_code == 422
    assert backwards.json["errors"][0]["field"] == "to"


def test_healthz_needs_no_key(client: FlaskClient) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json["database"] is True
    assert health.json["migrations_current"] is True
    assert health.json["version"]


def test_every_resource_module_is_served_and_documented(app: Flask, client: FlaskClient) -> None:
    paths = client.get("/api/openapi.json").json["paths"]
    resources = []
    for info in pkgutil.iter_modules(connector.api.__path__):
        api = getattr(importlib.import_module(f"connector.api.{info.name}"), "api", None)
        if not isinstance(api, Api):
            continue
        resources.append(info.name)
        assert api.blueprint.name in app.blueprints, f"api/{info.name}.py is not registered"
        for op in api.operations:
            path = _RULE_PARAM.sub(r"{\1}", api.url_prefix + op.rule)
            assert op.method.lower() in paths.get(path, {}), f"{op.method} {path} undocumented"
    assert len(resources) == 7, resources


def test_openapi_describes_every_operation(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").json
    assert doc["openapi"] == "3.1.0"
    paths = doc["paths"]
    assert {"put", "get", "delete"} <= set(paths["/api/v1/deals/{deal_id}"])
    assert "post" in paths["/api/v1/deals:bulk"]
    assert "/api/v1/analytics/funnel" in paths
    put = paths["/api/v1/deals/{deal_id}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/DealIn")
    assert "422" in put["responses"]
    for methods in paths.values():
        for op in methods.values():
            for response in op["responses"].values():
                for media in response.get("content", {}).values():
                    ref = media["schema"].get("$ref")
                    if ref:
                        assert ref.rsplit("/", 1)[-1] in doc["components"]["schemas"]
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert b"/api/v1/deals:bulk" in page.data


def test_nulls_for_a_reps_always_set_fields_leave_them_as_they_are(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    """Found by schemathesis: explicit nulls used to reach a comparison and answer 500."""
    client.put("/api/v1/reps/ann@contoso.com", json={"work_start": "08:00"}, headers=auth)
    nulls = dict.fromkeys(
        ["active", "display_name", "time_zone", "work_end", "work_start", "working_days"]
    )
    answer = client.put("/api/v1/reps/ann@contoso.com", json=nulls, headers=auth)
    assert answer.status_code == 200, answer.json
    assert answer.json["work_start"] == "08:00"


def test_an_interaction_from_the_year_1_is_refused(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    """Found by schemathesis: the planner cannot place a year-1 interaction (it was a 500)."""
    client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth)
    call = {"kind": "call", "subject": "x", "occurred_at": "0001-01-01T00:00:00Z"}
    answer = client.post("/api/v1/deals/OPP-1/interactions", json=call, headers=auth)
    assert answer.status_code == 422
    assert answer.json["errors"][0]["field"] == "occurred_at"


def test_openapi_shows_the_fields_of_an_interactions_details(client: FlaskClient) -> None:
    schemas = client.get("/api/openapi.json").json["components"]["schemas"]

    details = schemas["InteractionOut"]["properties"]["details"]
    refs = [s.get("$ref", s.get("type")) for s in details["anyOf"]]
    assert [r.rpartition("/")[2] for r in refs] == ["MeetingDetails", "null"]
    assert "null for a call, email or note logged by hand" in details["description"]
    fields = schemas["MeetingDetails"]["properties"]
    assert {"attendees", "mailboxes", "internal_participants", "candidates", "organizer"} <= set(
        fields
    )
    assert schemas["Attendee"]["properties"]["email"]
