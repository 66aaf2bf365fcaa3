"""/readyz answers 200 only when DealBridge can do its job, else 503 naming what is wrong."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from alembic import command
from flask import Flask

from connector.app import create_app
from connector.leader import LEADER_NAME, Leadership
from connector.store.db import Store, get_store
from connector.store.models import SchedulerLeader, utcnow
from tests.connector.conftest import make_app

COMPLETE: dict[str, Any] = {
    "tenant_id": "contoso.onmicrosoft.com",
    "client_id": "4b1f2e9a-0c7d-4e35-8f60-9a2b7c3d5e10",
    "client_secret": "not-a-real-secret",
    "public_url": "https://dealbridge.contoso.com",
}


def _ready(tmp_path: Path, template: Path, **overrides: Any) -> Flask:
    app = make_app(tmp_path / "ready.db", template, **{**COMPLETE, **overrides})
    Leadership(get_store(app)).beat()
    return app


def _checks(answer: Any) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in answer.json["checks"]}


def _not_ready(app: Flask, failing: str, *also: str) -> dict[str, Any]:
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = answer.json
    assert body["status"] == 503
    assert body["title"] == "Not ready"
    assert [name for name, c in _checks(answer).items() if not c["ok"]] == [failing, *also]
    assert body["detail"].startswith(f"{failing}: ")
    return body


def test_ready_when_every_check_passes(tmp_path: Path, migrated_template: Path) -> None:
    answer = _ready(tmp_path, migrated_template).test_client().get("/readyz")
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "ready"
    assert set(_checks(answer)) == {"database", "migrations", "settings", "leader"}
    assert all(c["ok"] for c in answer.json["checks"])


def test_a_database_out_of_reach(tmp_path: Path) -> None:
    app = create_app(
        {
            "TESTING": True,
            **COMPLETE,
            "database_url": f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'x.db'}",
            "auto_migrate": False,
            "scheduler_enabled": False,
        }
    )
    body = _not_ready(app, "database")
    assert "cannot be reached" in body["detail"]
    health = app.test_client().get("/healthz")  # alive all the same: it answers
    assert health.status_code == 200
    assert health.json["database"] is False


def test_migrations_behind_head(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = Store(f"sqlite:///{path}")
    command.upgrade(store.alembic_config(), "0005")
    store.dispose()
    app = create_app(
        {
            "TESTING": True,
            **COMPLETE,
            "database_url": f"sqlite:///{path}",
            "auto_migrate": False,
            "scheduler_enabled": False,
        }
    )
    body = _not_ready(app, "migrations", "leader")  # 0005 has no heartbeat table yet
    head = get_store(app).head_revision()
    assert f"at 0005, head is {head}" in body["detail"]
    assert "dealbridge db upgrade" in body["detail"]


def test_settings_the_enabled_features_need(tmp_path: Path, migrated_template: Path) -> None:
    app = _ready(tmp_path, migrated_template, client_secret=None, public_url=None)
    body = _not_ready(app, "settings")
    assert "DEALBRIDGE_CLIENT_SECRET: missing" in body["detail"]
    assert "DEALBRIDGE_PUBLIC_URL: missing" in body["detail"]
    assert "reminder channels calendar, teams" in body["detail"]


def test_webhooks_without_their_secret(tmp_path: Path, migrated_template: Path) -> None:
    app = _ready(tmp_path, migrated_template, webhook_url="https://crm.example.com/hooks")
    assert "DEALBRIDGE_WEBHOOK_SECRET" in _not_ready(app, "settings")["detail"]


def test_no_leader_ever_seen(tmp_path: Path, migrated_template: Path) -> None:
    app = make_app(tmp_path / "ready.db", migrated_template, **COMPLETE)
    assert "dealbridge worker" in _not_ready(app, "leader")["detail"]


def test_no_leader_in_the_last_minute(tmp_path: Path, migrated_template: Path) -> None:
    app = _ready(tmp_path, migrated_template)
    with get_store(app).session() as session:
        row = session.get(SchedulerLeader, LEADER_NAME)
        assert row is not None
        row.seen_at = utcnow() - dt.timedelta(seconds=75)
    body = _not_ready(app, "leader")
    assert "seen 75 s ago" in body["detail"]
    assert "no leader in the last minute" in body["detail"]
