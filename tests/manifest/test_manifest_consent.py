"""The admin-consent link for the configured app."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from manifest import GRAPH_DEFAULT_SCOPE, PUBLIC_CLOUD_LOGIN, admin_consent_url

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def test_consent_url_targets_the_tenant_v2_admin_consent_endpoint() -> None:
    url = admin_consent_url(
        PUBLIC_CLOUD_LOGIN, TENANT_ID, CLIENT_ID, "https://deals.example.com/admin/consented", "s1"
    )

    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "login.microsoftonline.com")
    assert parts.path == f"/{TENANT_ID}/v2.0/adminconsent"
    assert parse_qs(parts.query, strict_parsing=True) == {
        "client_id": [CLIENT_ID],
        "scope": ["https://graph.microsoft.com/.default"],
        "redirect_uri": ["https://deals.example.com/admin/consented"],
        "state": ["s1"],
    }


def test_consent_url_keeps_a_redirect_uri_query_inside_its_parameter() -> None:
    url = admin_consent_url(
        "https://login.microsoftonline.com/",
        "contoso.onmicrosoft.com",
        CLIENT_ID,
        "https://deals.example.com/consented?next=/admin&x=1",
        "a b&c",
    )

    parts = urlsplit(url)
    query = parse_qs(parts.query, strict_parsing=True)
    assert parts.path == "/contoso.onmicrosoft.com/v2.0/adminconsent"
    assert query["redirect_uri"] == ["https://deals.example.com/consented?next=/admin&x=1"]
    assert query["state"] == ["a b&c"]
    assert set(query) == {"client_id", "scope", "redirect_uri", "state"}


def test_consent_url_works_against_the_sandbox_login() -> None:
    url = admin_consent_url(
        "http://127.0.0.1:5001", "organizations", CLIENT_ID, "http://127.0.0.1:5000/cb", "s"
    )

    assert url.startswith("http://127.0.0.1:5001/organizations/v2.0/adminconsent?")
    assert parse_qs(urlsplit(url).query)["scope"] == [GRAPH_DEFAULT_SCOPE]


@pytest.mark.parametrize(
    ("login", "tenant", "client", "redirect", "complaint"),
    [
        (PUBLIC_CLOUD_LOGIN, TENANT_ID, "not-a-guid", "https://x.example.com/cb", "client_id"),
        (PUBLIC_CLOUD_LOGIN, "", CLIENT_ID, "https://x.example.com/cb", "tenant_id"),
        (PUBLIC_CLOUD_LOGIN, "a/b", CLIENT_ID, "https://x.example.com/cb", "tenant_id"),
        (PUBLIC_CLOUD_LOGIN, TENANT_ID, CLIENT_ID, "/cb", "redirect_uri"),
        ("login.microsoftonline.com", TENANT_ID, CLIENT_ID, "https://x.example.com/cb", "login"),
    ],
)
def test_consent_url_refuses_values_that_cannot_make_a_working_link(
    login: str, tenant: str, client: str, redirect: str, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        admin_consent_url(login, tenant, client, redirect, "s")
