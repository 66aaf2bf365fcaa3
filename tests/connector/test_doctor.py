"""`dealbridge doctor` against the sandbox tenant, with the app served over real HTTPS.

Healthy, every line passes; with one thing broken (a wrong secret, a dropped permission, the
public URL down, a proxy that hides the notification URL, an expired subscription, a database
behind, a secret about to expire) exactly that line fails or warns, with the fix.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask
from pydantic import SecretStr
from sqlalchemy import select
from werkzeug.serving import BaseWSGIServer, make_server

from connector.admin.cli import cli
from connector.admin.doctor import CheckResult, run_checks
from connector.meetings.notifications import ensure_subscriptions
from connector.microsoft365 import close
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.store.db import get_store
from connector.store.models import Mailbox, utcnow
from sandbox.server import serve_in_background
from tests.databases import Template

from .conftest import Tenant, _free_port, make_app

TEAMS_APP_ID = "5c2b8e1d-7a3f-4b6c-9d0e-2f1a3b4c5d6e"
ALL_LINES = [
    "Settings",
    "Token from Entra",
    "Graph permission User.Read.All",
    "Graph permission MailboxSettings.Read",
    "Graph permission Calendars.ReadWrite",
    "Graph permission Organization.Read.All",
    "Graph permission TeamsAppInstallation.ReadWriteSelfForUser.All",
    "Graph permission TeamsActivity.Send",
    "Teams attendance",
    "Bot token",
    "Public URL",
    "Notification URL",
    "Subscriptions",
    "Client secret expiry",
    "Database migrations",
]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (trusted through REQUESTS_CA_BUNDLE)."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class ReverseProxy:
    """What sits in front of DealBridge: passes everything, unless told to hide some paths."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.hidden: tuple[str, ...] = ()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if self.hidden and str(environ.get("PATH_INFO", "")).startswith(self.hidden):
            start_response("404 Not Found", [("Content-Type", "text/html")])
            return [b"<html><body>404 Not Found</body></html>"]
        result: Iterable[bytes] = self.app(environ, start_response)
        return result


@dataclass
class Installation:
    """DealBridge served over HTTPS beside the sandbox tenant, one rep mapped and subscribed."""

    tenant: Tenant
    proxy: ReverseProxy
    server: BaseWSGIServer
    rep: str

    @property
    def app(self) -> Flask:
        return self.tenant.app

    def settings(self, **changes: Any) -> None:
        current: Settings = self.app.extensions[SETTINGS_EXTENSION]
        self.app.extensions[SETTINGS_EXTENSION] = current.model_copy(update=changes)

    def take_down(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def doctor(self) -> list[CheckResult]:
        return run_checks(self.app, timeout=5)


@pytest.fixture
def installation(
    tmp_path: Path,
    migrated_template: Template,
    sandbox_tenant: Any,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Installation]:
    import requests

    requests.post(f"{sandbox_tenant.base_url}/_sandbox/reset", timeout=30).raise_for_status()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    port = _free_port()
    app = make_app(
        tmp_path / "dealbridge.db",
        migrated_template,
        tenant_id=sandbox_tenant.tenant_id,
        client_id=sandbox_tenant.client_id,
        client_secret=sandbox_tenant.client_secret,
        client_secret_expires_on=(dt.date.today() + dt.timedelta(days=365)).isoformat(),
        login_base_url=sandbox_tenant.base_url,
        graph_base_url=sandbox_tenant.base_url,
        public_url=f"https://127.0.0.1:{port}",
        teams_app_id=TEAMS_APP_ID,
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(*certificate)
    proxy = ReverseProxy(app)
    server = make_server("127.0.0.1", port, proxy, threaded=True, ssl_context=tls)
    thread = serve_in_background(server)
    tenant = Tenant(sandbox=sandbox_tenant, app=app, base_url=f"https://127.0.0.1:{port}")
    rep = tenant.add_rep("ann", "Ann Rep", time_zone="Europe/Berlin")
    try:
        assert ensure_subscriptions(app) == {rep: "created"}
        yield Installation(tenant=tenant, proxy=proxy, server=server, rep=rep)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        close(app)
        get_store(app).dispose()


def _by_status(results: list[CheckResult], status: str) -> dict[str, CheckResult]:
    return {r.name: r for r in results if r.status == status}


def test_every_check_passes_on_a_healthy_installation(installation: Installation) -> None:
    results = installation.doctor()

    assert [r.name for r in results] == ALL_LINES
    assert {r.name: r.detail for r in results if r.status != "ok"} == {}
    by_name = {r.name: r.detail for r in results}
    assert "User.Read.All" in by_name["Token from Entra"]
    assert "Europe/Berlin" in by_name["Graph permission MailboxSettings.Read"]
    assert "contoso.example" in by_name["Graph permission Organization.Read.All"]
    assert "1 rep's mailbox subscribed" in by_name["Subscriptions"]
    assert installation.rep in by_name["Graph permission Calendars.ReadWrite"]


def test_a_wrong_secret_fails_the_token_line_with_entras_advice(
    installation: Installation,
) -> None:
    installation.settings(client_secret=SecretStr("not-the-secret"))

    results = installation.doctor()

    failed = _by_status(results, "fail")
    assert list(failed) == ["Token from Entra"]
    assert "AADSTS7000215" in failed["Token from Entra"].detail
    fix = failed["Token from Entra"].fix or ""
    assert "Certificates & secrets" in fix
    assert "DEALBRIDGE_CLIENT_SECRET" in fix
    skipped = _by_status(results, "warn")
    assert "Graph permission MailboxSettings.Read" in skipped
    assert "Bot token" in skipped
    assert "Graph permission TeamsActivity.Send" in skipped


def test_a_dropped_permission_fails_its_own_line_naming_it(installation: Installation) -> None:
    granted = installation.tenant.control("GET", "/settings")["roles"]
    roles = [r for r in granted if r != "MailboxSettings.Read"]
    installation.tenant.control("PATCH", "/settings", {"roles": roles})

    results = installation.doctor()

    failed = _by_status(results, "fail")
    assert list(failed) == ["Graph permission MailboxSettings.Read"]
    fix = failed["Graph permission MailboxSettings.Read"].fix or ""
    assert "application permission MailboxSettings.Read" in fix
    assert "dealbridge admin consent-url" in fix


def test_read_only_calendars_fail_the_calendar_line(installation: Installation) -> None:
    granted = installation.tenant.control("GET", "/settings")["roles"]
    roles = [r for r in granted if r != "Calendars.ReadWrite"] + ["Calendars.Read"]
    installation.tenant.control("PATCH", "/settings", {"roles": roles})

    failed = _by_status(installation.doctor(), "fail")

    assert list(failed) == ["Graph permission Calendars.ReadWrite"]
    assert "Calendars.ReadWrite" in failed["Graph permission Calendars.ReadWrite"].detail


def test_the_public_url_down_fails_that_line_and_skips_the_handshake(
    installation: Installation,
) -> None:
    installation.take_down()

    results = installation.doctor()

    failed = _by_status(results, "fail")
    assert list(failed) == ["Public URL"]
    assert "did not answer" in failed["Public URL"].detail
    assert "reverse proxy" in (failed["Public URL"].fix or "")
    assert "Notification URL" in _by_status(results, "warn")


def test_a_proxy_hiding_the_notification_url_fails_the_handshake_line(
    installation: Installation,
) -> None:
    installation.proxy.hidden = ("/api/graph/",)

    failed = _by_status(installation.doctor(), "fail")

    assert list(failed) == ["Notification URL"]
    assert "HTTP 404" in failed["Notification URL"].detail
    assert "validationToken" in (failed["Notification URL"].fix or "")


def test_an_expired_subscription_fails_the_subscriptions_line_naming_the_rep(
    installation: Installation,
) -> None:
    with get_store(installation.app).session() as session:
        mailbox = session.scalars(select(Mailbox)).one()
        mailbox.subscription_expires_at = utcnow() - dt.timedelta(hours=1)

    failed = _by_status(installation.doctor(), "fail")

    assert list(failed) == ["Subscriptions"]
    assert installation.rep in failed["Subscriptions"].detail
    assert "expired" in failed["Subscriptions"].detail


def test_a_database_behind_fails_the_migrations_line(installation: Installation) -> None:
    from alembic import command

    store = get_store(installation.app)
    command.downgrade(store.alembic_config(), "0002")

    results = installation.doctor()

    failed = _by_status(results, "fail")
    assert list(failed) == ["Database migrations"]
    assert "0002" in failed["Database migrations"].detail
    assert "dealbridge db upgrade" in (failed["Database migrations"].fix or "")
    assert "Subscriptions" in _by_status(results, "warn")


def test_a_secret_expiring_in_ten_days_is_a_warning_not_a_failure(
    installation: Installation,
) -> None:
    soon = dt.date.today() + dt.timedelta(days=10)
    installation.settings(client_secret_expires_on=soon)

    results = installation.doctor()

    assert _by_status(results, "fail") == {}
    warned = _by_status(results, "warn")
    assert list(warned) == ["Client secret expiry"]
    assert "in 10 days" in warned["Client secret expiry"].detail
    assert "New client secret" in (warned["Client secret expiry"].fix or "")


def _cli_env(installation: Installation, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    settings: Settings = installation.app.extensions[SETTINGS_EXTENSION]
    sandbox = installation.tenant.sandbox
    env = {
        "DEALBRIDGE_DATABASE_URL": settings.effective_database_url,
        "DEALBRIDGE_TENANT_ID": sandbox.tenant_id,
        "DEALBRIDGE_CLIENT_ID": sandbox.client_id,
        "DEALBRIDGE_CLIENT_SECRET": sandbox.client_secret,
        "DEALBRIDGE_CLIENT_SECRET_EXPIRES_ON": str(settings.client_secret_expires_on),
        "DEALBRIDGE_LOGIN_BASE_URL": sandbox.base_url,
        "DEALBRIDGE_GRAPH_BASE_URL": sandbox.base_url,
        "DEALBRIDGE_PUBLIC_URL": str(settings.public_url),
        "DEALBRIDGE_TEAMS_APP_ID": TEAMS_APP_ID,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_the_command_prints_every_line_and_exits_zero_when_healthy(
    installation: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cli_env(installation, monkeypatch)

    result = CliRunner().invoke(cli, ["doctor"])

    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line[:2] in ("✓ ", "! ", "✗ ")]
    assert [line.split(": ", 1)[0][2:] for line in lines] == ALL_LINES
    assert all(line.startswith("✓") for line in lines)
    assert "15 checks: 0 failed, 0 warnings" in result.output


def test_the_command_exits_non_zero_with_the_fix_and_never_prints_the_secret(
    installation: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cli_env(installation, monkeypatch)
    monkeypatch.setenv("DEALBRIDGE_CLIENT_SECRET", "wrong-secret-value-42")

    result = CliRunner().invoke(cli, ["doctor"])

    assert result.exit_code == 1
    assert "✗ Token from Entra" in result.output
    assert "    fix: " in result.output
    assert "wrong-secret-value-42" not in result.output
    assert installation.tenant.sandbox.client_secret not in result.output


@pytest.mark.parametrize("missing", ["permission", "policy"])
def test_teams_attendance_is_optional_and_says_how_to_enable_it(
    installation: Installation, missing: str
) -> None:
    control = installation.tenant.control
    if missing == "permission":
        granted = control("GET", "/settings")["roles"]
        roles = [r for r in granted if r != "OnlineMeetingArtifact.Read.All"]
        control("PATCH", "/settings", {"roles": roles})
    else:
        control("PUT", "/online-meetings/policy", {"granted": False})

    [line] = [r for r in run_checks(installation.app) if r.name == "Teams attendance"]

    assert line.status == "warn"
    assert line.fix is not None
    assert "New-CsApplicationAccessPolicy" in line.fix
    wanted = "OnlineMeetingArtifact.Read.All not granted" if missing == "permission" else "policy"
    assert wanted in line.detail
