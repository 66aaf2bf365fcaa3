"""The dealbridge command: keys, import, pipelines, db, help, settings errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from connector.admin.cli import cli
from connector.settings import SettingsError, load_settings
from connector.store.db import get_store
from connector.store.models import ApiKey, Deal
from tests.databases import Template


@pytest.fixture
def env(app: Flask, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the CLI at the test app's database through the environment, as a user would."""
    settings = app.extensions["dealbridge.settings"]
    values = {
        "DEALBRIDGE_DATABASE_URL": settings.effective_database_url,
        "DEALBRIDGE_SCHEDULER_ENABLED": "false",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def test_keys_create_prints_the_key_last_and_stores_a_hash(app: Flask, env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["keys", "create", "--name", "crm", "--scope", "write"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("dbk_")
    with get_store(app).session() as session:
        stored = session.scalars(select(ApiKey)).one()
    assert stored.scopes == "write"
    assert key not in stored.key_hash
    client = app.test_client()
    assert (
        client.get("/api/v1/deals", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    )
    listed = CliRunner().invoke(cli, ["keys", "list"])
    assert "crm" in listed.output
    assert key not in listed.output


def test_import_csv_takes_valid_rows_and_lists_bad_ones(
    app: Flask, env: dict[str, str], tmp_path: Path
) -> None:
    csv_file = tmp_path / "deals.csv"
    csv_file.write_text(
        "id,title,pipeline,stage,owner,account_name,account_domains,contacts,amount,currency\n"
        "C1,Fabrikam ERP,classic5,negotiation,ann@contoso.com,Fabrikam,fabrikam.com,"
        "Dana Ruiz <dana@fabrikam.com>,84000,EUR\n"
        "C2,Bad stage,classic5,limbo,,,,,,\n"
        "C3,No currency,classic5,won,,,,,100,\n"
        ",No id,classic5,won,,,,,,\n"
        "C5,Northwind,classic5,lead_generation,,Northwind,northwind.com;nwtraders.com,,,\n"
    )
    result = CliRunner().invoke(cli, ["import", "deals", str(csv_file)])
    assert result.exit_code == 1
    assert "line 3" in result.output
    assert "limbo" in result.output
    assert "line 4" in result.output
    assert "currency" in result.output
    assert "line 5" in result.output
    assert "id" in result.output
    assert "2 created" in result.output
    with get_store(app).session() as session:
        deals = {d.crm_id: d for d in session.scalars(select(Deal))}
    assert set(deals) == {"C1", "C5"}
    assert [d.domain for d in deals["C5"].domains] == ["northwind.com", "nwtraders.com"]
    assert deals["C1"].contacts[0].email == "dana@fabrikam.com"


def test_import_json_dry_run_writes_nothing(
    app: Flask, env: dict[str, str], tmp_path: Path
) -> None:
    json_file = tmp_path / "deals.json"
    json_file.write_text(json.dumps([{"id": "J1", "title": "T", "stage": "won"}]))
    result = CliRunner().invoke(cli, ["import", "deals", str(json_file), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "1 valid" in result.output
    with get_store(app).session() as session:
        assert session.scalars(select(Deal)).first() is None
    result = CliRunner().invoke(cli, ["import", "deals", str(json_file)])
    assert "1 created" in result.output


def test_pipelines_list_shows_stages_in_order(env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["pipelines", "list"])
    assert result.exit_code == 0
    assert "classic5" in result.output
    assert result.output.index("Lead generation") < result.output.index("Deal closing")


def test_db_upgrade_on_a_new_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_template: Template
) -> None:
    url = migrated_template.empty(tmp_path / "new.db")
    monkeypatch.setenv("DEALBRIDGE_DATABASE_URL", url)
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "was empty" in result.output
    current = CliRunner().invoke(cli, ["db", "current"])
    assert current.stderr.startswith(f"Database: {url}")  # the test cluster has no password
    last = current.stdout.strip().splitlines()[-1]
    applied, newest = (part.split(": ")[1] for part in last.split("; "))
    assert applied == newest


def test_help_is_quick_and_does_not_load_msgraph() -> None:
    code = (
        "import sys; from connector.admin.cli import cli\n"
        "try:\n    cli(['--help'], standalone_mode=False)\nexcept SystemExit: pass\n"
        "assert 'msgraph' not in sys.modules and 'sqlalchemy' not in sys.modules, 'heavy import'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout


def test_bad_settings_stop_start_up_with_every_problem_listed() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {
                "client_id": "not-a-guid",
                "public_url": "dealbridge.example.com",
                "max_body_bytes": 5,
            },
            env_file=False,
        )
    message = str(caught.value)
    assert "DEALBRIDGE_CLIENT_ID" in message
    assert "DEALBRIDGE_PUBLIC_URL" in message
    assert "DEALBRIDGE_MAX_BODY_BYTES" in message


def test_settings_errors_never_echo_secrets() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"client_secret": ["s3cr3t-value"], "api_key": {"x": "k3y"}}, env_file=False)
    assert "s3cr3t-value" not in str(caught.value)


def test_missing_microsoft_settings_are_listed_together() -> None:
    settings = load_settings({}, env_file=False)
    problems = "\n".join(settings.microsoft365_problems())
    for name in ("TENANT_ID", "CLIENT_ID", "CLIENT_SECRET", "PUBLIC_URL"):
        assert f"DEALBRIDGE_{name}" in problems


def test_cli_reports_bad_settings_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEALBRIDGE_DATABASE_URL", "nonsense")
    monkeypatch.setenv("DEALBRIDGE_CLIENT_ID", "nope")
    result = CliRunner().invoke(cli, ["pipelines", "list"])
    assert result.exit_code == 2
    assert "DEALBRIDGE_DATABASE_URL" in result.output
    assert "DEALBRIDGE_CLIENT_ID" in result.output
    assert "Traceback" not in result.output


GUID_APP = "8c5e4ad4-35a4-4bd6-9ac9-4b2f8d6a3f10"
GUID_CLIENT = "1f0c3a2b-9d8e-4c7b-a6f5-0e1d2c3b4a59"


def test_manifest_build_writes_the_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zipfile

    monkeypatch.setenv("DEALBRIDGE_TEAMS_APP_ID", GUID_APP)
    monkeypatch.setenv("DEALBRIDGE_CLIENT_ID", GUID_CLIENT)
    monkeypatch.setenv("DEALBRIDGE_PUBLIC_URL", "https://deals.contoso.com")
    out = tmp_path / "dealbridge-teams.zip"
    result = CliRunner().invoke(cli, ["manifest", "build", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(package.read("manifest.json"))
    assert manifest["id"] == GUID_APP
    assert manifest["bots"][0]["botId"] == GUID_CLIENT
    assert manifest["validDomains"] == ["deals.contoso.com"]


def test_manifest_build_refuses_with_every_problem_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEALBRIDGE_PUBLIC_URL", "http://deals.contoso.com")
    monkeypatch.setenv("DEALBRIDGE_APP_SHORT_NAME", "x" * 31)
    out = tmp_path / "p.zip"
    result = CliRunner().invoke(cli, ["manifest", "build", "--out", str(out)])
    assert result.exit_code == 1
    for name in ("TEAMS_APP_ID", "CLIENT_ID", "PUBLIC_URL", "APP_SHORT_NAME"):
        assert f"DEALBRIDGE_{name}" in result.output
    assert not out.exists()


def test_admin_consent_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEALBRIDGE_TENANT_ID", "contoso.onmicrosoft.com")
    monkeypatch.setenv("DEALBRIDGE_CLIENT_ID", GUID_CLIENT)
    monkeypatch.setenv("DEALBRIDGE_PUBLIC_URL", "https://deals.contoso.com")
    result = CliRunner().invoke(cli, ["admin", "consent-url"])
    assert result.exit_code == 0, result.output
    url = result.output.strip().splitlines()[-1]
    assert url.startswith(
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/adminconsent?"
    )
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == [GUID_CLIENT]
    assert query["redirect_uri"] == ["https://deals.contoso.com/admin/consented"]


def test_privacy_and_terms_pages_are_served(client) -> None:  # type: ignore[no-untyped-def]
    assert b"never" in client.get("/privacy").data
    assert client.get("/terms").status_code == 200
    assert client.get("/admin/consented?admin_consent=True").status_code == 200
    refused = client.get("/admin/consented?error=access_denied&error_description=<b>no</b>")
    assert refused.status_code == 400
    assert b"<b>no</b>" not in refused.data


def test_reminders_preview_prints_the_plan_in_the_reps_zone(
    app: Flask, env: dict[str, str]
) -> None:
    client = app.test_client()
    from tests.connector.samples import deal_body

    headers = {"Authorization": f"Bearer {_write_key(app)}"}
    client.put(
        "/api/v1/reps/ann.lee@contoso.com", json={"time_zone": "Asia/Kolkata"}, headers=headers
    )
    client.put("/api/v1/deals/OPP-9", json=deal_body(stage="negotiation"), headers=headers)
    result = CliRunner().invoke(cli, ["reminders", "preview", "--deal", "OPP-9"])
    assert result.exit_code == 0, result.output
    assert "Asia/Kolkata" in result.output
    assert "IST" in result.output
    assert "idle" in result.output
    missing = CliRunner().invoke(cli, ["reminders", "preview", "--deal", "NOPE"])
    assert missing.exit_code == 1
    assert "no deal" in missing.output


def _write_key(app: Flask) -> str:
    from connector.api.keys import create_key

    with get_store(app).session() as session:
        return create_key(session, "cli-test", "write")


def test_serve_answers_healthz_with_the_scheduler_running(
    tmp_path: Path, migrated_template: Template, sandbox_tenant: Any
) -> None:
    import socket
    import time

    import requests

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "DEALBRIDGE_DATABASE_URL": migrated_template.empty(tmp_path / "serve.db"),
        "DEALBRIDGE_AUTO_MIGRATE": "true",
        "DEALBRIDGE_TENANT_ID": sandbox_tenant.tenant_id,
        "DEALBRIDGE_CLIENT_ID": sandbox_tenant.client_id,
        "DEALBRIDGE_CLIENT_SECRET": sandbox_tenant.client_secret,
        "DEALBRIDGE_LOGIN_BASE_URL": sandbox_tenant.base_url,
        "DEALBRIDGE_GRAPH_BASE_URL": sandbox_tenant.base_url,
        "DEALBRIDGE_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "connector", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        health = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and health is None:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except requests.ConnectionError:
                time.sleep(0.2)
        assert health is not None
        assert health.status_code == 200, health.text
        assert health.json()["scheduler"] == "running"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_doctor_names_the_database_and_creates_none(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALBRIDGE_")}
    result = subprocess.run(
        [sys.executable, "-m", "connector", "doctor"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"Database: sqlite:///{tmp_path / 'instance' / 'dealbridge.db'}" in result.stdout
    assert "dealbridge db upgrade" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "instance").exists()
