"""The admin console: server-rendered pages under ``/admin`` for the people who run DealBridge.

Sign-in with Entra ID (``signing``), then setup, sync health, deliveries, reps, meetings,
funnel, privacy settings and the audit trail (``pages``). Every action goes through the same
store calls as the API and the bot, and writes an audit row (``audit``).
"""

from __future__ import annotations

from flask import Flask

from connector.admin.console import pages  # noqa: F401  (its views join the blueprint)
from connector.admin.console.signing import console


def init_app(app: Flask) -> None:
    """Register the console's blueprint (pages, sign-in, its stylesheet)."""
    app.register_blueprint(console)


__all__ = ["init_app"]
