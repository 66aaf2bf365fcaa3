"""The sandbox's authorization-code sign-in with PKCE, driven by the real MSAL (no browser:
the sign-in page is a form a test can post)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import msal
import pytest
import requests

from sandbox.server import RunningSandbox
from tests.sandbox.conftest import MICROSOFT_LOGIN, AuthorityRewrite, Control

REDIRECT = "http://127.0.0.1:9/admin/signed-in"

# The console uses response_mode=query (see graph_sync.sign_in); MSAL recommends form_post.
pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post':UserWarning")


@pytest.fixture
def client(sandbox: RunningSandbox) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        sandbox.client_id,
        client_credential=sandbox.client_secret,
        authority=f"{MICROSOFT_LOGIN}/{sandbox.tenant_id}",
        http_client=AuthorityRewrite(sandbox.base_url),
    )


def _sign_in(sandbox: RunningSandbox, flow: dict[str, Any], upn: str) -> dict[str, str]:
    """What the browser would do: open the page, pick the user, follow to the redirect URI."""
    url = sandbox.base_url + flow["auth_uri"][len(MICROSOFT_LOGIN) :]
    page = requests.get(url, timeout=10)
    assert page.status_code == 200
    assert upn in page.text
    answer = requests.post(url, data={"login": upn}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_msal_signs_a_user_in_and_the_id_token_carries_the_assigned_app_role(
    sandbox: RunningSandbox, control: Control, client: msal.ConfidentialClientApplication
) -> None:
    user = control.add_user("ada", "Ada Admin")
    assigned = control.post(
        "/approles", {"userPrincipalName": "ada@contoso.example", "role": "DealBridge.Admin"}
    )
    assert assigned.status_code == 201
    flow = client.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)

    result = client.acquire_token_by_auth_code_flow(
        flow, _sign_in(sandbox, flow, user["userPrincipalName"])
    )

    assert "id_token" in result, result
    claims = jwt.decode(result["id_token"], options={"verify_signature": False})
    assert claims["roles"] == ["DealBridge.Admin"]
    assert claims["oid"] == user["id"]
    assert claims["preferred_username"] == "ada@contoso.example"
    assert claims["tid"] == sandbox.tenant_id
    assert claims["aud"] == sandbox.client_id
    assert claims["iss"] == f"{MICROSOFT_LOGIN}/{sandbox.tenant_id}/v2.0"


def test_a_user_without_an_assignment_gets_no_roles_claim(
    sandbox: RunningSandbox, control: Control, client: msal.ConfidentialClientApplication
) -> None:
    control.add_user("bob", "Bob Rep")
    flow = client.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)

    result = client.acquire_token_by_auth_code_flow(
        flow, _sign_in(sandbox, flow, "bob@contoso.example")
    )

    assert "roles" not in jwt.decode(result["id_token"], options={"verify_signature": False})


def test_a_wrong_code_verifier_is_refused_with_aadsts501481(
    sandbox: RunningSandbox, control: Control, client: msal.ConfidentialClientApplication
) -> None:
    control.add_user("ada", "Ada Admin")
    flow = client.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    answer = _sign_in(sandbox, flow, "ada@contoso.example")
    flow["code_verifier"] = "x" * 43

    result = client.acquire_token_by_auth_code_flow(flow, answer)

    assert result.get("error") == "invalid_grant"
    assert 501481 in result.get("error_codes", [])


def test_a_code_is_redeemed_once(
    sandbox: RunningSandbox, control: Control, client: msal.ConfidentialClientApplication
) -> None:
    control.add_user("ada", "Ada Admin")
    flow = client.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    answer = _sign_in(sandbox, flow, "ada@contoso.example")
    assert "id_token" in client.acquire_token_by_auth_code_flow(dict(flow), answer)

    again = client.acquire_token_by_auth_code_flow(dict(flow), answer)

    assert again.get("error") == "invalid_grant"


def test_authorize_without_pkce_goes_back_with_an_error(
    sandbox: RunningSandbox, control: Control
) -> None:
    url = f"{sandbox.base_url}/{sandbox.tenant_id}/oauth2/v2.0/authorize"
    params = {
        "client_id": sandbox.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "openid User.Read",
        "state": "s1",
    }

    answer = requests.get(url, params=params, allow_redirects=False, timeout=10)

    assert answer.status_code == 302
    back = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert back["error"] == ["invalid_request"]
    assert back["state"] == ["s1"]
