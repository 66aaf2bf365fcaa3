"""What ``make fuzz`` (schemathesis against a served DealBridge, tests/fuzz/run.py) found, each
with the exact input it sent: a 422 naming the field, or a status the OpenAPI document names."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.connector.samples import deal_body

PROBLEM = "application/problem+json"
# A time with an offset whose UTC instant lies before year 1 or after year 9999: converting it
# to UTC raised OverflowError (a 500) in the validator instead of a 422.
OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


def _is_422_naming(answer: Any, field: str) -> None:
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.content_type == PROBLEM
    assert field in answer.get_data(as_text=True)


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_a_query_time_beyond_the_calendar_is_422(
    client: FlaskClient, auth: dict[str, str], value: str
) -> None:
    for path, name in [
        ("/api/v1/deals", "updated_since"),
        ("/api/v1/reminders", "due_before"),
        ("/api/v1/analytics/funnel?pipeline=classic5", "from"),
        ("/api/v1/analytics/funnel?pipeline=classic5", "to"),
    ]:
        joiner = "&" if "?" in path else "?"
        answer = client.get(f"{path}{joiner}{name}={value.replace('+', '%2B')}", headers=auth)
        _is_422_naming(answer, name)


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_a_body_time_beyond_the_calendar_is_422(
    client: FlaskClient, auth: dict[str, str], value: str
) -> None:
    assert client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth).status_code == 201
    answer = client.post(
        "/api/v1/deals/OPP-1/interactions",
        json={"kind": "note", "text": "x", "occurred_at": value},
        headers=auth,
    )
    _is_422_naming(answer, "occurred_at")
    answer = client.post("/api/v1/reminders/1/snooze", json={"until": value}, headers=auth)
    _is_422_naming(answer, "until")


def test_path_parameters_are_documented_as_the_routes_take_them(client: FlaskClient) -> None:
    """schemathesis: "1 is not of type string" for a reminder's id. An ``<int:...>`` segment is
    an integer id, a ``<string(maxlength=N):...>`` one a string of 1 to N characters."""
    paths = client.get("/api/openapi.json").json["paths"]

    def schema(path: str, method: str, name: str) -> dict[str, Any]:
        params = paths[path][method]["parameters"]
        return next(p["schema"] for p in params if p["name"] == name and p["in"] == "path")

    for path, method, name in [
        ("/api/v1/reminders/{reminder_id}/snooze", "post", "reminder_id"),
        ("/api/v1/reminders/{reminder_id}/done", "post", "reminder_id"),
        ("/api/v1/interactions/{interaction_id}/deal", "post", "interaction_id"),
    ]:
        assert schema(path, method, name) == {
            "type": "integer",
            "minimum": 1,
            "maximum": 2**31 - 1,
        }
    assert schema("/api/v1/deals/{deal_id}", "put", "deal_id") == {
        "type": "string",
        "minLength": 1,
        "maxLength": 128,
    }
    assert schema("/api/v1/reps/{email}", "get", "email")["maxLength"] == 320


def test_a_path_id_longer_than_its_column_is_a_422_naming_it(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    """schemathesis: PUT /api/v1/deals/ with 129 zeros was Flask's 404 "The requested URL was
    not found" (undocumented for PUT, and naming nothing); the same for reps and pipelines."""
    pipeline = client.get("/api/v1/pipelines/classic5", headers=auth).json
    stages = [
        {k: s[k] for k in ("key", "name", "probability", "won", "lost", "rules")}
        for s in pipeline["stages"]
    ]
    for path, name, body in [
        ("/api/v1/deals/" + "0" * 129, "deal_id", deal_body()),
        ("/api/v1/reps/" + "0" * 321, "email", {"display_name": "A"}),
        ("/api/v1/pipelines/" + "0" * 65, "pipeline_id", {"name": "P", "stages": stages}),
    ]:
        answer = client.put(path, json=body, headers=auth)
        _is_422_naming(answer, name)
        assert "at most" in answer.json["detail"]
    longest = client.put("/api/v1/deals/" + "0" * 128, json=deal_body(), headers=auth)
    assert longest.status_code == 201


def test_logging_the_same_interaction_again_is_a_documented_200(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    """schemathesis: the second POST with the same external_id answered 200, which the
    document did not list (only 201)."""
    assert client.put("/api/v1/deals/OPP-2", json=deal_body(), headers=auth).status_code == 201
    body = {"kind": "note", "subject": "Moved to negotiation", "external_id": "0"}
    first = client.post("/api/v1/deals/OPP-2/interactions", json=body, headers=auth)
    again = client.post("/api/v1/deals/OPP-2/interactions", json=body, headers=auth)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"]
    operation = client.get("/api/openapi.json").json["paths"][
        "/api/v1/deals/{deal_id}/interactions"
    ]["post"]
    assert operation["responses"]["200"]["content"] == operation["responses"]["201"]["content"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # make fuzz on PostgreSQL (CI, 2026-12-02): a rep stored with holiday_country "AA" (the
        # pattern ^[A-Z]{2}$ lets it through) made every later re-plan and reminder card of
        # hers fail in the planner's WorkingCalendar: "no public holidays known for 'AA'".
        ({"holiday_country": "AA"}, "holiday_country"),
        # the planner's working day lasts at least an hour; the API only asked end > start
        ({"work_start": "09:00", "work_end": "09:30"}, "work_end"),
    ],
)
def test_a_rep_the_planner_cannot_plan_for_is_422_naming_the_field(
    client: FlaskClient, auth: dict[str, str], body: dict[str, str], field: str
) -> None:
    answer = client.put("/api/v1/reps/ann@contoso.com", json=body, headers=auth)
    _is_422_naming(answer, field)
    assert client.get("/api/v1/reps", headers=auth).json["items"] == []  # nothing stored
