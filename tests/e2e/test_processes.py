"""Many processes on one PostgreSQL database: two web, three workers, the leader and a worker
killed with SIGKILL mid-work, and then a count of what reached the sandbox.

PostgreSQL is the suite's throwaway cluster (tests/databases.py); this test gets a fresh copy
of the migrated template. The sandbox (Graph, Entra, the Bot Connector) runs in this process;
``dealbridge serve`` (web only: ``DEALBRIDGE_SCHEDULER_ENABLED=false``) twice and ``dealbridge
worker`` three times run as subprocesses on free ports. One of the workers leads the scheduler.

Driven through the processes: deals through both web processes' REST API (reminders: calendar
events and Teams cards), the reps' Graph subscriptions (outbox items the workers deliver, with
the first web process's public URL), meetings posted into the sandbox calendars (each with two
reps), and so the sandbox's change notifications to that URL. Mid-work the leader (read from
the ``scheduler_leader`` row) and then another worker are killed; both are started again.

Checked, once settled: every reminder's calendar event exactly once; every card exactly once
(no answers are lost here); every meeting logged once, with both its reps' mailboxes; each
periodic job run once per period (``job_runs``); nothing lost (no outbox item pending, in flight
or dead). Runs under ``pytest --database=postgresql`` only (so in ``make test``'s PostgreSQL
run); about a minute. Sizes: ``PROCS_DEALS`` (default 24), ``PROCS_MEETINGS`` (12).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select, update

from connector.api.keys import create_key
from connector.meetings.notifications import SUBSCRIPTION_KIND, SubscriptionChange
from connector.outbox import enqueue
from connector.store.db import Store
from connector.store.models import (
    Interaction,
    JobRun,
    OutboxItem,
    Reminder,
    Rep,
    SchedulerLeader,
    TeamsCard,
    TeamsConversation,
)
from sandbox.config import ALL_ROLES
from sandbox.server import RunningSandbox, start_sandbox
from tests.connector.conftest import _free_port
from tests.databases import Template
from tests.e2e.test_chaos import _card_identity, _reps, _wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
SRC = Path(__file__).resolve().parents[2] / "src"
DEALS = int(os.environ.get("PROCS_DEALS", "24"))
MEETINGS = int(os.environ.get("PROCS_MEETINGS", "12"))
REPS = 8  # as tests/e2e/test_chaos.py's _reps makes
LEAD_HOURS = 336  # DEALBRIDGE_CALENDAR_LEAD_HOURS: every new reminder's event at once
SETTLE_SECONDS = 150


class Process:
    """One ``dealbridge`` subprocess (``serve`` or ``worker``), started, killed, started again."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "connector", *self.args],
                env=self.env,
                stdout=out,
                stderr=out,
            )
        if self.port is None:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not start: " + self.log.read_text()[-3000:])

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)


def _env(sandbox: RunningSandbox, url: str, public_url: str, *, web: bool) -> dict[str, str]:
    bot = requests.get(f"{sandbox.base_url}/_sandbox/teams/bot", timeout=30).json()
    settings = {
        "DATABASE_URL": url,
        "TENANT_ID": sandbox.tenant_id,
        "CLIENT_ID": sandbox.client_id,
        "CLIENT_SECRET": sandbox.client_secret,
        "LOGIN_BASE_URL": sandbox.base_url,
        "GRAPH_BASE_URL": sandbox.base_url,
        "BOT_OPENID_METADATA_URL": bot["openIdMetadata"],
        "PUBLIC_URL": public_url,
        "REMINDER_CHANNELS": '["calendar", "teams"]',
        "CALENDAR_LEAD_HOURS": str(LEAD_HOURS),
        "AUTO_MIGRATE": "false",
        "OUTBOX_LEASE_SECONDS": "3",
        "OUTBOX_FIRST_RETRY_SECONDS": "0.5",
        "SYNC_POLL_MINUTES": "60",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        "SCHEDULER_ENABLED": "false" if web else "true",
    }
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("DEALBRIDGE_")},
        **{f"DEALBRIDGE_{k}": v for k, v in settings.items()},
        "PYTHONPATH": os.pathsep.join([str(SRC), *sys.path]),
    }


def _deal(n: int, owner: str) -> dict[str, Any]:
    return {
        "title": f"Deal {n}",
        "pipeline": "classic5",
        "stage": "negotiation",
        "owner": owner,
        "account": {"name": f"Customer {n}", "domains": [f"customer{n}.example"]},
        "contacts": [{"email": f"buyer@customer{n}.example"}],
    }


def _meeting(n: int, organizer: str, other_rep: str) -> dict[str, Any]:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1, hours=n % 20)
    end = start + dt.timedelta(minutes=30)
    return {
        "subject": f"Review {n}",
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "attendees": [
            {
                "emailAddress": {"address": f"buyer@customer{n}.example", "name": "Buyer"},
                "type": "required",
            },
            {"emailAddress": {"address": other_rep, "name": "Rep"}, "type": "required"},
        ],
    }


def _count(store: Store, query: Any) -> int:
    with store.sessions() as session:
        return int(session.scalar(query) or 0)


def _make_due_now(store: Store) -> None:
    """Every open reminder (and its card) falls due now: the deals are new, their reminders
    weeks away; the chaos test does the same."""
    now = dt.datetime.now(dt.UTC)
    with store.session() as session:
        session.execute(
            update(Reminder)
            .where(Reminder.status == "open")
            .values(due_at=now - dt.timedelta(minutes=1))
        )
        session.execute(
            update(OutboxItem)
            .where(OutboxItem.status == "pending", OutboxItem.next_attempt_at > now)
            .values(next_attempt_at=now)
        )


def _leader_pid(store: Store) -> int | None:
    with store.sessions() as session:
        row = session.get(SchedulerLeader, "scheduler")
        if row is None or row.seen_at < dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5):
            return None
        return int(row.holder.rsplit(":", 1)[1])


@dataclass
class Figures:
    kills: int = 0
    failover_seconds: float = 0.0
    deals: int = 0
    meetings: int = 0
    outbox_items: int = 0
    notifications: int = 0
    events: int = 0
    events_doubled: int = 0
    events_lost: int = 0
    cards: int = 0
    cards_doubled: int = 0
    cards_lost: int = 0
    meetings_logged: int = 0
    meetings_doubled: int = 0
    meetings_missing_a_rep: int = 0
    job_periods: dict[str, int] = field(default_factory=dict)
    job_periods_doubled: int = 0
    job_runs_retried: int = 0
    not_done: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)
    """Items whose time has not come (a reminder re-planned weeks out, a card for later)."""

    def line(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.__dict__.items())


def _unsettled(store: Store) -> bool:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    busy = _count(
        store,
        select(func.count())
        .select_from(OutboxItem)
        .where(
            (OutboxItem.status == "in_flight")
            | ((OutboxItem.status == "pending") & (OutboxItem.next_attempt_at <= soon))
        ),
    )
    logged = _count(
        store,
        select(func.count())
        .select_from(Interaction)
        .where(Interaction.kind == "meeting", Interaction.deal_id.is_not(None)),
    )
    runs = _count(  # a notified round under way or due soon, as outbox items (the ceiling
        store,  # of a mailbox notified during a round, a failed round's backoff: seconds away)
        select(func.count())
        .select_from(JobRun)
        .where((JobRun.status == "running") | ((JobRun.status == "due") & (JobRun.due_at <= soon))),
    )
    return bool(busy) or bool(runs) or logged < MEETINGS


def _figures(store: Store, sandbox: RunningSandbox, reps: list[tuple[str, str]]) -> Figures:
    figures = Figures(deals=DEALS, meetings=MEETINGS)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    with store.sessions() as session:
        items = list(session.scalars(select(OutboxItem)))
        # Open reminders whose event is due on the calendar by now: a meeting logged on a deal
        # re-plans it, and its reminders (forced due by _make_due_now) go back weeks out,
        # beyond the lead; one whose event was not made yet then waits, rightly, for its time.
        lead = dt.timedelta(hours=LEAD_HOURS)
        open_keys = {
            r.key
            for r in session.scalars(select(Reminder).where(Reminder.status == "open"))
            if r.effective_due_at - lead <= soon or r.calendar_event_id
        }
        cards = {c.activity_id for c in session.scalars(select(TeamsCard))}
        meetings = list(session.scalars(select(Interaction).where(Interaction.kind == "meeting")))
        runs = list(session.scalars(select(JobRun)))
    figures.outbox_items = len(items)
    due = [i for i in items if i.status != "pending" or i.next_attempt_at <= soon]
    figures.not_done = dict(Counter(f"{i.kind}:{i.status}" for i in due if i.status != "done"))
    later = [i for i in items if i.status == "pending" and i.next_attempt_at > soon]
    figures.waiting = dict(Counter(i.kind for i in later))
    on_calendars: Counter[str] = Counter()
    shown: Counter[str] = Counter()
    shown_ids: set[str] = set()
    for email, _ in reps:
        events = requests.get(
            f"{sandbox.base_url}/_sandbox/users/{email}/events", timeout=30
        ).json()["value"]
        for event in events:
            for prop in event.get("singleValueExtendedProperties") or []:
                if "DealBridgeReminder" in prop["id"]:
                    on_calendars[prop["value"]] += 1
        chat = requests.get(
            f"{sandbox.base_url}/_sandbox/teams/{email}/activities", timeout=30
        ).json()["value"]
        for activity in chat:
            if activity.get("attachments"):
                shown[f"{email} {_card_identity(activity)}"] += 1
                shown_ids.add(activity["id"])
    figures.events = sum(on_calendars.values())
    figures.events_doubled = sum(n - 1 for n in on_calendars.values() if n > 1)
    figures.events_lost = len(open_keys - set(on_calendars))
    for lost in sorted(open_keys - set(on_calendars)):  # seen once in 6 runs: say what it was
        print(f"lost event: reminder {lost}")
        for item in items:
            if lost in item.idempotency_key:
                print(f"  {item.kind} {item.status} attempts={item.attempts} {item.last_error}")
    figures.cards = sum(shown.values())
    figures.cards_doubled = sum(n - 1 for n in shown.values() if n > 1)
    figures.cards_lost = len(cards - shown_ids)
    subjects = Counter(m.subject for m in meetings if m.deal_id is not None)
    figures.meetings_logged = len(subjects)
    figures.meetings_doubled = sum(n - 1 for n in subjects.values() if n > 1)
    figures.meetings_missing_a_rep = sum(
        1 for m in meetings if m.details is None or len(set(m.details.mailboxes)) < 2
    )
    # a run's key is "job@period" (a fan-out's: "task:arg@period"; a notified round's period
    # is its moment): per job, how many (arg, period) runs, each once by the unique key
    figures.job_periods = dict(Counter(r.job for r in runs))
    figures.job_periods_doubled = sum(
        n - 1 for n in Counter(r.run_key for r in runs).values() if n > 1
    )
    figures.job_runs_retried = sum(1 for r in runs if r.attempts > 1)
    runs_later = [r for r in runs if r.status == "due" and r.due_at > soon]
    figures.waiting.update(Counter(f"job:{r.job}" for r in runs_later))
    not_finished = Counter(
        f"job:{r.job}:{r.status}" for r in runs if r.status != "done" and r not in runs_later
    )
    now = dt.datetime.now(dt.UTC)
    for run in runs:  # say what an unfinished run was, and how far off it is
        if run.status != "done":
            wait = (run.due_at - now).total_seconds()
            print(f"run {run.run_key} {run.status} due in {wait:.1f} s attempts={run.attempts}")
    figures.not_done.update(not_finished)
    with requests.get(f"{sandbox.base_url}/_sandbox/notifications", timeout=30) as answer:
        figures.notifications = len(answer.json().get("value", []))
    return figures


def test_two_web_three_workers_a_killed_leader_and_worker_nothing_doubled_nothing_lost(
    tmp_path: Path, database_kind: str, migrated_template: Template
) -> None:
    if database_kind != "postgresql":
        pytest.skip("the multi-process run needs PostgreSQL: pytest --database=postgresql")
    url = migrated_template.fresh(tmp_path / "unused.db")
    store = Store(url)
    processes: list[Process] = []
    with start_sandbox(roles=(*ALL_ROLES, "Chat.Read.All"), seed=5) as sandbox:
        try:
            reps = _reps(sandbox)
            with store.session() as session:
                for email, entra_id in reps:
                    session.add(Rep(email=email, display_name=email, entra_id=entra_id))
                key = create_key(session, "procs", "write")
            ports = [_free_port(), _free_port()]
            public = f"http://127.0.0.1:{ports[0]}"
            web = []
            for n, port in enumerate(ports):
                process = Process(
                    f"web{n}",
                    ["serve", "--port", str(port)],
                    _env(sandbox, url, public, web=True),
                    tmp_path / f"web{n}.log",
                )
                process.port = port
                web.append(process)
            workers = [
                Process(
                    f"worker{n}",
                    ["worker", "--interval", "0.5", "--idle", "0.2"],
                    _env(sandbox, url, public, web=False),
                    tmp_path / f"worker{n}.log",
                )
                for n in range(3)
            ]
            processes = [*web, *workers]
            for process in processes:
                process.start()
            requests.post(
                f"{sandbox.base_url}/_sandbox/teams/bot",
                json={"endpoint": f"{web[0].url}/api/messages", "botId": sandbox.client_id},
                timeout=30,
            ).raise_for_status()
            for email, _ in reps:
                answer = requests.post(
                    f"{sandbox.base_url}/_sandbox/teams/{email}/install", timeout=60
                )
                assert answer.status_code == 200, answer.text
            assert _count(store, select(func.count()).select_from(TeamsConversation)) == REPS
            with store.session() as session:  # the reps' subscriptions: outbox items
                now = dt.datetime.now(dt.UTC).isoformat()
                for email, _ in reps:
                    change = SubscriptionChange(action="subscribe", rep=email, at=now)
                    enqueue(session, SUBSCRIPTION_KIND, f"{SUBSCRIPTION_KIND}:{email}", change)
            headers = {"Authorization": f"Bearer {key}"}
            half = DEALS // 2
            for n in range(DEALS):  # through both web processes
                base = web[n % 2].url
                answer = requests.put(
                    f"{base}/api/v1/deals/OPP-{n}",
                    json=_deal(n, reps[n % REPS][0]),
                    headers=headers,
                    timeout=30,
                )
                assert answer.status_code == 201, answer.text
                if n == half:
                    _make_due_now(store)
            _make_due_now(store)
            _wait_until(lambda: _leader_pid(store) is not None, 30)
            leader_pid = _leader_pid(store)
            leader = next(w for w in workers if w.pid == leader_pid)
            # meetings: half before the kills, half after (the notifications come meanwhile)
            for n in range(MEETINGS):
                organizer = reps[n % REPS][0]
                made = requests.post(
                    f"{sandbox.base_url}/_sandbox/users/{organizer}/events",
                    json=_meeting(n, organizer, reps[(n + 1) % REPS][0]),
                    timeout=30,
                )
                assert made.status_code < 300, made.text
                if n == MEETINGS // 2:
                    figures_kills = _kill(store, leader, workers)
            for process in workers:
                if process.process is not None and process.process.poll() is not None:
                    process.start()
            deadline = time.monotonic() + SETTLE_SECONDS
            while _unsettled(store) and time.monotonic() < deadline:
                time.sleep(1.0)
            figures = _figures(store, sandbox, reps)
            figures.kills, figures.failover_seconds = figures_kills
        finally:
            for process in processes:
                process.stop()
            store.dispose()
    print(f"\nprocesses: {figures.line()}")
    assert figures.not_done == {}
    assert figures.events_lost == 0
    assert figures.events_doubled == 0
    assert figures.cards_lost == 0
    assert figures.cards_doubled == 0
    assert figures.meetings_logged == MEETINGS
    assert figures.meetings_doubled == 0
    assert figures.meetings_missing_a_rep == 0
    assert figures.job_periods_doubled == 0


def _kill(store: Store, leader: Process, workers: list[Process]) -> tuple[int, float]:
    """SIGKILL the leader mid-work, wait for the next one, then SIGKILL another worker."""
    _wait_until(
        lambda: (
            _count(
                store,
                select(func.count()).select_from(OutboxItem).where(OutboxItem.status == "done"),
            )
            >= DEALS // 2
        ),
        60,
    )
    leader.kill()
    killed = time.monotonic()
    _wait_until(lambda: _leader_pid(store) not in (None, leader.pid), 30)
    failover = round(time.monotonic() - killed, 2)
    assert _leader_pid(store) not in (None, leader.pid), "no new leader after SIGKILL"
    others = [w for w in workers if w is not leader and w.pid != _leader_pid(store)]
    with store.sessions() as session:  # one that holds a job run, if one does: mid-round
        holders = set(session.scalars(select(JobRun.holder).where(JobRun.status == "running")))
    busy = [w for w in others if any(h and h.endswith(f":{w.pid}") for h in holders)]
    (busy or others)[0].kill()
    return 2, failover
