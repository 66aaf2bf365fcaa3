"""The operator's endpoints. ``/healthz``: alive. ``/readyz``: ready, or what stops it.
``/metrics``: Prometheus' scrape (``connector.metrics``), with a ``metrics``-scope key.

``/healthz`` answers 200 while the process serves (a liveness probe must not restart every
process because the database is away); its body still says what it sees. ``/readyz`` runs
every check and answers 200 with the list, or 503 ``application/problem+json`` whose
``detail`` names each failing check and whose ``checks`` member lists them all (RFC 9457
allows extension members): a load balancer reads the status, an operator the words.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from flask import Flask, Response, json, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from connector import __version__, metrics
from connector.api.routing import authorise
from connector.api.schemas import Health
from connector.errors import PROBLEM_JSON
from connector.jobs import SCHEDULER_EXTENSION
from connector.leader import EXTENSION as LEADER_EXTENSION
from connector.leader import last_seen
from connector.settings import ENV_PREFIX, SETTINGS_EXTENSION, Settings
from connector.store.db import Store, get_store
from connector.store.models import utcnow

log = logging.getLogger(__name__)
LEADER_SEEN_WITHIN = dt.timedelta(minutes=1)


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


def settings_problems(settings: Settings) -> list[str]:
    """What the enabled features still need: reminders in Outlook or Teams and meeting sync
    need Microsoft 365; webhooks need their secret."""
    problems: list[str] = []
    if settings.reminder_channels:
        problems += [
            f"{p} (needed by the reminder channels {', '.join(settings.reminder_channels)})"
            for p in settings.microsoft365_problems()
        ]
    if settings.webhook_url and settings.webhook_secret is None:
        problems.append(f"{ENV_PREFIX}WEBHOOK_SECRET: missing; webhooks are signed with it")
    return problems


def checks(app: Flask, now: dt.datetime | None = None) -> list[Check]:
    """Every readiness check, in order; a later check that needs the database is skipped."""
    store: Store = get_store(app)
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    now = now or utcnow()
    found: list[Check] = []
    reachable = store.ping()
    found.append(
        Check(
            name="database",
            ok=reachable,
            detail="reachable" if reachable else "cannot be reached (see the log for the error)",
        )
    )
    if reachable:
        current, head = store.current_revision(), store.head_revision()
        detail = f"at {current or 'none'}, head is {head}: run `dealbridge db upgrade`"
        if current == head:
            detail = f"at head {head}"
        elif store.unknown_revision() is not None:
            detail = (
                f"at {current}, which this version does not know (its head is {head}): a "
                "newer DealBridge migrated it; run that version"
            )
        found.append(Check(name="migrations", ok=current == head, detail=detail))
    problems = settings_problems(settings)
    found.append(
        Check(
            name="settings",
            ok=not problems,
            detail="complete for the enabled features" if not problems else "; ".join(problems),
        )
    )
    if reachable:
        found.append(_leader(store, now))
    loop = app.extensions.get(LEADER_EXTENSION)
    if loop is not None:  # this process runs a leader loop: is it (and its scheduler) alive?
        problem = loop.liveness()
        found.append(
            Check(
                name="scheduler",
                ok=problem is None,
                detail=problem
                or (
                    "this process leads; its scheduler turns"
                    if loop.leading
                    else "this process is a leader candidate; its loop turns"
                ),
            )
        )
    return found


def _leader(store: Store, now: dt.datetime) -> Check:
    try:
        row = last_seen(store)
    except Exception:  # the heartbeat table is missing: the migrations check says why
        row = None
    if row is None:
        return Check(
            name="leader",
            ok=False,
            detail="no scheduler leader ever seen: start `dealbridge worker`, or `serve` with "
            "the jobs on",
        )
    age = now - row.seen_at
    ok = age <= LEADER_SEEN_WITHIN
    detail = f"{row.holder} seen {age.total_seconds():.0f} s ago"
    if not ok:
        detail += ": no leader in the last minute; start `dealbridge worker`"
    return Check(name="leader", ok=ok, detail=detail)


def init_app(app: Flask) -> None:
    said: list[bool] = []
    saying = threading.Lock()

    @app.before_request
    def _say_once_when_nothing_runs_the_jobs() -> None:
        """Served by a WSGI server of its own (gunicorn, waitress-serve), the process runs no
        scheduler and no worker: it says so once, on its first request (``serve`` and
        ``worker`` start theirs before serving)."""
        if said:
            return
        with saying:
            if said:
                return
            said.append(True)
        if app.testing or LEADER_EXTENSION in app.extensions:
            return
        log.warning(
            "this process serves the web app only: no scheduler and no worker run here, so "
            "nothing is delivered, synced or renewed until `dealbridge worker` runs beside it "
            "(on SQLite use `dealbridge serve`); /readyz fails naming `leader` until a leader "
            "is seen",
            extra={"role": "web"},
        )

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        """No key needed; alive. The database, the scheduler and the version, as seen now."""
        store = get_store(app)
        database = store.ping()
        current = database and store.is_current()
        scheduler = app.extensions.get(SCHEDULER_EXTENSION)
        state = "disabled" if scheduler is None else ("running" if scheduler.running else "stopped")
        ok = database and current and state != "stopped"
        body = Health(
            status="ok" if ok else "degraded",
            database=database,
            migrations_current=current,
            scheduler=state,
            version=__version__,
        )
        return jsonify(body.model_dump()), 200

    @app.get("/readyz")
    def readyz() -> Response:
        """No key needed: 200 when every check passes, else 503 naming each failing one."""
        found = checks(app)
        listed = [c.model_dump() for c in found]
        failing = [c for c in found if not c.ok]
        if not failing:
            body = {"status": "ready", "version": __version__, "checks": listed}
            return Response(json.dumps(body), status=200, mimetype="application/json")
        problem = {
            "type": "/api/problems/not-ready",
            "title": "Not ready",
            "status": 503,
            "detail": "; ".join(f"{c.name}: {c.detail}" for c in failing),
            "instance": request.path,
            "checks": listed,
        }
        return Response(json.dumps(problem), status=503, mimetype=PROBLEM_JSON)

    @app.get("/metrics")
    def scrape() -> Response:
        """Prometheus' scrape: ``Authorization: Bearer <key with the metrics scope>``."""
        authorise("metrics")
        return Response(metrics.exposition(app), content_type=CONTENT_TYPE_LATEST)
