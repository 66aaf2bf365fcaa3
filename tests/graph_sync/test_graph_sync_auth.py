"""Tokens from the sandbox's Entra through the real MSAL."""

from __future__ import annotations

import jwt
import pytest
import requests
from pydantic import SecretStr

from graph_sync.auth import (
    BOT_SCOPE,
    GRAPH_SCOPE,
    GraphCredentials,
    LoginRedirectSession,
    TokenProvider,
)
from graph_sync.errors import EntraError

from .conftest import Control

TOKEN_ROUTE = "POST /{tenant}/oauth2/v2.0/token"


def claims(token: str) -> dict[str, object]:
    decoded: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def test_graph_token_is_issued_for_graph_and_read_from_cache_the_second_time(
    credentials: GraphCredentials, control: Control
) -> None:
    tokens = TokenProvider(credentials)

    first = tokens.token(GRAPH_SCOPE)
    second = tokens.token(GRAPH_SCOPE)

    assert first == second
    assert claims(first)["aud"] == "https://graph.microsoft.com"
    assert control.calls(TOKEN_ROUTE) == 1


def test_bot_token_has_the_bot_framework_audience(credentials: GraphCredentials) -> None:
    token = TokenProvider(credentials).token(BOT_SCOPE)

    assert claims(token)["aud"] == "https://api.botframework.com"


def test_wrong_secret_is_entra_error_7000215_with_advice(credentials: GraphCredentials) -> None:
    wrong = credentials.model_copy(update={"client_secret": SecretStr("not-the-secret")})

    with pytest.raises(EntraError) as raised:
        TokenProvider(wrong).token()

    assert raised.value.aadsts == 7000215
    assert raised.value.code == "invalid_client"
    assert "Certificates & secrets" in raised.value.advice
    assert "not-the-secret" not in str(raised.value)
    assert not raised.value.needs_admin_consent


def test_an_app_the_tenant_does_not_know_needs_admin_consent_by_its_code(
    credentials: GraphCredentials,
) -> None:
    unknown = credentials.model_copy(update={"client_id": "00000000-0000-0000-0000-0000000000aa"})

    with pytest.raises(EntraError) as raised:
        TokenProvider(unknown).token()

    assert raised.value.aadsts == 700016
    assert raised.value.needs_admin_consent


def test_consent_is_read_from_the_aadsts_code_not_from_the_text() -> None:
    assert EntraError("invalid_grant", 65001, "whatever the words").needs_admin_consent
    assert not EntraError("invalid_client", 7000215, "AADSTS65001 consent").needs_admin_consent


def test_unknown_tenant_is_entra_error_90002(credentials: GraphCredentials) -> None:
    unknown = credentials.model_copy(update={"tenant_id": "00000000-0000-0000-0000-0000000000ff"})

    with pytest.raises(EntraError) as raised:
        TokenProvider(unknown).token()

    assert raised.value.aadsts == 90002
    assert "DEALBRIDGE_TENANT_ID" in raised.value.advice


def test_credentials_never_show_the_secret(credentials: GraphCredentials) -> None:
    secret = credentials.client_secret
    assert secret is not None

    assert secret.get_secret_value() not in repr(credentials)
    assert secret.get_secret_value() not in str(credentials.model_dump())


def test_credentials_need_a_secret_or_a_certificate() -> None:
    with pytest.raises(ValueError, match="client_secret or a certificate"):
        TokenProvider(GraphCredentials(tenant_id="t", client_id="c"))


def test_login_redirect_sends_microsoft_login_urls_to_the_sandbox(
    credentials: GraphCredentials, control: Control
) -> None:
    session = LoginRedirectSession(credentials.login_base_url)

    answer = session.get(
        f"https://login.microsoftonline.com/{credentials.tenant_id}"
        "/v2.0/.well-known/openid-configuration",
        timeout=10,
    )

    assert answer.status_code == 200
    assert "token_endpoint" in answer.json()
    with pytest.raises(requests.ConnectionError):
        session.get("http://127.0.0.1:9/elsewhere", timeout=2)
