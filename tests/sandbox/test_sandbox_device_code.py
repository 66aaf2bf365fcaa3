"""Device-code sign-in (Entra's shapes, driven by the real MSAL) and publishing a Teams app zip
to the org catalog with the delegated token it gives."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import jwt
import msal
import pytest
import requests
from PIL import Image

from sandbox.server import RunningSandbox

from .conftest import MICROSOFT_LOGIN, AuthorityRewrite, Control

SUBMIT = "https://graph.microsoft.com/AppCatalog.Submit"
APP_ID = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"


@pytest.fixture
def public_app(sandbox: RunningSandbox, control: Control) -> msal.PublicClientApplication:
    # Polling without a wait keeps MSAL from sleeping (it waits `interval` seconds per poll).
    answer = control.http.patch(
        f"{sandbox.base_url}/_sandbox/devicecode", json={"interval": 0}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return msal.PublicClientApplication(
        sandbox.client_id,
        authority=f"{MICROSOFT_LOGIN}/{sandbox.tenant_id}",
        http_client=AuthorityRewrite(sandbox.base_url),
    )


def _sign_in(
    public_app: msal.PublicClientApplication, control: Control, **approval: Any
) -> dict[str, Any]:
    flow = public_app.initiate_device_flow(scopes=[SUBMIT])
    answer = control.post("/devicecode/approve", {"userCode": flow["user_code"], **approval})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = public_app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    return result


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, (255, 255, 255, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def _package(
    version: str = "1.0.0",
    *,
    external_id: str = APP_ID,
    color: tuple[int, int] | None = (192, 192),
    outline: tuple[int, int] | None = (32, 32),
    **manifest_changes: Any,
) -> bytes:
    manifest: dict[str, Any] = {
        "manifestVersion": "1.30",
        "version": version,
        "id": external_id,
        "developer": {"name": "Contoso"},
        "name": {"short": "DealBridge", "full": "DealBridge for Contoso"},
        "description": {"short": "Deal reminders", "full": "Deal reminders in Teams"},
        "icons": {"color": "color.png", "outline": "outline.png"},
        "webApplicationInfo": {"id": "4b1f2e9a-0c7d-4e35-8f60-9a2b7c3d5e14"},
        "activities": {"activityTypes": [{"type": "reminderDue"}]},
    }
    manifest.update(manifest_changes)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        if color:
            archive.writestr("color.png", _png(color))
        if outline:
            archive.writestr("outline.png", _png(outline))
    return buffer.getvalue()


def _upload(
    sandbox: RunningSandbox,
    token: str,
    body: bytes,
    path: str = "/appCatalogs/teamsApps",
    content_type: str = "application/zip",
    **params: str,
) -> requests.Response:
    return requests.post(
        f"{sandbox.base_url}/v1.0{path}",
        params=params,
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
        timeout=10,
    )


def _catalog(sandbox: RunningSandbox, token: str) -> list[dict[str, Any]]:
    answer = requests.get(
        f"{sandbox.base_url}/v1.0/appCatalogs/teamsApps",
        params={"$filter": f"externalId eq '{APP_ID}'", "$expand": "appDefinitions"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    value: list[dict[str, Any]] = answer.json()["value"]
    return value


# ---- the device-code flow -------------------------------------------------------------------


def test_device_code_answer_has_entras_fields_and_polls_stay_pending_until_approved(
    sandbox: RunningSandbox, control: Control
) -> None:
    start = requests.post(
        f"{sandbox.base_url}/{sandbox.tenant_id}/oauth2/v2.0/devicecode",
        data={"client_id": sandbox.client_id, "scope": f"{SUBMIT} openid profile"},
        timeout=10,
    )
    assert start.status_code == 200, start.text
    flow = start.json()
    assert set(flow) == {
        "user_code",
        "device_code",
        "verification_uri",
        "expires_in",
        "interval",
        "message",
    }
    assert (flow["expires_in"], flow["interval"]) == (900, 5)
    assert flow["verification_uri"] == "https://microsoft.com/devicelogin"
    assert flow["user_code"] in flow["message"]
    poll = {"grant_type": DEVICE_GRANT, "client_id": sandbox.client_id, "device_code": ""}
    poll["device_code"] = flow["device_code"]
    token_url = f"{sandbox.base_url}/{sandbox.tenant_id}/oauth2/v2.0/token"

    pending = requests.post(token_url, data=poll, timeout=10)
    assert pending.status_code == 400
    assert pending.json()["error"] == "authorization_pending"
    assert pending.json()["error_codes"] == [70016]

    listed = control.get("/devicecode")["value"]
    assert [(s["userCode"], s["state"]) for s in listed] == [(flow["user_code"], "pending")]
    assert "deviceCode" not in listed[0]
    assert control.post("/devicecode/approve", {"userCode": flow["user_code"]}).status_code == 200

    granted = requests.post(token_url, data=poll, timeout=10)
    assert granted.status_code == 200, granted.text
    assert {"access_token", "id_token", "token_type", "scope", "expires_in"} <= set(granted.json())
    again = requests.post(token_url, data=poll, timeout=10)
    assert again.json()["error"] == "bad_verification_code"


def test_msal_signs_a_user_in_and_the_token_is_delegated_with_scp_upn_and_admin_role(
    sandbox: RunningSandbox, control: Control, public_app: msal.PublicClientApplication
) -> None:
    control.add_user("dana", "Dana Admin")

    result = _sign_in(public_app, control, userPrincipalName="dana@contoso.example")

    claims = _claims(result["access_token"])
    assert claims["scp"] == "AppCatalog.Submit"
    assert claims["upn"] == "dana@contoso.example"
    assert claims["idtyp"] == "user"
    assert "roles" not in claims
    assert GLOBAL_ADMINISTRATOR in claims["wids"]
    assert result["id_token_claims"]["preferred_username"] == "dana@contoso.example"
    assert public_app.get_accounts()[0]["username"] == "dana@contoso.example"
    assert _catalog(sandbox, result["access_token"]) == []


@pytest.mark.parametrize(
    ("arrange", "error", "code"),
    [
        ("decline", "authorization_declined", 65004),
        ("expire", "expired_token", 70019),
    ],
)
def test_a_declined_or_expired_code_ends_the_sign_in_with_entras_error(
    sandbox: RunningSandbox,
    control: Control,
    public_app: msal.PublicClientApplication,
    arrange: str,
    error: str,
    code: int,
) -> None:
    if arrange == "expire":
        control.http.patch(
            f"{sandbox.base_url}/_sandbox/devicecode", json={"expiresIn": 0}, timeout=10
        ).raise_for_status()
    flow = public_app.initiate_device_flow(scopes=[SUBMIT])
    if arrange == "decline":
        assert control.post("/devicecode/decline", {"userCode": flow["user_code"]}).ok

    result = public_app.acquire_token_by_device_flow(flow)

    assert result.get("error") == error
    assert result.get("error_codes") == [code]


def test_auto_approve_signs_the_configured_user_in_without_a_control_call(
    sandbox: RunningSandbox, control: Control, public_app: msal.PublicClientApplication
) -> None:
    control.http.patch(
        f"{sandbox.base_url}/_sandbox/devicecode",
        json={"autoApprove": True, "userPrincipalName": "rep@contoso.example", "admin": False},
        timeout=10,
    ).raise_for_status()
    flow = public_app.initiate_device_flow(scopes=[SUBMIT])

    result = public_app.acquire_token_by_device_flow(flow)

    claims = _claims(result["access_token"])
    assert claims["upn"] == "rep@contoso.example"
    assert GLOBAL_ADMINISTRATOR not in claims["wids"]


def test_an_unknown_app_or_tenant_gets_no_device_code(sandbox: RunningSandbox) -> None:
    unknown_app = requests.post(
        f"{sandbox.base_url}/{sandbox.tenant_id}/oauth2/v2.0/devicecode",
        data={"client_id": "00000000-0000-0000-0000-000000000001", "scope": SUBMIT},
        timeout=10,
    )
    unknown_tenant = requests.post(
        f"{sandbox.base_url}/fabrikam.example/oauth2/v2.0/devicecode",
        data={"client_id": sandbox.client_id, "scope": SUBMIT},
        timeout=10,
    )
    assert (unknown_app.status_code, unknown_app.json()["error_codes"]) == (400, [700016])
    assert (unknown_tenant.status_code, unknown_tenant.json()["error_codes"]) == (400, [90002])


# ---- publishing to the org catalog ----------------------------------------------------------


@pytest.fixture
def admin_token(control: Control, public_app: msal.PublicClientApplication) -> str:
    token: str = _sign_in(public_app, control, admin=True)["access_token"]
    return token


def test_an_admin_publishes_a_zip_and_the_catalog_lists_it_published(
    sandbox: RunningSandbox, admin_token: str
) -> None:
    answer = _upload(sandbox, admin_token, _package())

    assert answer.status_code == 201, answer.text
    app = answer.json()
    assert app["externalId"] == APP_ID
    assert app["distributionMethod"] == "organization"
    assert answer.headers["Location"].endswith(f"/appCatalogs/teamsApps/{app['id']}")
    listed = _catalog(sandbox, admin_token)
    assert [a["id"] for a in listed] == [app["id"]]
    definition = listed[0]["appDefinitions"][0]
    assert (definition["version"], definition["publishingState"]) == ("1.0.0", "published")


def test_the_same_manifest_id_twice_is_a_conflict(
    sandbox: RunningSandbox, admin_token: str
) -> None:
    assert _upload(sandbox, admin_token, _package()).status_code == 201

    again = _upload(sandbox, admin_token, _package("1.0.1"))

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "Conflict"


def test_a_new_version_replaces_the_published_one_and_must_be_higher(
    sandbox: RunningSandbox, admin_token: str
) -> None:
    app_id = _upload(sandbox, admin_token, _package()).json()["id"]
    versions = f"/appCatalogs/teamsApps/{app_id}/appDefinitions"

    same = _upload(sandbox, admin_token, _package("1.0.0"), versions)
    newer = _upload(sandbox, admin_token, _package("1.1.0"), versions)

    assert same.status_code == 409
    assert newer.status_code == 204, newer.text
    definitions = _catalog(sandbox, admin_token)[0]["appDefinitions"]
    assert [(d["version"], d["publishingState"]) for d in definitions] == [("1.1.0", "published")]


def test_without_admin_role_an_app_goes_to_review_only(
    sandbox: RunningSandbox, control: Control, public_app: msal.PublicClientApplication
) -> None:
    token = _sign_in(public_app, control, admin=False)["access_token"]

    refused = _upload(sandbox, token, _package())
    submitted = _upload(sandbox, token, _package(), requiresReview="true")

    assert refused.status_code == 403
    assert "requiresReview" in refused.json()["error"]["message"]
    assert submitted.status_code == 201, submitted.text
    state = _catalog(sandbox, token)[0]["appDefinitions"][0]["publishingState"]
    assert state == "submitted"


def test_an_app_only_token_cannot_publish(
    sandbox: RunningSandbox, control: Control, token: str
) -> None:
    answer = _upload(sandbox, token, _package())

    assert answer.status_code == 403
    assert "delegated" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "targets"),
    [
        (b"not a zip", ["package"]),
        (_package(outline=None, color=(64, 64)), ["icons.color", "icons.outline"]),
        (_package(external_id="not-a-guid", version="1.0"), ["version", "id"]),
    ],
    ids=["not-a-zip", "icons", "id-and-version"],
)
def test_a_broken_package_is_refused_with_one_detail_per_problem(
    sandbox: RunningSandbox, admin_token: str, body: bytes, targets: list[str]
) -> None:
    answer = _upload(sandbox, admin_token, body)

    assert answer.status_code == 400
    inner = answer.json()["error"]["innerError"]
    assert inner["code"] == "UnableToParseTeamsAppManifest"
    assert sorted(d["target"] for d in inner["details"]) == sorted(targets)
    assert _catalog(sandbox, admin_token) == []


def test_a_body_that_is_not_sent_as_a_zip_is_refused(
    sandbox: RunningSandbox, admin_token: str
) -> None:
    answer = _upload(sandbox, admin_token, _package(), content_type="application/json")

    assert answer.status_code == 415


def test_an_app_published_through_graph_installs_for_a_user(
    sandbox: RunningSandbox, control: Control, admin_token: str, graph_http: requests.Session
) -> None:
    control.add_user("ann", "Ann Rep")
    app_id = _upload(sandbox, admin_token, _package()).json()["id"]

    installed = graph_http.post(
        f"{sandbox.base_url}/v1.0/users/ann@contoso.example/teamwork/installedApps",
        json={"teamsApp@odata.bind": f"{sandbox.base_url}/v1.0/appCatalogs/teamsApps/{app_id}"},
        timeout=10,
    )

    assert installed.status_code == 201, installed.text
