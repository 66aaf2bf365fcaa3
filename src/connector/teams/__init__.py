"""Teams: reminder and meeting cards, the bot endpoint and its card verbs, daily digests."""

from flask import Flask

from connector.jobs import register_job
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.teams import bot, delivery, digests, tab


def init_app(app: Flask) -> None:
    """Card delivery and its signal receivers, `/api/messages`, and (with Teams on) digests."""
    delivery.init_app(app)
    bot.init_app(app)
    tab.init_app(app)  # the "My deals" personal tab
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    if "teams" in settings.reminder_channels:
        register_job(app, "digests", lambda app: digests.queue_digests(app), seconds=600)
        register_job(app, "health", lambda app: digests.queue_health(app), seconds=3600)


__all__ = ["init_app"]
