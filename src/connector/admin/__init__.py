"""Administration: the CLI, the doctor, the Teams package, the demo and the start page."""

from flask import Flask

from connector.admin.pages import pages


def init_app(app: Flask) -> None:
    """Serve the start page (the CLI is `connector.admin.cli`, outside the app)."""
    app.register_blueprint(pages)


__all__ = ["init_app"]
