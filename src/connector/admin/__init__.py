"""Administration: the CLI, the doctor, the Teams package, the demo and the start page."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    """Serve the start page (the CLI is `connector.admin.cli`, outside the app)."""
    # Imported here: the package is the CLI's too, and `--help` must not load Flask (+0.18 s).
    from connector.admin.pages import pages

    app.register_blueprint(pages)

    from connector.admin import console  # the admin console under /admin (Flask, as above)

    console.init_app(app)


__all__ = ["init_app"]
