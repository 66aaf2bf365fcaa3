"""The CRM side: signed webhooks, delivered through the outbox."""

from flask import Flask

from connector.crm import webhooks


def init_app(app: Flask) -> None:
    """Deliver webhooks; turn the domain signals the CRM hears about into webhooks."""
    webhooks.init_app(app)


__all__ = ["init_app"]
