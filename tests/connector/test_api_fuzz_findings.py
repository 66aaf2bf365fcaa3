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
