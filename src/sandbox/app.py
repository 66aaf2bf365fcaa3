"""The sandbox tenant as a Flask application: Entra, Graph, the control API and a page."""

from __future__ import annotations

from flask import Flask

from sandbox import auth_code, catalog_upload, control, device_code, identity, teams, ui
from sandbox.config import SandboxConfig
from sandbox.graph import routes as graph
from sandbox.teams import tab as teams_tab
from sandbox.tenant import Tenant


def create_app(config: SandboxConfig | None = None) -> Flask:
    """A Flask app serving one sandbox tenant; the tenant is at `app.extensions["sandbox"]`."""
    config = config or SandboxConfig()
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    tenant = Tenant(config)
    app.extensions["sandbox"] = tenant
    app.register_blueprint(identity.create_blueprint(tenant))
    app.register_blueprint(graph.create_blueprint(tenant))
    app.register_blueprint(device_code.create_blueprint(tenant))
    app.register_blueprint(auth_code.create_blueprint(tenant))  # the admin console's sign-in
    app.register_blueprint(catalog_upload.create_blueprint(tenant))
    app.register_blueprint(control.create_blueprint(tenant))
    app.register_blueprint(ui.create_blueprint(tenant))
    app.register_blueprint(teams.create_blueprint(tenant))
    app.register_blueprint(teams_tab.create_blueprint(tenant))  # a personal tab's host and SSO
    return app


def tenant_of(app: Flask) -> Tenant:
    """The tenant an app serves."""
    tenant: Tenant = app.extensions["sandbox"]
    return tenant
