"""The REST API (v1): one blueprint per resource, and the OpenAPI document made from them."""

from flask import Flask

from connector.api import meetings, openapi, reminders, v1


def init_app(app: Flask) -> None:
    """Serve `/api/v1/...` and its OpenAPI document."""
    apis = [v1.api, reminders.api, meetings.api]
    for api in apis:
        app.register_blueprint(api.blueprint)
    app.register_blueprint(openapi.blueprint(apis))


__all__ = ["init_app"]
