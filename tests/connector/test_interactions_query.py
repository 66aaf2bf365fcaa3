"""GET /api/v1/interactions filters (rep included) and limits in SQL: it loads what it answers."""

from __future__ import annotations

import datetime as dt

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from connector.store.db import get_store
from connector.store.models import Interaction


def _seed(app: Flask) -> None:
    start = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)
    with get_store(app).session() as session:
        for i in range(60):
            rep = "ann.lee@contoso.com" if i % 3 == 0 else "bob.ito@contoso.com"
            session.add(
                Interaction(
                    kind="meeting",
                    source="outlook",
                    external_key=f"outlook:test-{i}",
                    status="held",
                    subject=f"Meeting {i}",
                    started_at=start + dt.timedelta(hours=i),
                    details={"internal_participants": [rep, "zoe.wu@contoso.com"]},
                )
            )
        session.add(
            Interaction(
                kind="call",
                source="api",
                external_key="api:call-1",
                status="held",
                subject="A call by ann",
                started_at=start - dt.timedelta(days=1),
                created_by="ann.lee@contoso.com",
                details={},
            )
        )


def _loaded(app: Flask, client: FlaskClient, url: str, auth: dict[str, str]) -> tuple[int, list]:
    count = 0

    def on_load(_target: Interaction, _context: object) -> None:
        nonlocal count
        count += 1

    event.listen(Interaction, "load", on_load)
    try:
        answer = client.get(url, headers=auth)
    finally:
        event.remove(Interaction, "load", on_load)
    assert answer.status_code == 200, answer.json
    return count, answer.json["items"]


def test_a_limit_loads_only_that_many_rows(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    _seed(app)
    loaded, items = _loaded(app, client, "/api/v1/interactions?limit=5", auth)
    assert [i["subject"] for i in items] == [f"Meeting {n}" for n in range(59, 54, -1)]
    assert loaded == 5


def test_the_rep_filter_runs_in_sql(app: Flask, client: FlaskClient, auth: dict[str, str]) -> None:
    _seed(app)
    url = "/api/v1/interactions?rep=ann.lee@contoso.com&limit=4"
    loaded, items = _loaded(app, client, url, auth)
    assert [i["subject"] for i in items] == ["Meeting 57", "Meeting 54", "Meeting 51", "Meeting 48"]
    assert loaded == 4
    # A call the rep logged by hand is hers too; someone only in another's meetings is not.
    loaded, items = _loaded(app, client, "/api/v1/interactions?rep=ann.lee@contoso.com", auth)
    assert len(items) == 21
    assert items[-1]["subject"] == "A call by ann"
    assert loaded == 21
    _, none = _loaded(app, client, "/api/v1/interactions?rep=nobody@contoso.com", auth)
    assert none == []


def test_on_postgresql_the_rep_filter_is_a_jsonb_containment() -> None:
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql

    from connector.api.interactions import taken_part_by

    stmt = select(Interaction.id).where(taken_part_by("postgresql", "ann@contoso.com")).limit(3)
    sql = str(stmt.compile(dialect=postgresql.dialect()))
    assert "jsonb_extract_path(CAST(interactions.details AS JSONB)" in sql
    assert "@>" in sql
    assert "LIMIT" in sql
