"""The org app catalog and the device-code sign-in, against the sandbox tenant."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from graph_sync.auth import TokenProvider
from graph_sync.catalog import (
    AlreadyInCatalog,
    AppCatalog,
    NotAPackage,
    PublishingState,
    VersionNotHigher,
    publish_package,
)
from graph_sync.device_code import (
    DeviceCodeError,
    DeviceCodePrompt,
    SignedInUser,
    sign_in_with_device_code,
)
from graph_sync.errors import Forbidden, GraphError
from manifest import PackageConfig, package_bytes
from sandbox.server import RunningSandbox

from .conftest import Control

TEAMS_APP_ID = "3a7d9c1e-5b2f-4e6a-9c8d-1f2e3d4c5b6a"


def _package(sandbox: RunningSandbox, version: str = "1.0.0") -> bytes:
    return package_bytes(
        PackageConfig(
            teams_app_id=TEAMS_APP_ID,
            client_id=sandbox.client_id,
            public_url="https://deals.contoso.example",
            app_version=version,
        )
    )


def _sign_ins(control: Control, **changes: Any) -> None:
    answer = control.http.patch(f"{control.base_url}/_sandbox/devicecode", json=changes, timeout=10)
    assert answer.status_code == 200, answer.text


def _sign_in(sandbox: RunningSandbox, **kwargs: Any) -> SignedInUser:
    return sign_in_with_device_code(
        sandbox.tenant_id,
        sandbox.client_id,
        login_base_url=sandbox.base_url,
        show=kwargs.pop("show", lambda prompt: None),
        **kwargs,
    )


@pytest.fixture
def admin(sandbox: RunningSandbox, control: Control) -> SignedInUser:
    _sign_ins(control, autoApprove=True, userPrincipalName=f"admin@{sandbox.domain}")
    return _sign_in(sandbox)


@pytest.fixture
def catalog(sandbox: RunningSandbox, admin: SignedInUser) -> Iterator[AppCatalog]:
    with AppCatalog(admin.access_token, sandbox.base_url) as catalog:
        yield catalog


# ---- device code ----------------------------------------------------------------------------


def test_the_prompt_shows_the_code_the_admin_approves_and_the_token_speaks_for_them(
    sandbox: RunningSandbox, control: Control
) -> None:
    shown: list[DeviceCodePrompt] = []

    def approve(prompt: DeviceCodePrompt) -> None:
        shown.append(prompt)
        answer = control.post(
            "/devicecode/approve",
            {"userCode": prompt.user_code, "userPrincipalName": f"lee@{sandbox.domain}"},
        )
        assert answer.status_code == 200, answer.text

    user = _sign_in(sandbox, show=approve)

    assert shown[0].verification_uri == "https://microsoft.com/devicelogin"
    assert shown[0].user_code in shown[0].message
    assert user.username == f"lee@{sandbox.domain}"
    assert "https://graph.microsoft.com/AppCatalog.Submit" in user.scopes
    assert user.access_token.get_secret_value() not in repr(user)


def test_a_declined_sign_in_raises_with_advice_to_run_again(
    sandbox: RunningSandbox, control: Control
) -> None:
    def decline(prompt: DeviceCodePrompt) -> None:
        assert control.post("/devicecode/decline", {"userCode": prompt.user_code}).ok

    with pytest.raises(DeviceCodeError) as caught:
        _sign_in(sandbox, show=decline)

    assert caught.value.code == "authorization_declined"
    assert "declined" in caught.value.advice


def test_nobody_signing_in_before_the_deadline_ends_the_wait(
    sandbox: RunningSandbox, control: Control
) -> None:
    with pytest.raises(DeviceCodeError) as caught:
        _sign_in(sandbox, timeout=0)

    assert caught.value.code == "authorization_pending"
    assert "Run the command again" in caught.value.advice


def test_an_unknown_app_gets_entras_advice(sandbox: RunningSandbox, control: Control) -> None:
    with pytest.raises(DeviceCodeError) as caught:
        sign_in_with_device_code(
            sandbox.tenant_id,
            "00000000-0000-0000-0000-0000000000aa",
            login_base_url=sandbox.base_url,
            show=lambda prompt: None,
        )

    assert caught.value.aadsts == 700016
    assert "DEALBRIDGE_CLIENT_ID" in caught.value.advice


# ---- the catalog ----------------------------------------------------------------------------


def test_a_new_app_is_published_and_found_by_its_manifest_id(
    sandbox: RunningSandbox, catalog: AppCatalog
) -> None:
    assert catalog.find(TEAMS_APP_ID) is None

    outcome = publish_package(catalog, _package(sandbox))

    assert (outcome.created, outcome.publishing_state, outcome.version) == (
        True,
        "published",
        "1.0.0",
    )
    found = catalog.find(TEAMS_APP_ID)
    assert found is not None
    assert found.id == outcome.app_id
    assert found.latest_version == "1.0.0"


def test_an_app_already_in_the_catalog_is_updated_only_when_asked_and_with_a_higher_version(
    sandbox: RunningSandbox, control: Control, catalog: AppCatalog
) -> None:
    first = publish_package(catalog, _package(sandbox))

    with pytest.raises(AlreadyInCatalog) as exists:
        publish_package(catalog, _package(sandbox, "1.0.1"))
    with pytest.raises(VersionNotHigher):
        publish_package(catalog, _package(sandbox, "1.0.0"), update=True)
    updated = publish_package(catalog, _package(sandbox, "1.0.1"), update=True)

    assert exists.value.app.id == first.app_id
    assert (updated.created, updated.app_id) == (False, first.app_id)
    assert (updated.previous_version, updated.version) == ("1.0.0", "1.0.1")
    assert control.calls("POST /v1.0/appCatalogs/teamsApps/{app}/appDefinitions") == 1
    found = catalog.find(TEAMS_APP_ID)
    assert found is not None
    assert found.latest_version == "1.0.1"


def test_a_non_admin_submits_for_review(sandbox: RunningSandbox, control: Control) -> None:
    _sign_ins(control, autoApprove=True, admin=False)
    with AppCatalog(_sign_in(sandbox).access_token, sandbox.base_url) as catalog:
        with pytest.raises(Forbidden):
            publish_package(catalog, _package(sandbox))
        outcome = publish_package(catalog, _package(sandbox), requires_review=True)

    assert outcome.publishing_state is PublishingState.SUBMITTED


def test_an_app_only_token_is_forbidden_and_names_the_delegated_permission(
    sandbox: RunningSandbox, control: Control, credentials: Any
) -> None:
    app_token = TokenProvider(credentials).token()
    with (
        AppCatalog(SecretStr(app_token), sandbox.base_url) as catalog,
        pytest.raises(Forbidden) as caught,
    ):
        publish_package(catalog, _package(sandbox))

    assert caught.value.permission == "AppCatalog.Submit"


def test_a_throttled_upload_is_sent_again_after_retry_after(
    sandbox: RunningSandbox, control: Control, catalog: AppCatalog
) -> None:
    control.fault(route=r"^POST /v1\.0/appCatalogs/teamsApps", status=429, retryAfter=0.01, count=1)

    outcome = publish_package(catalog, _package(sandbox))

    assert outcome.created
    assert control.calls("POST /v1.0/appCatalogs/teamsApps") == 2
    assert control.served()["byStatus"].get("201") == 1


def test_an_upload_answered_503_is_not_sent_again_as_it_may_have_happened(
    sandbox: RunningSandbox, control: Control, catalog: AppCatalog
) -> None:
    control.fault(route=r"^POST /v1\.0/appCatalogs/teamsApps", status=503, retryAfter=0.01, count=1)

    with pytest.raises(GraphError) as caught:
        publish_package(catalog, _package(sandbox))

    assert caught.value.status == 503
    assert control.calls("POST /v1.0/appCatalogs/teamsApps") == 1


def test_a_catalog_lookup_answered_503_is_sent_again(
    sandbox: RunningSandbox, control: Control, catalog: AppCatalog
) -> None:
    control.fault(route=r"^GET /v1\.0/appCatalogs/teamsApps", status=503, retryAfter=0.01, count=1)

    assert catalog.find(TEAMS_APP_ID) is None
    assert control.calls("GET /v1.0/appCatalogs/teamsApps") == 2


def test_a_package_graph_refuses_raises_with_graphs_reason(
    sandbox: RunningSandbox, catalog: AppCatalog
) -> None:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        manifest = {
            "id": TEAMS_APP_ID,
            "version": "1.0.0",
            "name": {"short": "DealBridge"},
            "icons": {"color": "color.png", "outline": "outline.png"},
        }
        archive.writestr("manifest.json", json.dumps(manifest))
        archive.writestr("color.png", b"not a png")

    with pytest.raises(GraphError) as caught:
        publish_package(catalog, buffer.getvalue())

    assert caught.value.status == 400
    assert "icons.color" in caught.value.message
    assert "icons.outline" in caught.value.message


def test_bytes_that_are_not_a_package_are_refused_before_any_call(
    sandbox: RunningSandbox, control: Control, catalog: AppCatalog
) -> None:
    control.forget_requests()

    with pytest.raises(NotAPackage):
        publish_package(catalog, b"PK not really")

    assert control.served()["total"] == 0


def test_the_catalog_refuses_a_plain_http_graph_outside_this_machine() -> None:
    with pytest.raises(ValueError, match="https"):
        AppCatalog(SecretStr("t"), "http://graph.example.com")
