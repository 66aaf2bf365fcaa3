"""`dealbridge manifest publish` end to end: build the package, sign the admin in with a device
code, publish to the sandbox tenant's org catalog (new, or a new version)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from connector.admin.cli import cli
from graph_sync.catalog import AppCatalog, CatalogApp
from graph_sync.device_code import sign_in_with_device_code

TEAMS_APP_ID = "8e4d2c6b-1a3f-4e5d-9b7c-0a1b2c3d4e5f"


@pytest.fixture
def tenant(sandbox_tenant: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    requests.post(f"{sandbox_tenant.base_url}/_sandbox/reset", timeout=30).raise_for_status()
    env = {
        "DEALBRIDGE_TENANT_ID": sandbox_tenant.tenant_id,
        "DEALBRIDGE_CLIENT_ID": sandbox_tenant.client_id,
        "DEALBRIDGE_PUBLIC_URL": "https://deals.contoso.example",
        "DEALBRIDGE_TEAMS_APP_ID": TEAMS_APP_ID,
        "DEALBRIDGE_LOGIN_BASE_URL": sandbox_tenant.base_url,
        "DEALBRIDGE_GRAPH_BASE_URL": sandbox_tenant.base_url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return sandbox_tenant


def _sign_ins(tenant: Any, **changes: Any) -> None:
    requests.patch(
        f"{tenant.base_url}/_sandbox/devicecode", json=changes, timeout=10
    ).raise_for_status()


def _publish(*args: str) -> Result:
    return CliRunner().invoke(cli, ["manifest", "publish", *args])


def _in_catalog(tenant: Any) -> CatalogApp | None:
    _sign_ins(tenant, autoApprove=True)
    user = sign_in_with_device_code(
        tenant.tenant_id, tenant.client_id, show=lambda p: None, login_base_url=tenant.base_url
    )
    with AppCatalog(user.access_token, tenant.base_url) as catalog:
        return catalog.find(TEAMS_APP_ID)


class Approver:
    """The admin at their browser: approves (or declines) the first code that shows up."""

    def __init__(self, tenant: Any, *, decline: bool = False, **approval: Any) -> None:
        self.base_url = tenant.base_url
        self.decline = decline
        self.approval = approval
        self.approved: list[str] = []
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Approver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pending = requests.get(f"{self.base_url}/_sandbox/devicecode", timeout=10).json()
            codes = [s["userCode"] for s in pending["value"] if s["state"] == "pending"]
            if codes:
                action = "decline" if self.decline else "approve"
                requests.post(
                    f"{self.base_url}/_sandbox/devicecode/{action}",
                    json={"userCode": codes[0], **self.approval},
                    timeout=10,
                ).raise_for_status()
                self.approved.append(codes[0])
                return
            time.sleep(0.05)


def test_publish_signs_the_admin_in_and_puts_a_new_app_in_the_org_catalog(tenant: Any) -> None:
    _sign_ins(tenant, autoApprove=True)

    result = _publish()

    assert result.exit_code == 0, result.output
    assert "open https://microsoft.com/devicelogin and enter the code " in result.output
    assert f"Signed in as admin@{tenant.domain}" in result.output
    app = _in_catalog(tenant)
    assert app is not None
    assert f"as a new org app: catalog id {app.id}" in result.output
    assert "Next: allow it for reps in the Teams admin center" in result.output
    assert app.latest_version == "1.0.0"
    assert app.app_definitions[0].publishing_state == "published"


def test_publish_waits_for_the_code_the_admin_types(tenant: Any) -> None:
    # Entra asks for 5 s between polls; 1 s keeps the test short.
    _sign_ins(tenant, interval=1)

    with Approver(tenant) as admin:
        result = _publish()

    assert result.exit_code == 0, result.output
    assert admin.approved
    assert f"enter the code {admin.approved[0]}" in result.output


def test_an_app_in_the_catalog_is_updated_only_with_update_and_a_higher_version(
    tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sign_ins(tenant, autoApprove=True)
    assert _publish().exit_code == 0
    monkeypatch.setenv("DEALBRIDGE_APP_VERSION", "1.1.0")

    without_flag = _publish()
    updated = _publish("--update")
    again = _publish("--update")

    assert without_flag.exit_code == 1
    assert "already in the catalog" in without_flag.output
    assert "--update" in without_flag.output
    assert updated.exit_code == 0, updated.output
    assert "Uploaded version 1.1.0 (was 1.0.0)" in updated.output
    assert again.exit_code == 1
    assert "raise DEALBRIDGE_APP_VERSION" in again.output
    app = _in_catalog(tenant)
    assert app is not None
    assert app.latest_version == "1.1.0"


def test_a_non_admin_submits_a_built_zip_for_review_and_is_told_the_next_step(
    tenant: Any, tmp_path: Path
) -> None:
    package = tmp_path / "dealbridge-teams.zip"
    built = CliRunner().invoke(cli, ["manifest", "build", "--out", str(package)])
    assert built.exit_code == 0, built.output
    _sign_ins(tenant, autoApprove=True, admin=False)

    refused = _publish("--zip", str(package))
    submitted = _publish("--zip", str(package), "--requires-review")

    assert refused.exit_code == 1
    assert "--requires-review" in refused.output
    assert submitted.exit_code == 0, submitted.output
    assert "Next: a Teams administrator approves it in the Teams admin center" in submitted.output
    app = _in_catalog(tenant)
    assert app is not None
    assert app.app_definitions[0].publishing_state == "submitted"


def test_a_declined_sign_in_stops_with_advice_and_publishes_nothing(tenant: Any) -> None:
    _sign_ins(tenant, interval=1)

    with Approver(tenant, decline=True):
        result = _publish()

    assert result.exit_code == 1
    assert "sign-in failed (authorization_declined)" in result.output
    assert _in_catalog(tenant) is None


def test_a_missing_setting_stops_before_anyone_signs_in(
    tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEALBRIDGE_TEAMS_APP_ID")
    requests.delete(f"{tenant.base_url}/_sandbox/requests", timeout=10).raise_for_status()

    result = _publish()

    assert result.exit_code == 1
    assert "DEALBRIDGE_TEAMS_APP_ID" in result.output
    served = requests.get(f"{tenant.base_url}/_sandbox/requests", timeout=10).json()
    assert served["total"] == 0
