"""Every error is problem+json naming what is wrong; no input produces a 500."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from connector.store.db import get_store
from connector.store.models import ApiKey
from tests.connector.samples import deal_body

PROBLEM = "application/problem+json"


def test_missing_key_is_401(client: FlaskClient) -> None:
    answer = client.get("/api/v1/deals")
    assert answer.status_code == 401
    assert answer.content_type == PROBLEM
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_key_and_wrong_scheme_are_401(client: FlaskClient, write_key: str) -> None:
    for header in [f"Bearer {write_key}x", "Bearer dbk_0000_nope", f"Basic {write_key}", "Bearer "]:
        answer = client.get("/api/v1/deals", headers={"Authorization": header})
        assert answer.status_code == 401, header
        assert write_key not in answer.get_data(as_text=True)


def test_read_key_cannot_write(client: FlaskClient, read_key: str) -> None:
    headers = {"Authorization": f"Bearer {read_key}"}
    assert client.get("/api/v1/deals", headers=headers).status_code == 200
    answer = client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=headers)
    assert answer.status_code == 403
    assert "write" in answer.json["detail"]


def test_revoked_key_is_refused(client: FlaskClient, app: Flask, write_key: str) -> None:
    from connector.store.models import utcnow

    with get_store(app).session() as session:
        for key in session.scalars(select(ApiKey)):
            key.revoked_at = utcnow()
    answer = client.get("/api/v1/deals", headers={"Authorization": f"Bearer {write_key}"})
    assert answer.status_code == 401


def test_keys_are_stored_only_as_hashes(app: Flask, write_key: str) -> None:
    with get_store(app).session() as session:
        stored = session.scalars(select(ApiKey)).one()
    assert write_key not in (stored.key_hash, stored.prefix, stored.name)
    assert len(stored.key_hash) == 64
    with get_store(app).engine.connect() as connection:  # every column, as the database has it
        rows = connection.execute(text("SELECT * FROM api_keys")).all()
    assert write_key not in repr(rows)
    url = app.extensions["dealbridge.settings"].effective_database_url
    if not url.startswith("sqlite:///"):
        return  # PostgreSQL: no file of ours to scan; the rows above are what it stores
    raw = url.removeprefix("sqlite:///")
    for suffix in ("", "-wal"):  # SQLite: the file itself, and its write-ahead log
        path = Path(raw + suffix)
        if path.exists():
            assert write_key.encode() not in path.read_bytes()


def test_configured_api_key_is_accepted(tmp_path, migrated_template) -> None:  # type: ignore[no-untyped-def]
    from tests.connector.conftest import make_app

    app = make_app(tmp_path / "db.sqlite", migrated_template, api_key="demo-secret-key-1")
    client = app.test_client()
    answer = client.get("/api/v1/deals", headers={"Authorization": "Bearer demo-secret-key-1"})
    assert answer.status_code == 200


def test_malformed_json_is_400(client: FlaskClient, auth: dict[str, str]) -> None:
    for raw in [b"{", b"[1,", b"not json", b"\xff\xfe"]:
        answer = client.put(
            "/api/v1/deals/OPP-1", data=raw, headers=auth, content_type="application/json"
        )
        assert answer.status_code == 400, raw
        assert answer.content_type == PROBLEM


def test_empty_body_is_400(client: FlaskClient, auth: dict[str, str]) -> None:
    answer = client.put("/api/v1/deals/OPP-1", data=b"", headers=auth)
    assert answer.status_code == 400


def test_body_of_the_wrong_shape_is_422(client: FlaskClient, auth: dict[str, str]) -> None:
    for body in [[], "text", 42, None, {"title": ["x"], "stage": {}}]:
        answer = client.put(
            "/api/v1/deals/OPP-1",
            data=json.dumps(body),
            headers=auth,
            content_type="application/json",
        )
        assert answer.status_code == 422, body


def test_too_large_body_is_413(client: FlaskClient, auth: dict[str, str]) -> None:
    huge = json.dumps(deal_body(title="x" * (6 * 1024 * 1024)))
    answer = client.put(
        "/api/v1/deals/OPP-1", data=huge, headers=auth, content_type="application/json"
    )
    assert answer.status_code == 413
    assert answer.content_type == PROBLEM


def test_unknown_route_and_method_are_problems(client: FlaskClient, auth: dict[str, str]) -> None:
    assert client.get("/api/v1/nothing", headers=auth).content_type == PROBLEM
    answer = client.patch("/api/v1/deals/OPP-1", json={}, headers=auth)
    assert answer.status_code == 405
    assert answer.content_type == PROBLEM
    assert "PUT" in answer.headers["Allow"]


def test_too_long_deal_id_is_422_not_500(client: FlaskClient, auth: dict[str, str]) -> None:
    answer = client.put(f"/api/v1/deals/{'x' * 300}", json=deal_body(), headers=auth)
    assert answer.status_code == 422  # naming deal_id (tests/connector/test_api_fuzz_findings.py)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "title": _json,
        "stage": st.sampled_from(["won", "negotiation", "x"]) | _json,
        "pipeline": _json,
        "status": _json,
        "owner": _json,
        "account": _json,
        "contacts": _json,
        "amount": _json,
        "currency": _json,
        "expected_close_date": _json,
        "crm_url": _json,
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_fields | _json)
def test_no_deal_body_produces_a_500(
    client: FlaskClient, auth: dict[str, str], body: object
) -> None:
    answer = client.put(
        "/api/v1/deals/FUZZ", data=json.dumps(body), headers=auth, content_type="application/json"
    )
    assert answer.status_code in {200, 201, 400, 422}, answer.get_data(as_text=True)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.dictionaries(
        st.sampled_from(
            ["pipeline", "stage", "owner", "status", "updated_since", "limit", "cursor", "x"]
        ),
        st.text(max_size=30),
        max_size=4,
    )
)
def test_no_list_query_produces_a_500(
    client: FlaskClient, auth: dict[str, str], query: dict[str, str]
) -> None:
    answer = client.get("/api/v1/deals", query_string=query, headers=auth)
    assert answer.status_code in {200, 422}, answer.get_data(as_text=True)


def test_openapi_problem_schema_is_the_model_that_builds_the_responses(
    client: FlaskClient, write_key: str
) -> None:
    from connector.errors import Problem

    document = client.get("/api/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    generated = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in generated.pop("$defs", {}).items():
        assert schemas[name] == schema
    assert schemas["Problem"] == generated
    answer = client.put(
        "/api/v1/deals/d-1", json={"title": 5}, headers={"Authorization": f"Bearer {write_key}"}
    )
    assert answer.status_code == 422
    Problem.model_validate(answer.get_json())
