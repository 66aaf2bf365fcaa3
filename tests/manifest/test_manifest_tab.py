"""The "My deals" personal tab in the manifest: a static tab under the public URL, and the
single sign-on resource the tab's token is for (the schema check is test_manifest_schema's)."""

from __future__ import annotations

from manifest import build_manifest

from .manifest_samples import CLIENT_ID, minimal


def test_my_deals_is_a_personal_static_tab_under_the_public_url() -> None:
    manifest = build_manifest(minimal(public_url="https://dealbridge.contoso.com/"))

    [tab] = manifest["staticTabs"]
    assert tab["name"] == "My deals"
    assert tab["scopes"] == ["personal"]
    assert tab["contentUrl"] == "https://dealbridge.contoso.com/teams/tab/my-deals"
    assert tab["websiteUrl"] == tab["contentUrl"]


def test_the_tab_signs_in_for_the_public_host_and_client_id() -> None:
    manifest = build_manifest(minimal(public_url="https://dealbridge.contoso.com:8443"))

    assert manifest["webApplicationInfo"] == {
        "id": CLIENT_ID,
        "resource": f"api://dealbridge.contoso.com:8443/{CLIENT_ID}",
    }
    assert "dealbridge.contoso.com:8443" in manifest["validDomains"]
