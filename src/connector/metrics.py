"""``/metrics`` in Prometheus' text format, and the one place work is logged and counted.

Counters and histograms live in the process that did the work (prometheus-client). With
``PROMETHEUS_MULTIPROC_DIR`` set (to one empty folder shared by the host's web and worker
processes, emptied at boot) each process writes its values there and a scrape of any web
process adds them up. What the store knows (outbox depth and age, subscriptions, failing
mailboxes, the leader's heartbeat) is read from the database at scrape time, so it is the
same whichever process answers.

``/metrics`` (served by ``connector.health``) needs an API key with the ``metrics`` scope
(``dealbridge keys create --scope metrics``): it is served on the public entry with the API,
and read or write keys do not open it (a scraper's key cannot read deals; a CRM's key
cannot read the operations data).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Protocol

from flask import Flask
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import func, select

from connector import __version__, paths
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.store.db import get_store
from connector.store.models import Mailbox, OutboxItem, SchedulerLeader, utcnow


class SyncReport(Protocol):
    """What a mailbox round reports (``meetings.sync.SyncReport``; no import: no cycle)."""

    mailbox: str
    pages: int
    meetings: int
    logged: int
    updated: int
    cancelled: int
    needs_choice: int
    skipped: dict[str, int]
    error: str | None


_DURATIONS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

paths.writable_multiproc_dir()  # before the first metric writes its file there

GRAPH_REQUESTS = Counter(
    "dealbridge_graph_requests",
    "Requests to Microsoft Graph, each attempt, by route template and status",
    ["method", "route", "status"],
)
GRAPH_THROTTLED = Counter(
    "dealbridge_graph_throttled",
    "Graph answers 429 (each is retried after its Retry-After)",
    ["route"],
)
GRAPH_RETRY_AFTER = Counter(
    "dealbridge_graph_retry_after_seconds",
    "Seconds Graph asked us to wait, summed over its 429s",
    ["route"],
)
DELIVERIES = Counter(
    "dealbridge_deliveries",
    "Outbox delivery attempts by kind and outcome (delivered, retry, dead, requeued)",
    ["kind", "outcome"],
)
SYNC_ROUNDS = Counter(
    "dealbridge_sync_rounds", "Mailbox delta rounds by outcome (ok, failed, refused)", ["outcome"]
)
SYNC_DURATION = Histogram(
    "dealbridge_sync_round_duration_seconds", "Wall time of one mailbox round", buckets=_DURATIONS
)
NOTIFIED_TO_LOGGED = Histogram(
    "dealbridge_notification_to_logged_seconds",
    "From Graph's change notification to the round that logged the meeting",
    buckets=_DURATIONS,
)
JOB_RUNS = Counter(
    "dealbridge_job_runs", "Job runs by job and outcome (ok, failed)", ["job", "outcome"]
)
JOB_DURATION = Histogram(
    "dealbridge_job_duration_seconds", "Wall time of one job run", ["job"], buckets=_DURATIONS
)
LEADER = Gauge(
    "dealbridge_leader",
    "1 in the process that is the scheduler leader (summed over live processes: should be 1)",
    multiprocess_mode="livesum",
)


# ---- what the code calls: one line at each place, the log line and the counters ------------


_THROTTLED_AT: deque[float] = deque(maxlen=100_000)
_THROTTLED_LOCK = threading.Lock()


def throttled_recently(seconds: float = 3600.0) -> int:
    """Graph's 429s this process saw in the last ``seconds`` (the admin console's sync page)."""
    since = time.monotonic() - seconds
    with _THROTTLED_LOCK:
        while _THROTTLED_AT and _THROTTLED_AT[0] < since:
            _THROTTLED_AT.popleft()
        return len(_THROTTLED_AT)


def graph_call(method: str, route: str, status: int, retry_after: float | None) -> None:
    """graph_sync's observer: every attempt the Graph client sent, retries included."""
    GRAPH_REQUESTS.labels(method, route, str(status)).inc()
    if status == 429:
        with _THROTTLED_LOCK:
            _THROTTLED_AT.append(time.monotonic())
        GRAPH_THROTTLED.labels(route).inc()
        if retry_after:
            GRAPH_RETRY_AFTER.labels(route).inc(retry_after)


def delivery(log: logging.Logger, item: OutboxItem, error: str | None) -> None:
    """One delivery's outcome, as the outbox recorded it on the item."""
    if item.status in ("done", "dead"):
        outcome = "delivered" if item.status == "done" else "dead"
    else:  # pending again: a retry, or delivered while its payload changed (sent again)
        outcome = "requeued" if error is None else "retry"
    DELIVERIES.labels(item.kind, outcome).inc()
    level = logging.WARNING if outcome == "dead" else logging.INFO
    log.log(
        level,
        "delivery %s",
        outcome,
        extra={
            "kind": item.kind,
            "key": item.idempotency_key,
            "status": item.status,
            "outcome": outcome,
            "attempt": item.attempts,
            **({"error": error[:300]} if error else {}),
        },
    )


def sync_round(app: Flask, log: logging.Logger, report: SyncReport, seconds: float) -> None:
    """A mailbox round ended: log it, count it, and time notification-to-logged."""
    outcome = "ok" if report.error is None else ("failed" if report.pages == 0 else "refused")
    SYNC_ROUNDS.labels(outcome).inc()
    SYNC_DURATION.observe(seconds)
    log.log(
        logging.INFO if report.error is None else logging.WARNING,
        "sync round %s",
        outcome,
        extra={
            "mailbox": report.mailbox,
            "events": report.meetings,
            "logged": report.logged,
            "updated": report.updated,
            "cancelled": report.cancelled,
            "needs_choice": report.needs_choice,
            "skipped": dict(report.skipped),
            "duration_s": round(seconds, 3),
            **({"error": report.error[:300]} if report.error else {}),
        },
    )
    if report.logged:
        _notified_to_logged(app, report.mailbox)


def _notified_to_logged(app: Flask, rep_email: str) -> None:
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    with get_store(app).sessions() as session:
        notified = session.scalar(select(Mailbox.notified_at).where(Mailbox.rep_email == rep_email))
    if notified is None:
        return
    waited = (utcnow() - notified).total_seconds()
    # A notification older than the poll interval did not cause this round: the poll did.
    if 0 <= waited <= settings.sync_poll_minutes * 60:
        NOTIFIED_TO_LOGGED.observe(waited)


def job_run(
    log: logging.Logger, job: str, seconds: float, error: str | None, *, arg: str | None = None
) -> None:
    JOB_RUNS.labels(job, "failed" if error else "ok").inc()
    JOB_DURATION.labels(job).observe(seconds)
    fields: dict[str, Any] = {"job": job, "duration_s": round(seconds, 3)}
    if arg is not None:
        fields["arg"] = arg
    # the outbox job runs every 5 s: its runs are DEBUG unless it failed
    level = logging.DEBUG if job == "outbox" and not error else logging.INFO
    log.log(level, "job %s %s", job, "failed" if error else "done", extra=fields)


def set_leader(is_leader: bool) -> None:
    LEADER.set(1 if is_leader else 0)


def process_exit() -> None:
    """A process stops: its live gauges (the leader's 1) leave the multiprocess sum."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


# ---- what the store knows, read at scrape time -----------------------------------------------


class StoreCollector(Collector):
    """Gauges computed from the database when Prometheus scrapes."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        settings: Settings = self.app.extensions[SETTINGS_EXTENSION]
        now = utcnow()
        depth = GaugeMetricFamily(
            "dealbridge_outbox_depth",
            "Outbox items not delivered, by kind and status",
            labels=["kind", "status"],
        )
        oldest = GaugeMetricFamily(
            "dealbridge_outbox_oldest_due_age_seconds",
            "How long the oldest due item of each kind has been waiting (0: none due)",
            labels=["kind"],
        )
        with get_store(self.app).sessions() as session:
            for kind, status, count in session.execute(
                select(OutboxItem.kind, OutboxItem.status, func.count())
                .where(OutboxItem.status != "done")
                .group_by(OutboxItem.kind, OutboxItem.status)
            ):
                depth.add_metric([kind, status], count)
            due: dict[str, dt.datetime] = dict(
                session.execute(
                    select(OutboxItem.kind, func.min(OutboxItem.next_attempt_at))
                    .where(
                        OutboxItem.status.in_(("pending", "in_flight")),
                        OutboxItem.next_attempt_at <= now,
                    )
                    .group_by(OutboxItem.kind)
                ).all()
            )
            mailboxes = session.execute(
                select(
                    func.count(Mailbox.subscription_id),
                    func.min(Mailbox.subscription_expires_at),
                    func.count().filter(Mailbox.failures > 0),
                    func.count(),
                )
            ).one()
            beat = session.scalar(
                select(SchedulerLeader.seen_at).where(SchedulerLeader.name == "scheduler")
            )
        for kind in sorted(
            set(self.app.extensions.get("dealbridge.outbox_handlers", {})) | set(due)
        ):
            when = due.get(kind)
            oldest.add_metric([kind], max(0.0, (now - when).total_seconds()) if when else 0.0)
        yield depth
        yield oldest
        subscribed, nearest, failing, total = mailboxes
        yield GaugeMetricFamily(
            "dealbridge_subscriptions", "Mailboxes with a live Graph subscription", value=subscribed
        )
        if nearest is not None:
            yield GaugeMetricFamily(
                "dealbridge_subscription_nearest_expiry_seconds",
                "Seconds until the next Graph subscription ends (renewed a day before)",
                value=(_aware(nearest) - now).total_seconds(),
            )
        yield GaugeMetricFamily("dealbridge_mailboxes", "Reps' mailboxes known", value=total)
        yield GaugeMetricFamily(
            "dealbridge_mailboxes_failing", "Mailboxes whose last round failed", value=failing
        )
        if beat is not None:
            yield GaugeMetricFamily(
                "dealbridge_leader_heartbeat_age_seconds",
                "Seconds since the scheduler leader last wrote its heartbeat",
                value=(now - _aware(beat)).total_seconds(),
            )
        if settings.client_secret_expires_on is not None:
            ends = dt.datetime.combine(settings.client_secret_expires_on, dt.time(), dt.UTC)
            yield GaugeMetricFamily(
                "dealbridge_client_secret_expiry_seconds",
                "Seconds until the Entra client secret expires (CLIENT_SECRET_EXPIRES_ON)",
                value=(ends - now).total_seconds(),
            )
        info = GaugeMetricFamily("dealbridge_info", "The running version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def process_metrics() -> bytes:
    """The counters: this process's, or with PROMETHEUS_MULTIPROC_DIR every process's sum."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)  # type: ignore[no-untyped-call]
        return generate_latest(processes)
    return generate_latest(REGISTRY)


def exposition(app: Flask) -> bytes:
    """The text a scrape gets: the processes' counters, then what the store knows."""
    stored = CollectorRegistry(auto_describe=False)
    stored.register(StoreCollector(app))
    return process_metrics() + generate_latest(stored)
