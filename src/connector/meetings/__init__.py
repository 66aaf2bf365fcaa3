"""Meetings: Graph change notifications, subscriptions, the sync round, privacy, matching."""

import datetime as dt

from flask import Flask

from connector.jobs import register_fan_out, register_job, register_task
from connector.meetings import attendance, briefs, notifications, retention, sync
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.store.models import utcnow

BUSY_AGAIN = dt.timedelta(seconds=1)
"""A notified round that found its mailbox's round under way looks again this much later
(then only if what it was for is still unread)."""


def init_app(app: Flask) -> None:
    """Serve Graph's notifications; with Microsoft 365 configured, sync and renew on a timer."""
    app.register_blueprint(notifications.graph_hooks)
    notifications.init_app(app)
    retention.init_app(app)
    attendance.init_app(app)  # Teams attendance after the end
    briefs.init_app(app)  # the brief before a customer meeting
    register_task(app, notifications.MAILBOX_ROUND, _mailbox_round)
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    if settings.microsoft365_configured:
        register_job(app, "meetings", _safety_net, seconds=30)
        # With several processes the leader hands each due mailbox's round to a worker.
        register_fan_out(app, "meetings", _due, notifications.MAILBOX_ROUND)
        register_job(
            app, "subscriptions", lambda app: notifications.ensure_subscriptions(app), seconds=600
        )


def _mailbox_round(app: Flask, email: str) -> None:
    """The round a change notification asked for; what came meanwhile is one more round
    (or, after a failure, the retry); then meetings that ended are held."""
    report = sync.sync_mailbox(app, email)
    if report.busy:  # another round runs (here, its end schedules what follows; elsewhere,
        # it may be a `dealbridge sync` by hand, which schedules nothing): look again soon
        soon = utcnow() + BUSY_AGAIN
        notifications.schedule_sync(app, email, not_before=soon)
        return
    notifications.schedule_sync(app, email)
    sync.mark_held(app)


def _due(app: Flask) -> list[str]:
    return sync.due_mailboxes(app, utcnow())


def _safety_net(app: Flask) -> None:
    """Every 30 s: the mailboxes whose round is due by the same rule, then what follows each."""
    for report in sync.sync_due(app):
        if not report.busy:
            notifications.schedule_sync(app, report.mailbox)


__all__ = ["init_app"]
