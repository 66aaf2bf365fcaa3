"""``dealbridge demo``: the whole product on a fresh SQLite file and the sandbox tenant."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import secrets
import shlex
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args

import click
import requests
from flask import Flask
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.admin.server import start_background
from connector.api.keys import create_key
from connector.app import create_app
from connector.deals.changes import log_interaction, move_stage, upsert_deal
from connector.deals.models import DealIn, InteractionIn
from connector.heap import settle
from connector.meetings.attendance import check_due
from connector.meetings.notifications import ensure_subscriptions
from connector.meetings.sync import SyncReport, mark_held, sync_mailbox
from connector.microsoft365 import close, graph_client
from connector.outbox import drain
from connector.store.db import get_store
from connector.store.models import Interaction, Reminder, Rep
from graph_sync.calendar import delete_event
from graph_sync.timezones import windows_name
from sandbox.server import start_sandbox

DEMO_DIR = Path("instance") / "demo"
"""Under the folder the demo runs in; the one command besides `db upgrade` that creates one."""
DEMO_DOMAIN = "contoso.com"


DATA_FILE = Path(__file__).with_name("demo_data.json")
Stage = Literal[
    "lead_generation",
    "first_interaction",
    "solution_presentation",
    "negotiation",
    "deal_closing",
    "won",
    "lost",
]
_PATH: list[str] = list(get_args(Stage))[:5]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DemoRep(_Strict):
    email: str
    name: str
    time_zone: str
    """IANA name; the sandbox user gets its Windows name, as Outlook stores it."""
    currency: str


class DemoDeal(_Strict):
    crm_id: str
    title: str
    account: str
    domain: str
    contact: str
    stage: Stage
    amount: int
    days_in_stage: int = Field(ge=0)
    owner: str
    """A rep's email."""
    lead_source: str


class DemoMeeting(_Strict):
    name: str
    """How the demo refers to it (``"to cancel"`` is the one the organizer deletes)."""
    organizer: str
    subject: str
    days_from_today: int
    """At 14:00 UTC that many days from today."""
    minutes: int = Field(default=45, gt=0)
    attendees: list[str]
    online: bool = False
    sensitivity: Literal["normal", "private"] = "normal"
    weekly_occurrences: int | None = Field(default=None, gt=0)
    joined: list[str] | None = None
    """Who joined the Teams meeting (its attendance report); None: no report."""


class DemoData(_Strict):
    reps: list[DemoRep] = Field(min_length=3)
    deals: list[DemoDeal]
    meetings: list[DemoMeeting]

    @model_validator(mode="after")
    def _people_are_reps(self) -> DemoData:
        reps = {r.email for r in self.reps}
        unknown = sorted(
            {d.owner for d in self.deals} - reps | {m.organizer for m in self.meetings} - reps
        )
        if unknown:
            raise ValueError(f"owners and organizers must be reps; not reps: {unknown}")
        return self

    def rep(self, email: str) -> DemoRep:
        return next(r for r in self.reps if r.email == email)


def load_demo_data(path: Path) -> DemoData:
    """The demo's reps, deals and meetings from a JSON file; a bad file names its field."""
    try:
        return DemoData.model_validate_json(path.read_bytes())
    except ValidationError as e:
        raise ValueError(f"{path}: {e}") from e


@cache
def demo_data() -> DemoData:
    return load_demo_data(DATA_FILE)


def seed(app: Flask, now: dt.datetime, api_key: str | None) -> str:
    """Reps, deals with history and a few logged calls; returns the API key to use."""
    data = demo_data()
    with app.app_context(), get_store(app).session() as session:
        for rep in data.reps:
            session.add(
                Rep(
                    email=rep.email,
                    display_name=rep.name,
                    time_zone=rep.time_zone,
                    holiday_country=None,
                )
            )
        session.flush()
        for spec in data.deals:
            _seed_deal(session, spec, data.rep(spec.owner), now)
        if api_key:
            return api_key
        return create_key(session, "demo", "write")


def _seed_deal(session: Session, spec: DemoDeal, owner: DemoRep, now: dt.datetime) -> None:
    """One deal walked up the pipeline to its stage, with a call if it has sat there a while."""
    days, stage = spec.days_in_stage, spec.stage
    first = dt.timedelta(days=days + 10)
    body = DealIn(
        title=spec.title,
        pipeline="classic5",
        stage="lead_generation",
        owner=owner.email,
        account={"name": spec.account, "domains": [spec.domain]},
        contacts=[{"name": spec.contact, "email": _address(spec.contact, spec.domain)}],
        amount=Decimal(spec.amount),
        currency=owner.currency,
        expected_close_date=(now + dt.timedelta(days=30 - days)).date(),
        crm_url=f"https://crm.example.com/opportunities/{spec.crm_id}",
        lead_source=spec.lead_source,
    )
    deal, _ = upsert_deal(
        session, spec.crm_id, body, actor="demo", now=now - first, default_pipeline="classic5"
    )
    target = stage if stage in _PATH else "deal_closing"
    steps = _PATH[1 : _PATH.index(target) + 1] + ([stage] if stage not in _PATH else [])
    for i, step in enumerate(steps, start=1):
        when = now - first + (first - dt.timedelta(days=days)) * i / len(steps)
        move_stage(session, deal, step, actor="demo", now=when)
    if days > 5 and stage in _PATH:
        call = InteractionIn(
            kind="call",
            subject=f"Call with {spec.contact}",
            text="Walked through pricing and next steps.",
            occurred_at=now - dt.timedelta(days=days - 1),
            by=owner.email,
        )
        log_interaction(session, deal, call, actor="demo", source="demo", now=now)


def _address(name: str, domain: str) -> str:
    first, _, last = name.lower().replace("'", "").partition(" ")
    return f"{first}.{last}@{domain}" if last else f"{first}@{domain}"


def seed_tenant(control: str, now: dt.datetime) -> dict[str, str]:
    """The reps as users of the sandbox tenant, with Outlook working hours; their ids."""
    http = requests.Session()
    ids = {}
    for rep in demo_data().reps:
        zone = windows_name(rep.time_zone)
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


def _event(spec: DemoMeeting, day: dt.datetime) -> dict[str, Any]:
    """A Graph event body for one of the demo's meetings."""
    start = day + dt.timedelta(days=spec.days_from_today)
    body: dict[str, Any] = {
        "subject": spec.subject,
        **_when(start, spec.minutes),
        "attendees": _people(*spec.attendees),
    }
    if spec.online:
        body["isOnlineMeeting"] = True
        body["location"] = {"displayName": "Microsoft Teams Meeting"}
    if spec.sensitivity != "normal":
        body["sensitivity"] = spec.sensitivity
    if spec.weekly_occurrences:
        body["recurrence"] = {
            "pattern": {
                "type": "weekly",
                "interval": 1,
                "daysOfWeek": [start.strftime("%A").lower()],
            },
            "range": {
                "type": "numbered",
                "startDate": start.date().isoformat(),
                "numberOfOccurrences": spec.weekly_occurrences,
            },
        }
    return body


def seed_meetings(control: str, now: dt.datetime) -> dict[str, str]:
    """The demo's calendar: what must be logged, and what must not. Returns event ids."""
    day = now.replace(hour=14, minute=0, second=0, microsecond=0)
    http = requests.Session()
    ids = {}
    for spec in demo_data().meetings:
        answer = http.post(
            f"{control}/users/{spec.organizer}/events", json=_event(spec, day), timeout=30
        )
        answer.raise_for_status()
        ids[spec.name] = answer.json()["id"]
        if spec.online and spec.joined is not None:  # Teams attendance: who came
            start = day + dt.timedelta(days=spec.days_from_today)
            http.post(
                f"{control}/attendance",
                json={
                    "joinUrl": answer.json()["onlineMeeting"]["joinUrl"],
                    "start": start.isoformat(),
                    "end": (start + dt.timedelta(minutes=spec.minutes)).isoformat(),
                    "joined": [{"email": who, "minutes": spec.minutes} for who in spec.joined],
                    "readyAfterMinutes": 0,
                },
                timeout=30,
            ).raise_for_status()
    return ids


@dataclass
class DemoRun:
    app: Flask
    api_key: str
    sandbox_url: str
    summary: list[str]


# ---- the admin console: one sandbox user holds the app role --------------------------------

DEMO_ADMIN = f"admin@{DEMO_DOMAIN}"


def seed_console_admin(control: str) -> None:
    """The tenant's admin, holding the app role DealBridge.Admin (the console lets them in)."""
    http = requests.Session()
    http.post(
        f"{control}/users",
        json={"userPrincipalName": DEMO_ADMIN, "displayName": "Dana Admin"},
        timeout=30,
    ).raise_for_status()
    http.post(
        f"{control}/approles",
        json={"userPrincipalName": DEMO_ADMIN, "role": "DealBridge.Admin"},
        timeout=30,
    ).raise_for_status()


def console_sign_in_url(base: str) -> str:
    """One click: the console sends the browser to the sandbox's Entra, which signs the admin in
    at once (``login_hint`` names them), and back to the console, signed in."""
    return f"{base}/admin/sign-in?login_hint={DEMO_ADMIN}"


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
    for rep in demo_data().reps:
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
        "tab_frame_ancestors": [sandbox.base_url],  # the sandbox's Teams page frames the tab
        "admin_session_key": secrets.token_urlsafe(32),  # the admin console, one run's sessions
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
    seed_console_admin(control)
    data = demo_data()
    reports = {rep.email: sync_mailbox(app, rep.email) for rep in data.reps}
    # The organizer cancels one meeting: it stays visible on its deal, as cancelled.
    mia = next(m.organizer for m in data.meetings if m.name == "to cancel")
    delete_event(graph_client(app), entra_ids[mia], events["to cancel"])
    after = sync_mailbox(app, mia)
    reports[mia].meetings += after.meetings
    reports[mia].error = reports[mia].error or after.error
    mark_held(app)
    attendance = check_due(app)  # Teams attendance of the meetings that ended: held, no-show
    drain(app, limit=1000, kinds={"calendar"})  # cards go once the reps installed the app
    summary = _summary(app, reports)
    results = [result for _, result in attendance]
    summary.append(
        f"Teams attendance: {results.count('held')} held, {results.count('no_show')} no-show, "
        f"{results.count('not_verified')} not verified"
    )
    return DemoRun(app=app, api_key=key, sandbox_url=sandbox.base_url, summary=summary)


def _summary(app: Flask, reports: dict[str, SyncReport]) -> list[str]:
    """What each mailbox's round read, and what the store holds now."""
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
    return summary


class DemoBusy(click.ClickException):
    """Another demo holds this folder: nothing was deleted or started."""

    exit_code = 2


@contextmanager
def demo_lock(folder: Path) -> Iterator[None]:
    """Hold ``<folder>.lock`` (an exclusive flock, released when the process ends, however it
    ends) while the demo runs, so a second demo never deletes a database the first has open."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    path = folder.parent / f"{folder.name}.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            raise DemoBusy(
                f"a demo is already running on {folder.resolve()} (pid {pid}); stop it with "
                "Ctrl-C, or start this one from another folder. Nothing was deleted."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def environment_lines(
    run: DemoRun, sandbox: Any, port: int, *, key_is_yours: bool = False
) -> list[str]:
    """The exact `export` lines that point the CLI (`doctor`, `sync`, `keys`...) at the demo;
    a key of your own (``key_is_yours``) is not printed back."""
    settings = run.app.extensions["dealbridge.settings"]
    values = {
        "DEALBRIDGE_DATABASE_URL": settings.effective_database_url,
        "DEALBRIDGE_TENANT_ID": sandbox.tenant_id,
        "DEALBRIDGE_CLIENT_ID": sandbox.client_id,
        "DEALBRIDGE_CLIENT_SECRET": sandbox.client_secret,
        "DEALBRIDGE_LOGIN_BASE_URL": sandbox.base_url,
        "DEALBRIDGE_GRAPH_BASE_URL": sandbox.base_url,
        "DEALBRIDGE_BOT_OPENID_METADATA_URL": settings.bot_openid_metadata_url,
        "DEALBRIDGE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DEALBRIDGE_CALENDAR_LEAD_HOURS": str(settings.calendar_lead_hours),
        "DEALBRIDGE_API_KEY": run.api_key,
    }
    if key_is_yours:  # given in DEALBRIDGE_API_KEY: already in the shell, not printed back
        del values["DEALBRIDGE_API_KEY"]
    marks = {"DEALBRIDGE_CLIENT_SECRET": "  # the sandbox demo secret, not a real one"}
    return [
        f"export {name}={shlex.quote(value)}{marks.get(name, '')}" for name, value in values.items()
    ]


def curl_lines(base: str) -> list[str]:
    auth = '-H "Authorization: Bearer $DEALBRIDGE_API_KEY"'
    return [
        f"curl {base}/healthz",
        f"curl {auth} {base}/api/v1/deals/OPP-1001/interactions",
        f"curl {auth} '{base}/api/v1/reminders?rep=ann.lee@{DEMO_DOMAIN}'",
        f"curl {auth} '{base}/api/v1/analytics/funnel?pipeline=classic5'",
        f"curl {auth} '{base}/api/v1/interactions?status=needs_choice'",
    ]


def run_demo(*, port: int, sandbox_port: int, seed_only: bool = False) -> None:
    """The caller has checked both ports; the lock is taken before anything is deleted."""
    env_key = os.environ.get("DEALBRIDGE_API_KEY") or None
    with demo_lock(DEMO_DIR), start_sandbox(port=sandbox_port, domain=DEMO_DOMAIN) as sandbox:
        run = prepare_demo(folder=DEMO_DIR, port=port, sandbox=sandbox, api_key=env_key)
        data = demo_data()
        base = f"http://127.0.0.1:{port}"
        click.echo("")
        click.echo("DealBridge demo — on the sandbox Microsoft 365 tenant")
        click.echo(f"  Start page       {base}/  (links to the docs and the sandbox)")
        click.echo(f"  API docs         {base}/api/docs")
        click.echo(f"  Admin console    {console_sign_in_url(base)}  (one click, as {DEMO_ADMIN})")
        click.echo(f"  Outlook calendars (sandbox)  {sandbox.base_url}/")
        click.echo(f"  Teams chats (sandbox)        {sandbox.base_url}/teams")
        click.echo(f"  Seeded           {len(data.reps)} reps, {len(data.deals)} deals on classic5")
        for line in run.summary:
            click.echo(f"  {line}")
        click.echo(f"  Database         {(DEMO_DIR / 'dealbridge.db').resolve()}")
        click.echo(
            "  API key (write scope)"
            + (": DEALBRIDGE_API_KEY, as you set it" if env_key else ", new for this run")
        )
        click.echo("")
        click.echo("The API needs the key (a browser cannot send it). Point the CLI, `dealbridge")
        click.echo("doctor` and `dealbridge sync` at this demo by pasting these lines in a shell:")
        for line in environment_lines(run, sandbox, port, key_is_yours=env_key is not None):
            click.echo(f"  {line}")
        click.echo("Then try:")
        for line in curl_lines(base):
            click.echo(f"  {line}")
        if seed_only:
            close(run.app)
            return
        serve_demo(run, port, sandbox, ensure_subscriptions, start_background)  # leads, logs


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
    settle()  # what start-up made, out of the collector's full passes (as `serve` does)
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
