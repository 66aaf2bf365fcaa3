"""Fixtures: a real app on a real database per test (copied from a migrated template).

The database is SQLite or PostgreSQL (``--database``; see tests/conftest.py); ``migrated_template``
comes from there.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from werkzeug.serving import make_server

from connector.api.keys import create_key
from connector.app import create_app
from connector.store.db import get_store
from sandbox.server import serve_in_background
from tests.databases import Template


def make_app(db_path: Path, template: Template, **overrides: Any) -> Flask:
    """An app on a fresh copy of the template (``db_path`` names the SQLite file)."""
    config: dict[str, Any] = {
        "TESTING": True,
        "database_url": template.fresh(db_path),
        "auto_migrate": False,
        "scheduler_enabled": False,
        "instance_path": db_path.parent,
    }
    config.update(overrides)
    return create_app(config)


@pytest.fixture
def app(tmp_path: Path, migrated_template: Template) -> Iterator[Flask]:
    app = make_app(tmp_path / "dealbridge.db", migrated_template)
    yield app
    get_store(app).dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def _key(app: Flask, scope: str) -> str:
    with get_store(app).session() as session:
        return create_key(session, f"test-{scope}", scope)  # type: ignore[arg-type]


@pytest.fixture
def write_key(app: Flask) -> str:
    return _key(app, "write")


@pytest.fixture
def read_key(app: Flask) -> str:
    return _key(app, "read")


@pytest.fixture
def auth(write_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {write_key}"}


# ---- Microsoft 365: the sandbox tenant, and the app served over HTTP beside it -------------


@dataclass
class Tenant:
    """The sandbox's control API plus the app under test, for arranging meeting scenarios."""

    sandbox: Any
    app: Flask
    base_url: str
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def domain(self) -> str:
        return str(self.sandbox.domain)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        answer = self.http.request(
            method, f"{self.sandbox.base_url}/_sandbox{path}", json=body, timeout=30
        )
        assert answer.status_code < 300, answer.text
        return answer.json() if answer.content else None

    def add_rep(self, alias: str, name: str, *, time_zone: str = "UTC") -> str:
        """A user in the tenant and a rep in DealBridge; returns the email."""
        email = f"{alias}@{self.domain}"
        user = self.control(
            "POST",
            "/users",
            {
                "userPrincipalName": email,
                "displayName": name,
                "mailboxSettings": {"timeZone": time_zone},
            },
        )
        from connector.store.models import Rep

        with get_store(self.app).session() as session:
            session.add(
                Rep(email=email, display_name=name, entra_id=user["id"], time_zone=time_zone)
            )
        return email

    def add_event(self, organizer: str, body: dict[str, Any]) -> dict[str, Any]:
        event: dict[str, Any] = self.control("POST", f"/users/{organizer}/events", body)
        return event


def meeting(
    subject: str,
    start: dt.datetime,
    attendees: list[str],
    *,
    minutes: int = 30,
    **extra: Any,
) -> dict[str, Any]:
    """A Graph event body."""
    end = start + dt.timedelta(minutes=minutes)
    return {
        "subject": subject,
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "attendees": [
            {"emailAddress": {"address": a, "name": a.split("@")[0]}, "type": "required"}
            for a in attendees
        ],
        **extra,
    }


def recurrence(start: dt.datetime, occurrences: int, *, daily: bool = False) -> dict[str, Any]:
    """A Graph event's `recurrence`: weekly on `start`'s weekday (or daily), `occurrences` times
    from `start`'s date."""
    pattern: dict[str, Any] = {"type": "daily", "interval": 1}
    if not daily:
        pattern = {"type": "weekly", "interval": 1, "daysOfWeek": [start.strftime("%A").lower()]}
    return {
        "pattern": pattern,
        "range": {
            "type": "numbered",
            "startDate": start.date().isoformat(),
            "numberOfOccurrences": occurrences,
        },
    }


@pytest.fixture(scope="session")
def sandbox_tenant() -> Iterator[Any]:
    from sandbox.server import start_sandbox

    with start_sandbox(validation_timeout_seconds=3.0, fault_timeout_seconds=1.0) as running:
        yield running


@contextmanager
def tenant_app(
    tmp_path: Path,
    template: Template,
    sandbox_tenant: Any,
    *,
    serve: bool = True,
    **overrides: Any,
) -> Iterator[Tenant]:
    """A fresh sandbox tenant and an app talking to it through the real msal and msgraph-sdk,
    served on a free port (the app's public URL) unless `serve` is False; closed after."""
    requests.post(f"{sandbox_tenant.base_url}/_sandbox/reset", timeout=30).raise_for_status()
    port = _free_port()
    app = make_app(
        tmp_path / "dealbridge.db",
        template,
        tenant_id=sandbox_tenant.tenant_id,
        client_id=sandbox_tenant.client_id,
        client_secret=sandbox_tenant.client_secret,
        login_base_url=sandbox_tenant.base_url,
        graph_base_url=sandbox_tenant.base_url,
        public_url=f"http://127.0.0.1:{port}",
        reminder_channels=["calendar"],
        **overrides,
    )
    server = make_server("127.0.0.1", port, app, threaded=True) if serve else None
    thread = serve_in_background(server) if server is not None else None
    try:
        yield Tenant(sandbox=sandbox_tenant, app=app, base_url=f"http://127.0.0.1:{port}")
    finally:
        if server is not None and thread is not None:
            server.shutdown()
            thread.join(timeout=5)
        from connector.microsoft365 import close

        scheduler = app.extensions.get("dealbridge.scheduler")
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        close(app)
        get_store(app).dispose()


@pytest.fixture
def m365(tmp_path: Path, migrated_template: Template, sandbox_tenant: Any) -> Iterator[Tenant]:
    """A fresh tenant and a fresh app talking to it through the real msal and msgraph-sdk."""
    with tenant_app(
        tmp_path, migrated_template, sandbox_tenant, sync_debounce_seconds=0.2
    ) as tenant:
        yield tenant


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The admin console's fixtures (they build on the ones above).
from tests.connector.console_fixtures import console_app, console_m365  # noqa: E402, F401
