"""Stage reminders: re-planned on every deal change, snoozed or done, delivered to Outlook."""

from flask import Flask

from connector.signals import deal_changed, deals_created, rep_changed
from connector.stage_reminders import outlook, replan


def init_app(app: Flask) -> None:
    """Re-plan on ``deal_changed`` and ``rep_changed``, plan on ``deals_created``; deliver
    reminder events to Outlook through the outbox."""
    deal_changed.connect(replan.on_deal_changed)  # once per process: connect is idempotent
    deals_created.connect(replan.on_deals_created)
    rep_changed.connect(replan.on_rep_changed)
    outlook.init_app(app)


__all__ = ["init_app"]
