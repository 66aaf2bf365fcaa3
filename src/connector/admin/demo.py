"""``dealbridge demo``: the whole product on a fresh SQLite file and the sandbox tenant."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import requests
from flask import Flask
from sqlalchemy import func, select

from connector.api.keys import create_key
from connector.app import create_app
from connector.deals.changes import log_interaction, move_stage, upsert_deal
from connector.deals.models import DealIn, InteractionIn
from connector.jobs import start_scheduler
from connector.meetings.notifications import ensure_subscriptions
from connector.meetings.sync import mark_held, sync_mailbox
from connector.microsoft365 import close, graph_client
from connector.outbox import drain
from connector.store.db import get_store
from connector.store.models import Interaction, Reminder, Rep
from graph_sync.calendar import delete_event
from graph_sync.timezones import windows_name
from sandbox.server import start_sandbox

DEMO_DIR = Path("instance") / "demo"
DEMO_DOMAIN = "contoso.com"


@dataclass(frozen=True)
class DemoRep:
    email: str
    name: str
    zone: str


REPS = [
    DemoRep(f"ann.lee@{DEMO_DOMAIN}", "Ann Lee", "Europe/Berlin"),
    DemoRep(f"raj.patel@{DEMO_DOMAIN}", "Raj Patel", "America/New_York"),
    DemoRep(f"mia.chen@{DEMO_DOMAIN}", "Mia Chen", "America/Los_Angeles"),
]

# (id, title, account, domain, contact, stage, amount, days in stage, owner index)
DEALS: list[tuple[str, str, str, str, str, str, int, int, int]] = [
    (
        "OPP-1001",
        "Fabrikam ERP rollout",
        "Fabrikam",
        "fabrikam.com",
        "Dana Ruiz",
        "negotiation",
        84000,
        6,
        0,
    ),
    (
        "OPP-1002",
        "Northwind fleet telematics",
        "Northwind Traders",
        "northwindtraders.com",
        "Omar Haddad",
        "solution_presentation",
        42000,
        3,
        1,
    ),
    (
        "OPP-1003",
        "Tailspin pilot training seats",
        "Tailspin Toys",
        "tailspintoys.com",
        "Grace Kim",
        "first_interaction",
        18500,
        1,
        2,
    ),
    (
        "OPP-1004",
        "Adventure Works data platform",
        "Adventure Works",
        "adventure-works.com",
        "Liam O'Neill",
        "deal_closing",
        156000,
        2,
        0,
    ),
    (
        "OPP-1005",
        "Woodgrove Bank branch kiosks",
        "Woodgrove Bank",
        "woodgrovebank.com",
        "Priya Nair",
        "negotiation",
        97000,
        12,
        1,
    ),
    (
        "OPP-1006",
        "Litware security audit",
        "Litware",
        "litware.com",
        "Tom Becker",
        "lead_generation",
        12000,
        4,
        2,
    ),
    (
        "OPP-1007",
        "Proseware support renewal",
        "Proseware",
        "proseware.com",
        "Sara Lind",
        "deal_closing",
        23000,
        9,
        0,
    ),
    (
        "OPP-1008",
        "Wide World Importers EDI",
        "Wide World Importers",
        "wideworldimporters.com",
        "Ken Mori",
        "solution_presentation",
        38000,
        8,
        1,
    ),
    (
        "OPP-1009",
        "Contoso Pharma LIMS",
        "Contoso Pharmaceuticals",
        "contosopharma.com",
        "Eva Novak",
        "first_interaction",
        64000,
        2,
        2,
    ),
    (
        "OPP-1010",
        "Alpine Ski House booking",
        "Alpine Ski House",
        "alpineskihouse.com",
        "Jonas Berg",
        "negotiation",
        27500,
        15,
        0,
    ),
    (
        "OPP-1011",
        "Blue Yonder Airlines crew app",
        "Blue Yonder Airlines",
        "blueyonderairlines.com",
        "Mei Tan",
        "lead_generation",
        51000,
        1,
        1,
    ),
    (
        "OPP-1012",
        "Coho Winery e-commerce",
        "Coho Winery",
        "cohowinery.com",
        "Luca Rossi",
        "solution_presentation",
        14800,
        5,
        2,
    ),
    (
        "OPP-1013",
        "Fourth Coffee POS upgrade",
        "Fourth Coffee",
        "fourthcoffee.com",
        "Ana Souza",
        "won",
        21000,
        20,
        0,
    ),
    (
        "OPP-1014",
        "Graphic Design Institute licences",
        "Graphic Design Institute",
        "graphicdesigninstitute.com",
        "Noah Fischer",
        "lost",
        9000,
        30,
        1,
    ),
    (
        "OPP-1015",
        "Humongous Insurance claims AI",
        "Humongous Insurance",
        "humongousinsurance.com",
        "Ivy Clarke",
        "negotiation",
        132000,
        4,
        2,
    ),
    (
        "OPP-1016",
        "Lucerne Publishing archive",
        "Lucerne Publishing",
        "lucernepublishing.com",
        "Paul Weber",
        "first_interaction",
        16000,
        7,
        0,
    ),
    (
        "OPP-1017",
        "Margie's Travel CRM sync",
        "Margie's Travel",
        "margiestravel.com",
        "Rosa Diaz",
        "lead_generation",
        8800,
        2,
        1,
    ),
    (
        "OPP-1018",
        "Nod Publishers print hub",
        "Nod Publishers",
        "nodpublishers.com",
        "Sven Olsen",
        "deal_closing",
        45500,
        1,
        2,
    ),
    (
        "OPP-1019",
        "School of Fine Art portal",
        "School of Fine Art",
        "fineartschool.net",
        "Chloe Martin",
        "solution_presentation",
        19900,
        11,
        0,
    ),
    (
        "OPP-1020",
        "Trey Research lab sensors",
        "Trey Research",
        "treyresearch.net",
        "Yusuf Ali",
        "won",
        73000,
        14,
        1,
    ),
]
_PATH = [
    "lead_generation",
    "first_interaction",
    "solution_presentation",
    "negotiation",
    "deal_closing",
]


def seed(app: Flask, now: dt.datetime, api_key: str | None) -> str:
    """Reps, deals with history and a few logged calls; returns the API key to use."""
    with app.app_context(), get_store(app).session() as session:
        for rep in REPS:
            session.add(
                Rep(
                    email=rep.email, display_name=rep.name, time_zone=rep.zone, holiday_country=None
                )
            )
        session.flush()
        for crm_id, title, account, domain, contact, stage, amount, days, owner in DEALS:
            first = dt.timedelta(days=days + 10)
            body = DealIn(
                title=title,
                pipeline="classic5",
                stage="lead_generation",
                owner=REPS[owner].email,
                account={"name": account, "domains": [domain]},
                contacts=[{"name": contact, "email": _address(contact, domain)}],
                amount=Decimal(amount),
                currency="EUR" if owner == 0 else "USD",
                expected_close_date=(now + dt.timedelta(days=30 - days)).date(),
                crm_url=f"https://crm.example.com/opportunities/{crm_id}",
                lead_source=["website", "referral", "event"][int(crm_id[-1]) % 3],
            )
            deal, _ = upsert_deal(
                session, crm_id, body, actor="demo", now=now - first, default_pipeline="classic5"
            )
            target = stage if stage in _PATH else "deal_closing"
            steps = _PATH[1 : _PATH.index(target) + 1] + ([stage] if stage not in _PATH else [])
            for i, step in enumerate(steps, start=1):
                when = now - first + (first - dt.timedelta(days=days)) * i / len(steps)
                move_stage(session, deal, step, actor="demo", now=when)
            if days > 5 and stage in _PATH:
                call = InteractionIn(
                    kind="call",
                    subject=f"Call with {contact}",
                    text="Walked through pricing and next steps.",
                    occurred_at=now - dt.timedelta(days=days - 1),
                    by=REPS[owner].email,
                )
                log_interaction(session, deal, call, actor="demo", source="demo", now=now)
        if api_key:
            return api_key
        return create_key(session, "demo", "write")


def _address(name: str, domain: str) -> str:
    first, _, last = name.lower().replace("'", "").partition(" ")
    return f"{first}.{last}@{domain}" if last else f"{first}@{domain}"


def seed_tenant(control: str, now: dt.datetime) -> dict[str, str]:
    """The reps as users of the sandbox tenant, with Outlook working hours; their ids."""
    http = requests.Session()
    ids = {}
    for rep in REPS:
        zone = windows_name(rep.zone)
        answer = http.post(
            f"{control}/users",
            json={
                "userPrincipalName": rep.email,
                "displayName": rep.name,
                "mailboxSettings": {
                    "timeZone": zone,
                    "workingHours": {
                        "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                        "startTime": "08:30:00.0000000",
                        "endTime": "17:30:00.0000000",
                        "timeZone": {"name": zone},
                    },
                },
            },
            timeout=30,
        )
        answer.raise_for_status()
        ids[rep.email] = answer.json()["id"]
    return ids


def _when(moment: dt.datetime, minutes: int = 45) -> dict[str, dict[str, str]]:
    end = moment + dt.timedelta(minutes=minutes)
    return {
        "start": {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
    }


def _people(*addresses: str) -> list[dict[str, Any]]:
    return [
        {
            "emailAddress": {"address": a, "name": a.split("@")[0].replace(".", " ").title()},
            "type": "required",
        }
        for a in addresses
    ]


def seed_meetings(control: str, now: dt.datetime) -> dict[str, str]:
    """The demo's calendar: what must be logged, and what must not. Returns event ids."""
    ann, raj, mia = (rep.email for rep in REPS)
    day = now.replace(hour=14, minute=0, second=0, microsecond=0)
    weekly_start = day - dt.timedelta(days=14)
    meetings = {
        "two reps, one customer": (
            ann,
            {
                "subject": "Fabrikam ERP: pricing review",
                **_when(day - dt.timedelta(days=1)),
                "attendees": _people(raj, "dana.ruiz@fabrikam.com"),
                "isOnlineMeeting": True,
                "location": {"displayName": "Microsoft Teams Meeting"},
            },
        ),
        "private": (
            ann,
            {
                "subject": "Doctor's appointment",
                **_when(day - dt.timedelta(days=2)),
                "attendees": _people("dana.ruiz@fabrikam.com"),
                "sensitivity": "private",
            },
        ),
        "internal": (
            ann,
            {
                "subject": "Pipeline review",
                **_when(day - dt.timedelta(days=3)),
                "attendees": _people(raj, mia),
            },
        ),
        "weekly": (
            raj,
            {
                "subject": "Northwind telematics: weekly status",
                **_when(weekly_start, 30),
                "attendees": _people("omar.haddad@northwindtraders.com"),
                "recurrence": {
                    "pattern": {
                        "type": "weekly",
                        "interval": 1,
                        "daysOfWeek": [weekly_start.strftime("%A").lower()],
                    },
                    "range": {
                        "type": "numbered",
                        "startDate": weekly_start.date().isoformat(),
                        "numberOfOccurrences": 6,
                    },
                },
            },
        ),
        "to cancel": (
            mia,
            {
                "subject": "Humongous Insurance: claims AI demo",
                **_when(day + dt.timedelta(days=2)),
                "attendees": _people("ivy.clarke@humongousinsurance.com"),
            },
        ),
        "upcoming": (
            mia,
            {
                "subject": "Tailspin: pilot kickoff",
                **_when(day + dt.timedelta(days=1)),
                "attendees": _people("grace.kim@tailspintoys.com", "ops@tailspintoys.com"),
            },
        ),
    }
    http = requests.Session()
    ids = {}
    for name, (organizer, body) in meetings.items():
        answer = http.post(f"{control}/users/{organizer}/events", json=body, timeout=30)
        answer.raise_for_status()
        ids[name] = answer.json()["id"]
    return ids


@dataclass
class DemoRun:
    app: Flask
    api_key: str
    sandbox_url: str
    summary: list[str]


def install_teams_app(sandbox: Any, app: Flask, bot_endpoint: str) -> list[str]:
    """Point the sandbox's Bot Connector at our bot and install the app for every rep.

    The install activity reaches ``/api/messages``, so the app must be serving by then."""
    http = requests.Session()
    settings = app.extensions["dealbridge.settings"]
    http.post(
        f"{sandbox.base_url}/_sandbox/teams/bot",
        json={"endpoint": bot_endpoint, "botId": settings.effective_bot_id},
        timeout=30,
    ).raise_for_status()
    installed = []
    for rep in REPS:
        answer = http.post(f"{sandbox.base_url}/_sandbox/teams/{rep.email}/install", timeout=30)
        if answer.ok:
            installed.append(rep.email)
    return installed


def prepare_demo(
    *,
    folder: Path,
    port: int,
    sandbox: Any,
    api_key: str | None = None,
    database_url: str = "",
) -> DemoRun:
    """Seed the sandbox tenant and a fresh database, read the calendars, deliver reminders."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    bot = requests.get(f"{sandbox.base_url}/_sandbox/teams/bot", timeout=30).json()
    overrides: dict[str, Any] = {
        "bot_openid_metadata_url": bot["openIdMetadata"],
        "instance_path": folder,
        "database_url": database_url,
        "auto_migrate": True,
        "public_url": f"http://127.0.0.1:{port}",
        "tenant_id": sandbox.tenant_id,
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
        "login_base_url": sandbox.base_url,
        "graph_base_url": sandbox.base_url,
        "calendar_lead_hours": 24 * 7,  # a week of reminders on the calendars at once
        "reminder_channels": ["calendar", "teams"],
        "sync_debounce_seconds": 1.0,
    }
    app = create_app(overrides)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    control = f"{sandbox.base_url}/_sandbox"
    entra_ids = seed_tenant(control, now)
    key = seed(app, now, api_key)
    with get_store(app).session() as session:
        for rep in session.query(Rep):
            rep.entra_id = entra_ids.get(rep.email)
    events = seed_meetings(control, now)
    reports = {rep.email: sync_mailbox(app, rep.email) for rep in REPS}
    # The organizer cancels one meeting: it stays visible on its deal, as cancelled.
    mia = REPS[2].email
    delete_event(graph_client(app), entra_ids[mia], events["to cancel"])
    after = sync_mailbox(app, mia)
    reports[mia].meetings += after.meetings
    reports[mia].error = reports[mia].error or after.error
    mark_held(app)
    drain(app, limit=1000, kinds={"calendar"})  # cards go once the reps installed the app
    summary = [
        f"{email}: "
        + (f"error {r.error}" if r.error else f"{r.meetings} meetings read")
        + (f"; not logged: {dict(sorted(r.skipped.items()))}" if r.skipped else "")
        for email, r in reports.items()
    ]
    with get_store(app).session() as session:
        by_status = dict(
            session.execute(
                select(Interaction.status, func.count())
                .where(Interaction.kind == "meeting")
                .group_by(Interaction.status)
            ).all()
        )
        open_reminders = session.scalar(
            select(func.count()).select_from(Reminder).where(Reminder.status == "open")
        )
        on_calendars = session.scalar(
            select(func.count())
            .select_from(Reminder)
            .where(Reminder.calendar_event_id.is_not(None))
        )
    summary.append(f"meetings logged on deals: {dict(sorted(by_status.items()))}")
    summary.append(
        f"reminders open: {open_reminders}; on Outlook calendars this week: {on_calendars}"
    )
    return DemoRun(app=app, api_key=key, sandbox_url=sandbox.base_url, summary=summary)


def run_demo(*, port: int, sandbox_port: int, seed_only: bool = False) -> None:
    env_key = os.environ.get("DEALBRIDGE_API_KEY") or None
    with start_sandbox(port=sandbox_port, domain=DEMO_DOMAIN) as sandbox:
        run = prepare_demo(folder=DEMO_DIR, port=port, sandbox=sandbox, api_key=env_key)
        base = f"http://127.0.0.1:{port}"
        click.echo("")
        click.echo("DealBridge demo — on the sandbox Microsoft 365 tenant")
        click.echo(f"  API docs         {base}/api/docs")
        click.echo(f"  Health           {base}/healthz")
        click.echo(f"  Funnel           {base}/api/v1/analytics/funnel?pipeline=classic5")
        click.echo(f"  Meetings logged  {base}/api/v1/deals/OPP-1001/interactions")
        click.echo(f"  Reminders        {base}/api/v1/reminders?rep=ann.lee@{DEMO_DOMAIN}")
        click.echo(f"  Outlook calendars (sandbox)  {sandbox.base_url}/")
        click.echo(f"  Teams chats (sandbox)        {sandbox.base_url}/teams")
        click.echo(f"  Seeded           {len(REPS)} reps, {len(DEALS)} deals on classic5")
        for line in run.summary:
            click.echo(f"  {line}")
        click.echo(f"  Database         {DEMO_DIR / 'dealbridge.db'}")
        click.echo("  API key (write scope):" if not env_key else "  API key: DEALBRIDGE_API_KEY")
        if not env_key:
            click.echo(run.api_key)
        if seed_only:
            close(run.app)
            return
        serve_demo(run, port, sandbox, ensure_subscriptions, start_scheduler)


def serve_demo(run: DemoRun, port: int, sandbox: Any, subscribe: Any, start_scheduler: Any) -> None:
    """Serve until Ctrl-C: the reps install the Teams app, subscriptions (the sandbox calls us
    back), and the jobs that deliver due reminders as cards."""
    # why: waitress costs 66 ms on importing this module, and `demo --seed-only` never serves
    from waitress.server import create_server

    server: Any = create_server(run.app, host="127.0.0.1", port=port, threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    installed = install_teams_app(sandbox, run.app, f"http://127.0.0.1:{port}/api/messages")
    drain(run.app, limit=1000)
    subscribe(run.app)
    scheduler = start_scheduler(run.app)
    click.echo(f"  Teams app installed for {len(installed)} reps; due reminders arrive as cards.")
    click.echo("Serving. Add a meeting in the sandbox and watch it appear. Ctrl-C stops.")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        thread.join()
    except KeyboardInterrupt:
        click.echo("demo stopped")
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        server.close()
