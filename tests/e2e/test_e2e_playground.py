"""Our bot against Microsoft's own Teams client, `@microsoft/m365agentsplayground`.

The playground posts activities without any token unless it holds Azure credentials it would
use at login.microsoftonline.com, which this machine cannot reach. Our `/api/messages` keeps
refusing unauthenticated requests. So the playground's endpoint is the sandbox's channel relay
(`POST /_sandbox/teams/channel`): it signs each activity as the Bot Connector does (RS256, its
own key published at the OpenID metadata URL our app is configured with, `aud` our bot id,
`serviceurl` the playground's connector) and forwards it to our bot. That is the real shape of
Teams traffic (client → Bot Connector → bot), and nothing in our app is relaxed for the test.
Our bot answers through the playground's connector with a real bot token from the sandbox's
Entra (MSAL); what the playground's client shows comes from its WebSocket stream.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from connector.api.keys import create_key
from connector.app import create_app
from connector.microsoft365 import close as close_graph
from connector.outbox import drain
from connector.store.db import get_store
from connector.store.models import OutboxItem, Reminder, TeamsConversation
from sandbox.server import RunningSandbox, start_sandbox
from tests.connector.samples import deal_body
from tests.connector.test_bot_world import serving
from tests.databases import Template

pytestmark = pytest.mark.node
TESTS = Path(__file__).resolve().parents[1]
PLAYGROUND = TESTS / "node_modules" / "@microsoft" / "m365agentsplayground" / "cli.js"
REP = "ann.lee@contoso.example"
TEAMS_USER = "29:1ann-in-the-playground"
CHAT = "a:1personal-chat-with-ann"
CARD = "application/vnd.microsoft.card.adaptive"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Stream:
    """The playground's client WebSocket (`/_ws_conversation/v1/conversations/stream`), read
    with a minimal RFC 6455 client: what a person would see appear in the chat."""

    def __init__(self, port: int) -> None:
        self.messages: list[dict[str, Any]] = []
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self._sock.sendall(
            (
                "GET /_ws_conversation/v1/conversations/stream HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self._sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head[:80]
        self._sock.settimeout(None)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self._sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def _read(self) -> None:
        buffer = b""
        try:
            while True:
                first, second = self._exact(2)
                length = second & 0x7F
                if length == 126:
                    length = int.from_bytes(self._exact(2), "big")
                elif length == 127:
                    length = int.from_bytes(self._exact(8), "big")
                payload = self._exact(length)
                opcode = first & 0x0F
                if opcode == 8:
                    return
                if opcode in (0, 1):
                    buffer += payload
                    if first & 0x80:
                        self.messages.append(json.loads(buffer))
                        buffer = b""
        except (ConnectionError, OSError, ValueError):
            return

    def wait_for(self, test: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for message in list(self.messages):
                if test(message):
                    return message
            time.sleep(0.05)
        raise AssertionError(f"the playground never showed {what}: {self.messages[-3:]}")

    def close(self) -> None:
        self._sock.close()


def _card_of(message: dict[str, Any]) -> dict[str, Any] | None:
    for attachment in message.get("message", {}).get("attachments") or []:
        if attachment.get("contentType") == CARD:
            content: dict[str, Any] = attachment["content"]
            return content
    return None


def _texts(card: Any) -> str:
    if isinstance(card, dict):
        own = card.get("text") if isinstance(card.get("text"), str) else ""
        return " ".join([own, *(_texts(v) for v in card.values())])
    if isinstance(card, list):
        return " ".join(_texts(v) for v in card)
    return ""


def _button(card: Any, verb: str, **match: str) -> dict[str, Any] | None:
    if isinstance(card, dict):
        data = card.get("data")
        if card.get("type") == "Action.Execute" and card.get("verb") == verb:
            assert isinstance(data, dict)
            if all(data.get(k) == v for k, v in match.items()):
                return data
        for value in card.values():
            found = _button(value, verb, **match)
            if found is not None:
                return found
    elif isinstance(card, list):
        for value in card:
            found = _button(value, verb, **match)
            if found is not None:
                return found
    return None


def _colleagues() -> str:
    # The playground's config schema wants at least five other users.
    return "".join(
        f"""  - id: "29:1colleague-{n}"
    name: Colleague {n}
    userPrincipleName: colleague{n}@contoso.example
    aadObjectId: 00000000-0000-0000-0000-00000000004{n}
    givenName: Colleague
    surname: "{n}"
    email: colleague{n}@contoso.example
"""
        for n in range(1, 6)
    )


def _playground_config(sandbox: RunningSandbox, rep_id: str) -> str:
    return f"""version: "0.1.1"
tenantId: {sandbox.tenant_id}
bot:
  id: {sandbox.client_id}
  name: DealBridge
currentUser:
  id: "{TEAMS_USER}"
  name: Ann Lee
  userPrincipleName: {REP}
  aadObjectId: {rep_id}
  givenName: Ann
  surname: Lee
  email: {REP}
users:
{_colleagues()}personalChat:
  id: "{CHAT}"
groupChat:
  id: group-chat-id
  name: Group Chat
team:
  id: team-id
  name: My Team
  aadGroupId: 00000000-0000-0000-0000-000000000031
  channels:
    - id: channel-announcements-id
      name: Announcements
"""


@pytest.fixture
def playground_world(tmp_path: Path, migrated_template: Template) -> Iterator[dict[str, Any]]:
    if shutil.which("node") is None or not PLAYGROUND.exists():
        pytest.skip("node or tests/node_modules (npm ci in tests/) is missing: make npm")
    with start_sandbox() as sandbox:
        http = requests.Session()
        user = http.post(
            f"{sandbox.base_url}/_sandbox/users",
            json={"userPrincipalName": REP, "displayName": "Ann Lee"},
        ).json()
        metadata = http.get(f"{sandbox.base_url}/_sandbox/teams/bot").json()["openIdMetadata"]
        app = create_app(
            {
                "TESTING": True,
                "database_url": migrated_template.fresh(tmp_path / "dealbridge.db"),
                "auto_migrate": False,
                "scheduler_enabled": False,
                "instance_path": tmp_path,
                "tenant_id": sandbox.tenant_id,
                "client_id": sandbox.client_id,
                "client_secret": sandbox.client_secret,
                "login_base_url": sandbox.base_url,
                "graph_base_url": sandbox.base_url,
                "bot_openid_metadata_url": metadata,
                "reminder_channels": ["teams"],
            }
        )
        with get_store(app).session() as session:
            key = create_key(session, "e2e", "write")
        auth = {"Authorization": f"Bearer {key}"}
        app.test_client().put(f"/api/v1/reps/{REP}", json={"entra_id": user["id"]}, headers=auth)
        (tmp_path / ".m365agentsplayground.yml").write_text(
            _playground_config(sandbox, user["id"]), encoding="utf-8"
        )
        with serving(app) as server:
            bot_url = f"http://127.0.0.1:{server.server_port}/api/messages"
            http.post(f"{sandbox.base_url}/_sandbox/teams/bot", json={"endpoint": bot_url})
            port = _free_port()
            log = (tmp_path / "playground.out").open("w")
            playground = subprocess.Popen(
                [
                    "node",
                    str(PLAYGROUND),
                    "--app-endpoint",
                    f"{sandbox.base_url}/_sandbox/teams/channel",
                    "--channel-id",
                    "msteams",
                    "--port",
                    str(port),
                    "--disable-telemetry",
                ],
                cwd=tmp_path,
                env={
                    **os.environ,
                    "TEAMSAPPTESTER_BROWSER": "none",
                    "M365_AGENTS_PLAYGROUND_LOGFILE": str(tmp_path / "playground.log"),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                base = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if http.get(f"{base}/_internal/v1/config", timeout=2).ok:
                            break
                    except requests.ConnectionError:
                        pass
                    assert playground.poll() is None, (tmp_path / "playground.out").read_text()
                    assert time.monotonic() < deadline, "the playground did not start"
                    time.sleep(0.2)
                stream = Stream(port)
                try:
                    yield {"app": app, "base": base, "http": http, "auth": auth, "stream": stream}
                finally:
                    stream.close()
            finally:
                playground.terminate()
                playground.wait(timeout=10)
                log.close()
                close_graph(app)
                get_store(app).dispose()


def _invoke(world: dict[str, Any], activity_id: str, verb: str, data: dict[str, Any]) -> Any:
    answer = world["http"].post(
        f"{world['base']}/_conversation/v1/invoke",
        json={
            "name": "adaptiveCard/action",
            "value": {
                "action": {"type": "Action.Execute", "verb": verb, "data": data},
                "trigger": "manual",
            },
            "from": {"id": TEAMS_USER},
            "conversation": {"id": CHAT},
            "replyToId": activity_id,
        },
        timeout=20,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_rep_installs_asks_for_help_and_works_a_reminder_card_in_the_playground(
    playground_world: dict[str, Any],
) -> None:
    world = playground_world
    http, base, stream, app = world["http"], world["base"], world["stream"], world["app"]

    # Install: the playground sends installationUpdate and conversationUpdate through the relay.
    installed = http.post(f"{base}/_debug/conversation/{CHAT}/installation", json={})
    assert installed.status_code == 200
    deadline = time.monotonic() + 15
    stored: TeamsConversation | None = None
    while stored is None and time.monotonic() < deadline:
        with get_store(app).session() as session:
            stored = session.scalar(select(TeamsConversation))
        time.sleep(0.1)
    assert stored is not None, "the install never reached the bot"
    assert (stored.rep_email, stored.conversation_id) == (REP, CHAT)

    # help: the answer is a card in the chat.
    http.post(
        f"{base}/_conversation/v1/conversations/{CHAT}/messages",
        json={"from": {"id": TEAMS_USER}, "text": "help", "textFormat": "plain"},
    ).raise_for_status()
    help_card = stream.wait_for(
        lambda m: "What DealBridge can do" in json.dumps(_card_of(m) or {}), "the help card"
    )
    assert help_card["action"] == "createMessage"

    # A reminder falls due: its card appears in the chat.
    client = app.test_client()
    client.put(
        "/api/v1/deals/OPP-1",
        json=deal_body(owner=REP, stage="negotiation"),
        headers=world["auth"],
    )
    now = dt.datetime.now(dt.UTC)
    with get_store(app).session() as session:
        reminder = session.scalars(select(Reminder).order_by(Reminder.due_at)).first()
        assert reminder is not None
        reminder.due_at = now - dt.timedelta(minutes=1)
        item = session.scalar(
            select(OutboxItem).where(OutboxItem.idempotency_key == f"teams:{reminder.key}")
        )
        assert item is not None
        item.next_attempt_at = now - dt.timedelta(seconds=1)
        reminder_id = reminder.id
    assert drain(app).delivered >= 1
    shown = stream.wait_for(lambda m: "Stage reminder" in _texts(_card_of(m)), "the reminder card")
    card = _card_of(shown)
    activity_id = shown["message"]["messageId"]

    # Snooze, pressed in the playground: the refreshed card comes back.
    snooze = _button(card, "snooze", snooze="1d")
    assert snooze is not None
    snoozed = _invoke(world, activity_id, "snooze", snooze)
    assert snoozed["type"] == CARD
    assert "Snoozed until" in _texts(snoozed["value"])

    # Done on the refreshed card.
    done = _button(snoozed["value"], "done")
    assert done is not None
    finished = _invoke(world, activity_id, "done", done)
    assert "✔ Done by ann.lee@contoso.example" in _texts(finished["value"])
    assert _button(finished["value"], "done") is None
    with get_store(app).session() as session:
        assert session.get(Reminder, reminder_id).status == "done"  # type: ignore[union-attr]
