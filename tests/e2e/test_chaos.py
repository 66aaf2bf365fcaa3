"""The chaos run: the service as a real process, answers lost after Microsoft 365 acted, plain
429/500/timeouts, and `kill -9` mid-delivery, then a count of what reached the sandbox.

`dealbridge serve` runs as a subprocess on a SQLite file; the sandbox tenant (Graph, Entra,
the Bot Connector) and a fake CRM run in this process. The deals, reminders and meetings are
made first (in this process, on the same database, with the service stopped), so that the
service has a few hundred deliveries to make when the faults are armed. Then it is killed
with SIGKILL several times while it delivers, restarted on the same database each time, and
the storm ends. What the sandbox holds is compared with what the store says exists:

- calendar events: exactly once per open reminder (transactionId, and the lookup by key);
- cards: once per card; a second copy only where the docs say it can happen (the tenant does
  not let us read the chat) and then counted on the outbox item (``possible_duplicate``);
- webhooks: at least once; repeats share the delivery id (the CRM drops them) and are counted;
- nothing lost: every due delivery is done, and each one is there.

Run by ``make chaos`` (and so by ``.ci/run``), not by ``make test``: it kills processes and
takes one to two minutes of a shared two-core machine. Sizes: ``CHAOS_DEALS`` (default 40),
``CHAOS_MEETINGS`` (20), ``CHAOS_KILLS`` (5).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from connector.api.schemas import DealIn
from connector.app import create_app
from connector.deals.changes import upsert_deal
from connector.meetings.sync import sync_mailbox
from connector.microsoft365 import close as close_graph
from connector.store.db import get_store
from connector.store.models import OutboxItem, Reminder, Rep, TeamsCard, TeamsConversation
from sandbox.config import ALL_ROLES
from sandbox.faults import drop_connection
from sandbox.server import RunningSandbox, serve_in_background, start_sandbox
from tests.connector.conftest import _free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        not os.environ.get("DEALBRIDGE_CHAOS"), reason="the chaos run: `make chaos`"
    ),
]
SRC = Path(__file__).resolve().parents[2] / "src"
DEALS = int(os.environ.get("CHAOS_DEALS", "40"))
MEETINGS = int(os.environ.get("CHAOS_MEETINGS", "20"))
KILLS = int(os.environ.get("CHAOS_KILLS", "5"))
REPS = 8
LOST = 0.2
"""Share of the Bot Connector's, Graph's and the CRM's answers lost after they acted."""
WEBHOOK_SECRET = "whsec-chaos-0123456789"
SETTLE_SECONDS = 240


# --- a CRM that sometimes loses its answers --------------------------------------------------


@dataclass
class Crm:
    url: str = ""
    received: list[str] = field(default_factory=list)
    lost: int = 0
    refused: int = 0
    storm: bool = True
    random: random.Random = field(default_factory=lambda: random.Random(11))


@contextmanager
def running_crm() -> Iterator[Crm]:
    crm = Crm()
    lock = threading.Lock()

    @Request.application
    def app(request: Request) -> Response:
        with lock:
            draw = crm.random.random() if crm.storm else 1.0
            if draw < 0.1:  # refused before reading it: nothing received
                crm.refused += 1
                return Response("busy", status=500)
            crm.received.append(request.headers["X-DealBridge-Delivery"])
            if draw < 0.1 + LOST:  # received, and the answer is lost
                crm.lost += 1
                if draw < 0.1 + LOST / 2:
                    drop_connection(request.environ)
                return Response("gateway timeout", status=504)
        return Response("ok", status=200)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    crm.url = f"http://127.0.0.1:{server.port}/hooks"
    thread = serve_in_background(server, "chaos-crm")
    try:
        yield crm
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


# --- the service as a process ----------------------------------------------------------------


class Service:
    """`dealbridge serve` on one port and one database, started, killed and started again."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env = env
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        command = [sys.executable, "-m", "connector", "serve", "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, env=self.env, stdout=out, stderr=out)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("the service did not start: " + self.log.read_text()[-3000:])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)


def _settings(sandbox: RunningSandbox, db: Path, port: int, crm: Crm) -> dict[str, str]:
    bot = requests.get(f"{sandbox.base_url}/_sandbox/teams/bot", timeout=30).json()
    return {
        "DATABASE_URL": f"sqlite:///{db}",
        "INSTANCE_PATH": str(db.parent),
        "TENANT_ID": sandbox.tenant_id,
        "CLIENT_ID": sandbox.client_id,
        "CLIENT_SECRET": sandbox.client_secret,
        "LOGIN_BASE_URL": sandbox.base_url,
        "GRAPH_BASE_URL": sandbox.base_url,
        "BOT_OPENID_METADATA_URL": bot["openIdMetadata"],
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "REMINDER_CHANNELS": '["calendar", "teams"]',
        "CALENDAR_LEAD_HOURS": "336",
        "WEBHOOK_URL": crm.url,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "AUTO_MIGRATE": "true",
        "OUTBOX_DRAIN_SECONDS": "0.5",
        "OUTBOX_LEASE_SECONDS": "3",
        "OUTBOX_FIRST_RETRY_SECONDS": "0.5",
        "SYNC_POLL_MINUTES": "60",
        "LOG_LEVEL": "WARNING",
    }


# --- arranging the world ---------------------------------------------------------------------


def _reps(sandbox: RunningSandbox) -> list[tuple[str, str]]:
    reps = []
    for n in range(REPS):
        email = f"rep{n}@{sandbox.domain}"
        user = requests.post(
            f"{sandbox.base_url}/_sandbox/users",
            json={"userPrincipalName": email, "displayName": f"Rep {n}"},
            timeout=30,
        )
        assert user.status_code == 201, user.text
        reps.append((email, str(user.json()["id"])))
    return reps


def _install(sandbox: RunningSandbox, service: Service, reps: list[tuple[str, str]]) -> None:
    requests.post(
        f"{sandbox.base_url}/_sandbox/teams/bot",
        json={"endpoint": f"{service.url}/api/messages", "botId": sandbox.client_id},
        timeout=30,
    ).raise_for_status()
    for email, _ in reps:
        answer = requests.post(f"{sandbox.base_url}/_sandbox/teams/{email}/install", timeout=60)
        assert answer.status_code == 200, answer.text


def _seed(app: Any, sandbox: RunningSandbox, reps: list[tuple[str, str]]) -> None:
    """Deals (their reminders all due now), and held meetings with their contacts, synced."""
    now = dt.datetime.now(dt.UTC)
    with get_store(app).session() as session:
        for n in range(DEALS):
            owner = reps[n % REPS][0]
            body = DealIn.model_validate(
                {
                    "title": f"Deal {n}",
                    "pipeline": "classic5",
                    "stage": "negotiation",
                    "owner": owner,
                    "account": {"name": f"Customer {n}", "domains": [f"customer{n}.example"]},
                    "contacts": [{"email": f"buyer@customer{n}.example"}],
                }
            )
            upsert_deal(
                session,
                f"OPP-{n}",
                body,
                actor="chaos",
                now=now - dt.timedelta(days=30),
                default_pipeline="classic5",
            )
    for n in range(MEETINGS):
        organizer = reps[n % REPS][0]
        start = now - dt.timedelta(days=1, hours=n % 20)
        event = {
            "subject": f"Review {n}",
            "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {
                "dateTime": (start + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"),
                "timeZone": "UTC",
            },
            "attendees": [
                {
                    "emailAddress": {"address": f"buyer@customer{n}.example", "name": "Buyer"},
                    "type": "required",
                }
            ],
        }
        made = requests.post(
            f"{sandbox.base_url}/_sandbox/users/{organizer}/events", json=event, timeout=30
        )
        assert made.status_code < 300, made.text
    for email, _ in reps:
        report = sync_mailbox(app, email)
        assert report.error is None, report.error
    with get_store(app).session() as session:  # every open reminder falls due now
        for reminder in session.scalars(select(Reminder).where(Reminder.status == "open")):
            reminder.due_at = now - dt.timedelta(minutes=1)
        for item in session.scalars(select(OutboxItem).where(OutboxItem.status == "pending")):
            item.next_attempt_at = now


def _arm(sandbox: RunningSandbox) -> None:
    half = LOST / 2
    rules = [
        # answers lost after the Bot Connector posted: a 504, or the connection dropped (20 %)
        {"route": r"^POST /teams/v3/conversations/[^/]+/activities$", "status": "lost"},
        {"route": r"^POST /teams/v3/conversations/[^/]+/activities$", "status": "lost_reset"},
        # answers lost after Graph created the event (in a $batch: a 504 for that item) ...
        {"route": r"^POST /v1\.0/users/[^/]+/events", "status": "lost", "rate": half},
        # ... or after Graph ran the whole $batch (the connection dropped)
        {"route": r"^POST /v1\.0/\$batch", "status": "lost_reset", "rate": half / 2},
        # plain faults: nothing done
        {"route": r"^(POST|PUT) /teams/v3/", "status": 429, "retryAfter": 0.2},
        {"route": r"^(POST|PUT) /teams/v3/", "status": 500},
        {"route": r"^(POST|PUT) /teams/v3/", "status": "timeout"},
        {"route": r"^POST /v1\.0/users/[^/]+/events", "status": 429, "retryAfter": 0.2},
        {"route": r"^POST /v1\.0/users/[^/]+/events", "status": 500},
    ]
    for rule in rules:
        rate = rule.pop("rate", None)
        if rate is None:
            lost = str(rule["status"]).startswith("lost")
            rate = (half / (1 - half) if rule["status"] == "lost_reset" else half) if lost else 0.05
        answer = requests.post(
            f"{sandbox.base_url}/_sandbox/faults", json={**rule, "rate": rate}, timeout=30
        )
        assert answer.status_code == 201, answer.text


# --- reading the outcome ---------------------------------------------------------------------


def _unsettled(app: Any) -> int:
    """Deliveries still to make (in flight, or due within the next minute)."""
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    with get_store(app).session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(OutboxItem)
                .where(
                    (OutboxItem.status == "in_flight")
                    | ((OutboxItem.status == "pending") & (OutboxItem.next_attempt_at <= soon))
                )
            )
            or 0
        )


def _done(app: Any) -> int:
    with get_store(app).session() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(OutboxItem).where(OutboxItem.status == "done")
            )
            or 0
        )


def _wait_until(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def _card_identity(activity: dict[str, Any]) -> str:
    card = (activity.get("attachments") or [{}])[0].get("content") or {}
    data = dict(((card.get("refresh") or {}).get("action") or {}).get("data") or {})
    data.pop("card", None)  # the stamp changes when the card is updated in place
    return json.dumps(data, sort_keys=True)


@dataclass
class Figures:
    kills: int = 0
    lost_answers: int = 0
    lost_bot_connector: int = 0
    lost_graph: int = 0
    lost_crm: int = 0
    plain_faults: int = 0
    events: int = 0
    events_doubled: int = 0
    events_lost: int = 0
    cards: int = 0
    cards_doubled: int = 0
    cards_lost: int = 0
    cards_found_after_a_lost_answer: int = 0
    cards_counted_as_possible_duplicates: int = 0
    webhooks: int = 0
    webhooks_lost: int = 0
    webhook_repeats: int = 0
    not_done: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.__dict__.items())


def _figures(
    app: Any,
    sandbox: RunningSandbox,
    crm: Crm,
    reps: list[tuple[str, str]],
    kills: int,
    faults: list[dict[str, Any]],
) -> Figures:
    """What the sandbox and the CRM hold, against the store; ``faults`` as they were applied."""
    figures = Figures(kills=kills, lost_crm=crm.lost, plain_faults=crm.refused)
    for fault in faults:
        if not str(fault["status"]).startswith("lost"):
            figures.plain_faults += fault["applied"]
        elif "/teams/" in fault["route"]:
            figures.lost_bot_connector += fault["applied"]
        else:
            figures.lost_graph += fault["applied"]
    figures.lost_answers = figures.lost_bot_connector + figures.lost_graph + figures.lost_crm
    with get_store(app).session() as session:
        items = list(session.scalars(select(OutboxItem)))
        open_keys = set(
            session.scalars(select(Reminder.key).where(Reminder.status.in_(("open", "snoozed"))))
        )
        cards = {card.activity_id: card.key for card in session.scalars(select(TeamsCard))}
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    due = [i for i in items if i.status != "pending" or i.next_attempt_at <= soon]
    figures.not_done = dict(Counter(f"{i.kind}:{i.status}" for i in due if i.status != "done"))
    for item in due:
        if item.kind in ("teams", "teams_card"):
            figures.cards_found_after_a_lost_answer += item.result.get("action") == "found"
            figures.cards_counted_as_possible_duplicates += int(
                item.result.get("unchecked_repeats") or 0
            )
    # calendar events: one per open reminder
    on_calendars: Counter[str] = Counter()
    for email, _ in reps:
        events = requests.get(
            f"{sandbox.base_url}/_sandbox/users/{email}/events", timeout=30
        ).json()["value"]
        for event in events:
            for prop in event.get("singleValueExtendedProperties") or []:
                if "DealBridgeReminder" in prop["id"]:
                    on_calendars[prop["value"]] += 1
    figures.events = sum(on_calendars.values())
    figures.events_doubled = sum(n - 1 for n in on_calendars.values() if n > 1)
    figures.events_lost = len(open_keys - set(on_calendars))
    # cards: one per card the store knows, each in its rep's chat
    shown: Counter[str] = Counter()
    shown_ids: set[str] = set()
    for email, _ in reps:
        chat = requests.get(
            f"{sandbox.base_url}/_sandbox/teams/{email}/activities", timeout=30
        ).json()["value"]
        for activity in chat:
            if activity.get("attachments"):
                shown[f"{email} {_card_identity(activity)}"] += 1
                shown_ids.add(activity["id"])
    figures.cards = sum(shown.values())
    figures.cards_doubled = sum(n - 1 for n in shown.values() if n > 1)
    figures.cards_lost = sum(1 for activity_id in cards if activity_id not in shown_ids)
    # webhooks: every one received, repeats only with the same id
    ids = {str(i.payload["id"]) for i in items if i.kind == "webhook"}
    received = Counter(crm.received)
    figures.webhooks = len(ids)
    figures.webhooks_lost = len(ids - set(received))
    figures.webhook_repeats = sum(n - 1 for n in received.values() if n > 1)
    return figures


# --- the run ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chat_read", [True, False], ids=["chat-read", "no-chat-read"])
def test_chaos(tmp_path: Path, chat_read: bool) -> None:
    roles = (*ALL_ROLES, "Chat.Read.All") if chat_read else ALL_ROLES
    chaos = random.Random(7)
    with (
        start_sandbox(roles=roles, fault_timeout_seconds=0.3, seed=5) as sandbox,
        running_crm() as crm,
    ):
        db = tmp_path / "chaos.db"
        port = _free_port()
        settings = _settings(sandbox, db, port, crm)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DEALBRIDGE_")},
            **{f"DEALBRIDGE_{k}": v for k, v in settings.items()},
            "PYTHONPATH": os.pathsep.join([str(SRC), *sys.path]),
        }
        app = create_app(
            {
                "TESTING": True,  # no .env file
                "database_url": settings["DATABASE_URL"],
                "instance_path": db.parent,
                "auto_migrate": True,
                "scheduler_enabled": False,
                "tenant_id": sandbox.tenant_id,
                "client_id": sandbox.client_id,
                "client_secret": sandbox.client_secret,
                "login_base_url": sandbox.base_url,
                "graph_base_url": sandbox.base_url,
                "public_url": settings["PUBLIC_URL"],
                "reminder_channels": ["calendar", "teams"],
                "calendar_lead_hours": 336,
                "webhook_url": crm.url,
                "webhook_secret": WEBHOOK_SECRET,
            }
        )
        reps = _reps(sandbox)
        with get_store(app).session() as session:
            for email, entra_id in reps:
                session.add(Rep(email=email, display_name=email, entra_id=entra_id))
        service = Service(env, port, tmp_path / "service.log")
        try:
            service.start()
            _install(sandbox, service, reps)
            service.stop()
            with get_store(app).session() as session:
                known = session.scalar(select(func.count()).select_from(TeamsConversation))
            assert known == REPS
            _seed(app, sandbox, reps)
            with get_store(app).session() as session:
                queued = session.scalar(select(func.count()).select_from(OutboxItem))
            _arm(sandbox)
            service.start()
            step = max(queued // (KILLS + 2), 1)
            for _ in range(KILLS):
                # mid-delivery: once it has made a share of them, at a random moment after
                _wait_until(lambda: _done(app) >= step * (service.kills + 1), 60)
                time.sleep(chaos.uniform(0.0, 0.5))
                service.kill()
                service.start()
            # the storm goes on until nearly everything is made, then passes
            _wait_until(lambda: _done(app) >= queued * 0.95, 120)
            kept = requests.get(f"{sandbox.base_url}/_sandbox/faults", timeout=30).json()["value"]
            requests.delete(f"{sandbox.base_url}/_sandbox/faults", timeout=30)
            crm.storm = False
            deadline = time.monotonic() + SETTLE_SECONDS
            while _unsettled(app) and time.monotonic() < deadline:
                time.sleep(1.0)
        finally:
            service.stop()
        figures = _figures(app, sandbox, crm, reps, service.kills, kept)
        close_graph(app)
        get_store(app).dispose()
    print(
        f"\nchaos ({'chat read' if chat_read else 'no chat read'}): items={queued} {figures.line()}"
    )
    assert figures.not_done == {}
    assert figures.events_lost == 0
    assert figures.events_doubled == 0
    assert figures.cards_lost == 0
    assert figures.webhooks_lost == 0
    # a second card only where the chat cannot be read, and then counted
    assert figures.cards_doubled <= figures.cards_counted_as_possible_duplicates
    if chat_read:
        assert figures.cards_doubled == 0
