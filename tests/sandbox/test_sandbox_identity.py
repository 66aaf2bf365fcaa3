"""Entra for the sandbox tenant: msal gets tokens; Graph refuses bad tokens and missing roles."""

from __future__ import annotations

import jwt
import msal
import pytest
import requests

from sandbox.server import RunningSandbox

from .conftest import GRAPH_SCOPE, MICROSOFT_LOGIN, AuthorityRewrite, Control


def _app(
    sandbox: RunningSandbox, secret: str | None = None, client_id: str | None = None
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id or sandbox.client_id,
        client_credential=secret or sandbox.client_secret,
        authority=f"{MICROSOFT_LOGIN}/{sandbox.tenant_id}",
        http_client=AuthorityRewrite(sandbox.base_url),
    )


def test_msal_gets_a_graph_token_with_tenant_app_and_roles(
    sandbox: RunningSandbox, control: Control
) -> None:
    result = _app(sandbox).acquire_token_for_client([GRAPH_SCOPE])
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["tid"] == sandbox.tenant_id
    assert claims["appid"] == sandbox.client_id
    assert "Calendars.ReadWrite" in claims["roles"]
    assert claims["exp"] > claims["iat"]


def test_token_signature_verifies_with_the_published_keys(
    sandbox: RunningSandbox, control: Control
) -> None:
    token = _app(sandbox).acquire_token_for_client([GRAPH_SCOPE])["access_token"]
    config = requests.get(
        f"{sandbox.base_url}/{sandbox.tenant_id}/v2.0/.well-known/openid-configuration", timeout=10
    ).json()
    keys_url = config["jwks_uri"].replace(MICROSOFT_LOGIN, sandbox.base_url)
    jwks = requests.get(keys_url, timeout=10).json()
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(
        token, key.key, algorithms=["RS256"], audience="https://graph.microsoft.com"
    )
    assert config["token_endpoint"].startswith(f"{MICROSOFT_LOGIN}/{sandbox.tenant_id}/")
    assert claims["iss"] == f"https://sts.windows.net/{sandbox.tenant_id}/"


def test_a_bot_token_is_for_the_bot_framework(sandbox: RunningSandbox, control: Control) -> None:
    result = _app(sandbox).acquire_token_for_client(["https://api.botframework.com/.default"])
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://api.botframework.com"


def test_wrong_secret_is_refused_as_entra_refuses_it(
    sandbox: RunningSandbox, control: Control
) -> None:
    result = _app(sandbox, secret="not-the-secret").acquire_token_for_client([GRAPH_SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215:")
    assert "not-the-secret" not in result["error_description"]


def test_unknown_app_and_bad_scope_are_refused(sandbox: RunningSandbox, control: Control) -> None:
    unknown = _app(
        sandbox, client_id="00000000-0000-0000-0000-000000000001"
    ).acquire_token_for_client([GRAPH_SCOPE])
    bad_scope = _app(sandbox).acquire_token_for_client(["https://graph.microsoft.com/User.Read"])
    assert unknown["error_codes"] == [700016]
    assert bad_scope["error"] == "invalid_scope"


def test_unknown_tenant_has_no_metadata(sandbox: RunningSandbox, control: Control) -> None:
    answer = requests.get(
        f"{sandbox.base_url}/other.example/v2.0/.well-known/openid-configuration", timeout=10
    )
    assert answer.status_code == 400
    assert answer.json()["error_codes"] == [90002]


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Access token is empty."),
        ("Bearer not-a-jwt", "IDX14100: JWT is not well formed, there are no dots (.)."),
    ],
)
def test_graph_without_a_valid_token_answers_401(
    sandbox: RunningSandbox, control: Control, authorization: str | None, message: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = requests.get(f"{sandbox.base_url}/v1.0/users", headers=headers, timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert answer.json()["error"]["message"] == message


def test_a_bot_token_is_not_a_graph_token(sandbox: RunningSandbox, control: Control) -> None:
    bot = _app(sandbox).acquire_token_for_client(["https://api.botframework.com/.default"])
    answer = requests.get(
        f"{sandbox.base_url}/v1.0/users",
        headers={"Authorization": f"Bearer {bot['access_token']}"},
        timeout=10,
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == "Access token validation failure. Invalid audience."


def test_missing_permission_is_refused_per_route(sandbox: RunningSandbox, control: Control) -> None:
    control.add_user("ann", "Ann Rep")
    control.settings(roles=["MailboxSettings.Read"])
    token = _app(sandbox).acquire_token_for_client([GRAPH_SCOPE])["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    users = requests.get(f"{sandbox.base_url}/v1.0/users", headers=headers, timeout=10)
    events = requests.get(
        f"{sandbox.base_url}/v1.0/users/ann@contoso.example/events", headers=headers, timeout=10
    )
    settings = requests.get(
        f"{sandbox.base_url}/v1.0/users/ann@contoso.example/mailboxSettings",
        headers=headers,
        timeout=10,
    )
    assert (users.status_code, users.json()["error"]["code"]) == (
        403,
        "Authorization_RequestDenied",
    )
    assert (events.status_code, events.json()["error"]["code"]) == (403, "ErrorAccessDenied")
    assert settings.status_code == 200


def test_a_token_refused_for_an_unknown_tenant_is_logged_with_its_status(
    sandbox: RunningSandbox, control: Control
) -> None:
    answer = requests.post(
        f"{sandbox.base_url}/other.example/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": sandbox.client_id},
        timeout=10,
    )
    assert (answer.status_code, answer.json()["error_codes"]) == (400, [90002])
    logged = [r for r in control.requests_served()["recent"] if r["route"].endswith("/token")]
    assert [r["status"] for r in logged] == [400]
