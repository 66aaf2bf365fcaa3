"""Helpers for the admin console's tests: an app with the console's settings beside the sandbox
tenant, a signed-in session, and the sign-in through the sandbox's Entra over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from connector.admin.console.signing import SESSION_COOKIE, new_admin, session_cookie
from connector.settings import SETTINGS_EXTENSION
from connector.store.db import get_store
from tests.connector.conftest import Tenant, make_app, tenant_app
from tests.databases import Template

SESSION_KEY = "console-test-key-" + "k" * 32
ADMIN_ROLE = "DealBridge.Admin"


def signed_in_client(app: Flask, username: str = "ada@contoso.example") -> FlaskClient:
    """A test client holding a valid session cookie (what a finished sign-in sets)."""
    client = app.test_client()
    admin = new_admin(username, "Ada Admin", "oid-ada")
    client.set_cookie(SESSION_COOKIE, session_cookie(app.extensions[SETTINGS_EXTENSION], admin))
    client.environ_base["console.csrf"] = admin.csrf
    return client


def csrf_of(client: FlaskClient) -> str:
    return str(client.environ_base["console.csrf"])


@dataclass
class Console:
    """The app served over HTTP beside the sandbox tenant, with the console signed into."""

    tenant: Tenant

    @property
    def app(self) -> Flask:
        return self.tenant.app

    @property
    def base_url(self) -> str:
        return self.tenant.base_url

    def add_admin(self, alias: str = "ada", name: str = "Ada Admin", *, role: bool = True) -> str:
        upn = f"{alias}@{self.tenant.domain}"
        self.tenant.control(
            "POST",
            "/users",
            {"userPrincipalName": upn, "displayName": name, "mailboxSettings": {"timeZone": "UTC"}},
        )
        if role:
            self.tenant.control("POST", "/approles", {"userPrincipalName": upn, "role": ADMIN_ROLE})
        return upn

    def sign_in(self, upn: str, http: requests.Session | None = None) -> requests.Response:
        """What a browser does: the console sends it to Entra, the admin picks their account,
        Entra sends it back with a code; returns the console's last answer."""
        http = http or requests.Session()
        start = http.get(f"{self.base_url}/admin/sign-in", allow_redirects=False, timeout=30)
        assert start.status_code == 302, start.text
        authorize = start.headers["Location"]
        assert authorize.startswith(self.tenant.sandbox.base_url)
        page = http.get(authorize, timeout=30)
        assert upn in page.text
        chosen = http.post(authorize, data={"login": upn}, allow_redirects=False, timeout=30)
        assert chosen.status_code == 302, chosen.text
        return http.get(chosen.headers["Location"], allow_redirects=False, timeout=30)


def csrf_in(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture
def console_m365(
    tmp_path: Path, migrated_template: Template, sandbox_tenant: Any
) -> Iterator[Console]:
    """As ``m365``, with the console's sign-in on (its key; no one in DEALBRIDGE_ADMINS)."""
    with tenant_app(
        tmp_path, migrated_template, sandbox_tenant, admin_session_key=SESSION_KEY
    ) as tenant:
        yield Console(tenant)


@pytest.fixture
def console_app(tmp_path: Path, migrated_template: Template) -> Iterator[Flask]:
    """An app with the console's key but no Microsoft 365 (pages that need no Graph)."""
    app = make_app(tmp_path / "dealbridge.db", migrated_template, admin_session_key=SESSION_KEY)
    yield app
    get_store(app).dispose()
