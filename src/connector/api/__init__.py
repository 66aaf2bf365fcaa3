"""The REST API (v1): one blueprint per resource, and the OpenAPI document made from them."""

from flask import Flask

from connector.api import (
    analytics,
    deals,
    interactions,
    meetings,
    openapi,
    pipelines,
    reminders,
    reps,
)


def init_app(app: Flask) -> None:
    """Serve `/api/v1/...` and its OpenAPI document."""
    # The OpenAPI document lists paths in this order: deals first, as a CRM developer reads them.
    apis = [
        deals.api,
        interactions.api,
        pipelines.api,
        reps.api,
        analytics.api,
        reminders.api,
        meetings.api,
    ]
    for api in apis:
        app.register_blueprint(api.blueprint)
    app.register_blueprint(openapi.blueprint(apis))


__all__ = ["init_app"]
