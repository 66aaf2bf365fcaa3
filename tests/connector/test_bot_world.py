"""The Teams world the bot tests share: the sandbox tenant (Entra, Graph, Bot Connector, a
simulated rep in Teams), our app served over real HTTP as the bot, and a fake CRM receiving
webhooks. No tests here; the other `test_bot*`/`test_teams_delivery*` modules import it."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from connector.api.keys import create_key
from connector.microsoft365 import close as close_graph
from connector.outbox import DrainReport, drain
from connector.store.db import get_store
from connector.store.models import OutboxItem, Reminder
from sandbox.server import RunningSandbox, start_sandbox
from tests.connector.conftest import make_app
from tests.connector.receiver import Received, Receiver
from tests.connector.samples import deal_body
from tests.databases import Template

REP = "ann.lee@contoso.example"
WEBHOOK_SECRET = "crm-shared-secret"


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


@dataclass
class TeamsWorld:
    """Everything a Teams test drives."""

    sandbox: RunningSandbox
    app: Flask
    bot_url: str
    crm: Receiver
    rep_user_id: str
    api_key: str
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def client(self) -> FlaskClient:
        return self.app.test_client()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def control(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.http.request(method, f"{self.sandbox.base_url}/_sandbox{path}", json=body)

    def install(self, who: str = REP) -> dict[str, Any]:
        answer = self.control("POST", f"/teams/{who}/install")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def say(self, text: str, who: str = REP) -> dict[str, Any]:
        answer = self.control("POST", f"/teams/{who}/messages", {"text": text})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def press(
        self,
        activity_id: str,
        verb: str,
        data: dict[str, Any],
        *,
        inputs: dict[str, Any] | None = None,
        submit: bool = False,
        who: str = REP,
    ) -> dict[str, Any]:
        answer = self.control(
            "POST",
            f"/teams/{who}/activities/{activity_id}/actions",
            {"verb": verb, "data": data, "inputs": inputs or {}, "submit": submit},
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def chat(self, who: str = REP) -> list[dict[str, Any]]:
        answer = self.control("GET", f"/teams/{who}/activities")
        assert answer.status_code == 200, answer.text
        value: list[dict[str, Any]] = answer.json()["value"]
        return value

    def drain(self) -> DrainReport:
        return drain(self.app)

    def deal(self, crm_id: str = "OPP-1", **fields: Any) -> None:
        body = deal_body(owner=REP, **fields)
        answer = self.client.put(f"/api/v1/deals/{crm_id}", json=body, headers=self.auth)
        assert answer.status_code in (200, 201), answer.json

    def due_reminder(self, crm_id: str = "OPP-1") -> int:
        """Make the deal's first open reminder due now (as if its day had come)."""
        now = dt.datetime.now(dt.UTC)
        with get_store(self.app).session() as session:
            reminder = session.scalars(
                select(Reminder)
                .join(Reminder.deal)
                .where(Reminder.status == "open")
                .order_by(Reminder.due_at, Reminder.id)
            ).first()
            assert reminder is not None, "the deal has no open reminder"
            reminder.due_at = now - dt.timedelta(minutes=1)
            item = session.scalar(
                select(OutboxItem).where(OutboxItem.idempotency_key == f"teams:{reminder.key}")
            )
            assert item is not None
            item.next_attempt_at = now - dt.timedelta(seconds=1)
            item.status = "pending"
            return reminder.id

    def outbox(self, key: str) -> OutboxItem:
        with get_store(self.app).session() as session:
            item = session.scalar(select(OutboxItem).where(OutboxItem.idempotency_key == key))
            assert item is not None, key
            session.expunge(item)
            return item

    def webhooks(self) -> list[str]:
        return [r.headers.get("X-Dealbridge-Event", "") for r in self.crm.received]


@contextmanager
def serving(app: Any) -> Iterator[BaseWSGIServer]:
    """Serve a WSGI app on a free loopback port; stopping takes a poll (50 ms), not 0.5 s."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


@contextmanager
def fake_crm() -> Iterator[Receiver]:
    """Records the webhooks DealBridge sends and answers 200."""
    receiver = Receiver()

    @Request.application
    def answer(request: Request) -> Response:
        receiver.received.append(Received(request.path, dict(request.headers), request.get_data()))
        return Response("ok")

    with serving(answer) as server:
        receiver.url = f"http://127.0.0.1:{server.server_port}/hooks"
        yield receiver


@pytest.fixture(scope="module")
def teams_sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox() as running:
        yield running


@pytest.fixture
def world(
    teams_sandbox: RunningSandbox, tmp_path: Path, migrated_template: Template
) -> Iterator[TeamsWorld]:
    sandbox = teams_sandbox
    http = requests.Session()
    http.post(f"{sandbox.base_url}/_sandbox/reset").raise_for_status()
    user = http.post(
        f"{sandbox.base_url}/_sandbox/users",
        json={"userPrincipalName": REP, "displayName": "Ann Lee"},
    )
    assert user.status_code == 201, user.text
    metadata = http.get(f"{sandbox.base_url}/_sandbox/teams/bot").json()["openIdMetadata"]
    with fake_crm() as crm:
        app = make_app(
            tmp_path / "dealbridge.db",
            migrated_template,
            tenant_id=sandbox.tenant_id,
            client_id=sandbox.client_id,
            client_secret=sandbox.client_secret,
            login_base_url=sandbox.base_url,
            graph_base_url=sandbox.base_url,
            bot_openid_metadata_url=metadata,
            public_url="https://dealbridge.example.com",
            reminder_channels=["teams"],
            webhook_url=crm.url,
            webhook_secret=WEBHOOK_SECRET,
        )
        stack = serving(app)
        server = stack.__enter__()
        bot_url = f"http://127.0.0.1:{server.server_port}/api/messages"
        http.post(f"{sandbox.base_url}/_sandbox/teams/bot", json={"endpoint": bot_url})
        with get_store(app).session() as session:
            key = create_key(session, "test-write", "write")
        world = TeamsWorld(sandbox, app, bot_url, crm, user.json()["id"], key, http)
        world.client.put(
            f"/api/v1/reps/{REP}",
            json={"display_name": "Ann Lee", "entra_id": world.rep_user_id},
            headers=world.auth,
        )
        try:
            yield world
        finally:
            stack.__exit__(None, None, None)
            close_graph(app)
            get_store(app).dispose()
