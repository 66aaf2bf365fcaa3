"""The application factory: ``create_app()`` wires settings, store, API and jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, jsonify, render_template_string, request
from sqlalchemy import func, select

from connector import (
    __version__,
    admin,
    api,
    crm,
    errors,
    headers,
    health,
    json_limits,
    logs,
    meetings,
    paths,
    stage_reminders,
    teams,
)
from connector.deals.pipelines import ensure_presets
from connector.jobs import register_job
from connector.outbox import drain
from connector.settings import (
    ENV_PREFIX,
    MICROSOFT_GRAPH,
    SETTINGS_EXTENSION,
    Settings,
    load_settings,
)
from connector.signals import SETTINGS_INFO
from connector.store import db as store_db
from connector.store.db import Store
from connector.store.models import Pipeline

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
    logs.remember_secrets(settings)  # masked in every log line of this process from now on

    if settings.is_embedded_sqlite:
        paths.writable_folder(settings.instance_path, f"{ENV_PREFIX}INSTANCE_PATH")
    store = Store(settings.effective_database_url)
    where = "INSTANCE_PATH" if settings.is_embedded_sqlite else "DATABASE_URL"
    paths.writable_sqlite(store.engine.url, ENV_PREFIX + where)  # before anything connects
    store.sessions.configure(info={SETTINGS_INFO: settings})  # signal receivers act for this app
    store_db.init_app(app, store)
    if settings.migrate_on_start:
        prepare_database(store)

    errors.init_app(app)
    json_limits.init_app(app)  # deep JSON refused before any view parses it
    headers.init_app(app)  # nosniff, no-store, the pages' CSP and who may frame them
    register_job(app, "outbox", lambda app: drain(app), seconds=settings.outbox_drain_seconds)
    stage_reminders.init_app(app)  # re-plans on deal_changed; Outlook delivery
    meetings.init_app(app)  # Graph notifications; sync and renewals with Microsoft 365
    teams.init_app(app)  # cards, the bot, digests with Teams on
    crm.init_app(app)  # webhooks
    api.init_app(app)  # REST v1 and OpenAPI
    admin.init_app(app)  # the start page

    health.init_app(app)  # /healthz (alive), /readyz (or what is wrong), /metrics (Prometheus)

    @app.get("/")
    def start() -> Response:
        """What this is, for a browser (HTML) or an API client (JSON, by Accept)."""
        links: dict[str, Any] = {
            "name": "DealBridge",
            "what": "Connects your CRM with Microsoft 365: deal-stage reminders in Outlook and "
            "Teams, customer meetings logged on the right deal.",
            "version": __version__,
            "docs": "/api/docs",
            "openapi": "/api/openapi.json",
            "health": "/healthz",
            "api": "/api/v1 (Authorization: Bearer <API key>; `dealbridge keys create`)",
        }
        if settings.graph_base_url != MICROSOFT_GRAPH:  # the sandbox tenant (the demo)
            links["sandbox"] = {
                "outlook": f"{settings.graph_base_url}/",
                "teams": f"{settings.graph_base_url}/teams",
            }
        best = request.accept_mimetypes.best_match(["application/json", "text/html"])
        if best == "text/html" and request.accept_mimetypes["text/html"]:
            return Response(render_template_string(_START_PAGE, **links), mimetype="text/html")
        return jsonify(links)

    return app


_START_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>DealBridge</title><style>body{font:16px/1.6 system-ui,sans-serif;max-width:760px;
margin:2em auto;padding:0 1em;color:#222}h1{color:#0E7C86}code{background:#f4f4f6;
padding:2px 4px;border-radius:4px}</style></head><body>
<h1>DealBridge <small>{{ version }}</small></h1><p>{{ what }}</p>
<ul><li><a href="{{ docs }}">API documentation</a> (and
<a href="{{ openapi }}">OpenAPI 3.1</a>)</li>
<li><a href="{{ health }}">Health</a> (no key needed)</li>
{% if sandbox %}<li>The sandbox tenant: <a href="{{ sandbox.outlook }}">Outlook calendars</a>,
<a href="{{ sandbox.teams }}">Teams chats</a></li>{% endif %}</ul>
<p>The API under <code>/api/v1</code> needs a key: send <code>Authorization: Bearer
&lt;key&gt;</code> (create one with <code>dealbridge keys create</code>). A browser cannot
send it; use <code>curl -H "Authorization: Bearer $DEALBRIDGE_API_KEY" ...</code>.</p>
</body></html>"""


def prepare_database(store: Store, waiting: Callable[[], None] | None = None) -> str | None:
    """Apply migrations and, on a fresh database, install the preset pipelines: one process
    at a time (``Store.migrating``; the second waits, then finds nothing to do). Returns the
    revision found once it was this process's turn (None: empty)."""
    with store.migrating(waiting):
        found = store.current_revision()
        store.refuse_newer()
        store.upgrade()
        with store.session() as session:
            if not session.scalar(select(func.count()).select_from(Pipeline)):
                ensure_presets(session)
    return found
