"""The application factory: ``create_app()`` wires settings, store, API and jobs."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify

from connector import __version__, errors
from connector.admin.pages import pages
from connector.api import openapi
from connector.api.meetings import api as api_meetings
from connector.api.reminders import api as api_reminders
from connector.api.schemas import Health
from connector.api.v1 import api as api_v1
from connector.crm import webhooks as crm_webhooks
from connector.deals.changes import DealEvents
from connector.jobs import register_job
from connector.meetings.notifications import ensure_subscriptions, graph_hooks
from connector.meetings.sync import sync_due
from connector.outbox import drain
from connector.settings import SETTINGS_EXTENSION, Settings, load_settings
from connector.stage_reminders import outlook as calendar_delivery
from connector.stage_reminders.replan import replan
from connector.store import db as store_db
from connector.store.db import Store
from connector.teams import bot
from connector.teams import delivery as teams_delivery
from connector.teams.digests import queue_digests, queue_health

log = logging.getLogger(__name__)


def create_app(
    test_config: Mapping[str, Any] | None = None, *, settings: Settings | None = None
) -> Flask:
    """Build the app. ``test_config`` overrides settings (by field name) and Flask config."""
    overrides = dict(test_config or {})
    flask_config = {k: overrides.pop(k) for k in list(overrides) if k.isupper()}
    if settings is None:
        settings = load_settings(overrides, env_file=not flask_config.get("TESTING", False))
    elif overrides:
        settings = settings.model_copy(update=overrides)

    app = Flask("connector")
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, JSON_SORT_KEYS=False)
    app.config.update(flask_config)
    app.extensions[SETTINGS_EXTENSION] = settings
    events = DealEvents()
    events.connect(lambda session, deal, now: replan(session, deal, settings, now))
    app.extensions["dealbridge.deal_events"] = events

    if settings.is_embedded_sqlite:
        settings.instance_path.mkdir(parents=True, exist_ok=True)
    store = Store(settings.effective_database_url)
    store_db.init_app(app, store)
    if settings.migrate_on_start:
        prepare_database(store)

    errors.init_app(app)
    crm_webhooks.init_app(app)
    calendar_delivery.init_app(app)
    teams_delivery.init_app(app)
    bot.init_app(app)
    register_job(app, "outbox", lambda app: drain(app), seconds=5)
    app.register_blueprint(api_v1.blueprint)
    app.register_blueprint(api_reminders.blueprint)
    app.register_blueprint(api_meetings.blueprint)
    app.register_blueprint(openapi.blueprint([api_v1, api_reminders, api_meetings]))
    app.register_blueprint(graph_hooks)
    if settings.microsoft365_configured:
        register_job(app, "meetings", lambda app: sync_due(app), seconds=30)
        register_job(app, "subscriptions", lambda app: ensure_subscriptions(app), seconds=600)
    if "teams" in settings.reminder_channels:
        register_job(app, "digests", lambda app: queue_digests(app), seconds=600)
        register_job(app, "health", lambda app: queue_health(app), seconds=3600)
    app.register_blueprint(pages)

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        """No key needed: the database, the scheduler and the version."""
        database = store.ping()
        current = database and store.is_current()
        scheduler = app.extensions.get("dealbridge.scheduler")
        state = "disabled" if scheduler is None else ("running" if scheduler.running else "stopped")
        ok = database and current and state != "stopped"
        body = Health(
            status="ok" if ok else "degraded",
            database=database,
            migrations_current=current,
            scheduler=state,
            version=__version__,
        )
        return jsonify(body.model_dump()), 200 if ok else 503

    return app


def prepare_database(store: Store) -> None:
    """Apply migrations and, on a fresh database, install the preset pipelines."""
    from connector.deals.pipelines import ensure_presets

    store.upgrade()
    with store.session() as session:
        from sqlalchemy import func, select

        from connector.store.models import Pipeline

        if not session.scalar(select(func.count()).select_from(Pipeline)):
            ensure_presets(session)
