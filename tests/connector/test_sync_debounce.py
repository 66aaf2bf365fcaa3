"""When a notified mailbox is read: the first notification at once (the leading edge), what
comes during or soon after a round in ONE trailing round, and never put off for longer than
``sync_max_wait_seconds`` (the ceiling), for the scheduled rounds and the 30 s safety net.

The clock is ours: the notifications endpoint and the rounds read ``utcnow`` from a clock the
test moves; the scheduler is a stand-in that keeps the one-off jobs the code asks for, and the
test runs those whose time has come. The rounds themselves are real (the sandbox over HTTP),
and counted: no timing is asserted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from connector.meetings import notifications
from connector.meetings import sync as meetings_sync
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.store.db import get_store
from connector.store.models import Mailbox, utcnow
from tests.connector.conftest import Tenant

DEBOUNCE, MAX_WAIT = 2.0, 5.0
STATE = "the-client-state-we-gave-graph"


@dataclass
class Clock:
    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Scheduler:
    """APScheduler's add_job as the code uses it: one job per id, a later one replaces it."""

    jobs: dict[str, tuple[dt.datetime, list[Any]]] = field(default_factory=dict)

    def add_job(
        self, func: Any, trigger: str, *, run_date: dt.datetime, args: list[Any], id: str, **_: Any
    ) -> None:
        assert trigger == "date"
        self.jobs[id] = (run_date, args)

    def shutdown(self, wait: bool = True) -> None:
        self.jobs.clear()


@dataclass
class World:
    t: Tenant
    clock: Clock
    start: dt.datetime
    rep: str
    rounds: list[float] = field(default_factory=list)
    """When each round started, in seconds from the start."""
    scheduler: Scheduler | None = None
    during_round: list[float] = field(default_factory=list)
    """Offsets (s) into the next round at which Graph notifies again while it runs."""

    @property
    def app(self) -> Flask:
        return self.t.app

    def at(self, seconds: float) -> None:
        self.clock.now = self.start + dt.timedelta(seconds=seconds)

    def notify(self) -> None:
        body = {
            "value": [
                {
                    "subscriptionId": "sub-ann",
                    "clientState": STATE,
                    "changeType": "updated",
                    "resource": f"users/{self.rep}/events/x",
                    "tenantId": self.t.sandbox.tenant_id,
                    "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
                }
            ]
        }
        answer = self.app.test_client().post("/api/graph/notifications", json=body)
        assert answer.status_code == 202, answer.text

    def run_due_jobs(self) -> None:
        assert self.scheduler is not None
        while True:
            due = [k for k, (when, _) in self.scheduler.jobs.items() if when <= self.clock.now]
            if not due:
                return
            _, args = self.scheduler.jobs.pop(due[0])
            _app_name, task, email = args
            with self.app.app_context():
                self.app.extensions["dealbridge.tasks"][task](self.app, email)

    def pending(self) -> list[float]:
        assert self.scheduler is not None
        return [(when - self.start).total_seconds() for when, _ in self.scheduler.jobs.values()]


@pytest.fixture
def world(m365: Tenant, monkeypatch: pytest.MonkeyPatch) -> World:
    settings: Settings = m365.app.extensions[SETTINGS_EXTENSION]
    m365.app.extensions[SETTINGS_EXTENSION] = settings.model_copy(
        update={"sync_debounce_seconds": DEBOUNCE, "sync_max_wait_seconds": MAX_WAIT}
    )
    rep = m365.add_rep("ann", "Ann Lee")
    start = utcnow().replace(microsecond=0)
    clock = Clock(start - dt.timedelta(hours=1))
    monkeypatch.setattr(notifications, "utcnow", clock)
    monkeypatch.setattr(meetings_sync, "utcnow", clock)
    w = World(m365, clock, start, rep)
    w.rounds.append(-3600.0)
    assert meetings_sync.sync_mailbox(m365.app, rep).error is None  # an hour ago: all read
    with get_store(m365.app).session() as session:
        mailbox = session.scalars(select(Mailbox).where(Mailbox.rep_email == rep)).one()
        mailbox.subscription_id = "sub-ann"
        mailbox.client_state_hash = hashlib.sha256(STATE.encode()).hexdigest()
        assert mailbox.needs_sync is False

    real_round, real_read = meetings_sync.sync_mailbox, meetings_sync.read_delta

    def counted(app: Flask, email: str, **kwargs: Any) -> meetings_sync.SyncReport:
        kwargs.pop("now", None)
        w.rounds.append((clock.now - start).total_seconds())
        report = real_round(app, email, now=clock.now, **kwargs)
        assert report.error is None, report.error
        return report

    def reader(*args: Any, **kwargs: Any) -> Any:
        delta = real_read(*args, **kwargs)
        began = w.rounds[-1]
        offsets, w.during_round = w.during_round, []
        for offset in offsets:  # Graph notifies while the round reads its mailbox
            w.at(began + offset)
            w.notify()
        return delta

    monkeypatch.setattr(meetings_sync, "read_delta", reader)
    monkeypatch.setattr(meetings_sync, "sync_mailbox", counted)
    w.rounds.clear()
    return w


def _with_scheduler(w: World) -> World:
    w.scheduler = Scheduler()
    w.app.extensions["dealbridge.scheduler"] = w.scheduler
    return w


@pytest.fixture(autouse=True)
def _shared_tasks_in_the_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL the round is a job run for the workers (``jobs.schedule``): here it goes
    to the stand-in scheduler too, so the rule is tested the same on both databases."""

    def schedule(app: Flask, job: str, arg: str, when: dt.datetime) -> None:
        scheduler = app.extensions.get("dealbridge.scheduler")
        if isinstance(scheduler, Scheduler):
            scheduler.jobs[f"sync:{arg}"] = (when, [app.name, job, arg])

    monkeypatch.setattr(notifications, "schedule", schedule)


def _run(w: World, notify_at: list[float], until: float, step: float = 0.5) -> None:
    """Move the clock in steps; at each, Graph's notifications first, then the due jobs."""
    ticks = int(until / step) + 1
    for n in range(ticks):
        now = n * step
        w.at(now)
        for _ in [t for t in notify_at if now - step < t <= now]:
            w.notify()
        w.run_due_jobs()


def test_a_single_notification_is_one_round_at_once(world: World) -> None:
    w = _with_scheduler(world)
    _run(w, [0.0], until=60)
    assert w.rounds == [0.0]
    assert w.pending() == []


def test_what_arrives_during_a_round_is_one_trailing_round(world: World) -> None:
    w = _with_scheduler(world)
    w.during_round = [0.1, 0.2, 0.3]  # three more notifications while the first round reads
    _run(w, [0.0], until=60, step=0.1)
    assert w.rounds == [0.0, pytest.approx(0.3 + DEBOUNCE)]
    assert w.pending() == []


def test_a_burst_is_read_at_once_then_at_least_every_max_wait_then_once_after(
    world: World,
) -> None:
    w = _with_scheduler(world)
    burst = [float(s) for s in range(13)]  # a change every second for 12 s
    _run(w, burst, until=60)
    first, *during, trailing = w.rounds
    assert first == 0.0  # the leading edge
    gaps = [b - a for a, b in zip(w.rounds, w.rounds[1:], strict=False)]
    assert all(gap <= MAX_WAIT for gap in gaps), w.rounds  # the ceiling
    assert all(gap >= DEBOUNCE for gap in gaps), w.rounds  # coalesced, not a round each
    assert trailing == burst[-1] + DEBOUNCE  # one round after the burst, once it paused
    assert len(during) == 2
    assert w.pending() == []


def test_the_safety_net_reads_a_busy_mailbox_at_least_every_max_wait(world: World) -> None:
    w = world  # no scheduler: only the 30 s job reads mailboxes
    for second in range(21):
        w.at(second)
        if second < 20:
            w.notify()
        meetings_sync.sync_due(w.app, now=w.clock.now)
    assert w.rounds == [0.0, 5.0, 10.0, 15.0, 20.0]
