"""Entra's device-code sign-in for the sandbox tenant: a user signs in "on another device" and
the client gets a delegated token (`scp`), as v2-oauth2-device-code.md describes.

- `POST /{tenant}/oauth2/v2.0/devicecode` (`client_id`, `scope`) → `device_code`, `user_code`,
  `verification_uri`, `expires_in` (900), `interval` (5), `message`.
- `POST /{tenant}/oauth2/v2.0/token` with `grant_type=urn:ietf:params:oauth:grant-type:device_code`
  → 400 `authorization_pending` (AADSTS70016) until someone approves the code, then the tokens;
  `authorization_declined`, `expired_token` (AADSTS70019), `bad_verification_code` otherwise.
  Other grants go on to the client-credentials endpoint (`sandbox.identity`).

No browser here: the control API approves a code, `POST /_sandbox/devicecode/approve
{"userCode", "userPrincipalName"?, "admin"?}`, or `PATCH /_sandbox/devicecode {"autoApprove":
true}` approves every code at the first poll. `GET /_sandbox/devicecode` lists the sign-ins.

Access tokens are v1 Graph tokens like Entra's for a user: `scp` (the Graph scopes asked for),
`upn`, `oid`, `appid`, `idtyp: user`, and `wids` (Global Administrator's role template) when the
user is an admin. A refresh token is returned with `offline_access`, but not redeemable.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from flask import Blueprint, Flask, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from sandbox.authority import TokenRequestError
from sandbox.grants import (
    answer_grant,
    b64url,
    log_token_request,
    split_scopes,
    token_error,
    token_json,
    unknown_tenant,
    user_tokens,
)

if TYPE_CHECKING:
    from sandbox.tenant import Tenant

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
VERIFICATION_URI = "https://microsoft.com/devicelogin"
#: Directory role template ids that `wids` carries (Entra built-in roles reference).
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
TEAMS_ADMINISTRATOR = "69091246-20e8-4a56-aa4d-066075b2a7a8"
MEMBER_ROLE = "b79fbf4d-3ef9-4689-8143-76b194e85509"
ADMIN_ROLES = frozenset({GLOBAL_ADMINISTRATOR, TEAMS_ADMINISTRATOR})
# Entra's user codes are 9 characters of upper-case letters and digits.
_USER_CODE_ALPHABET = string.ascii_uppercase + string.digits
EXTENSION = "sandbox.device_code"


class SignInSettings(BaseModel):
    """`PATCH /_sandbox/devicecode`: how codes are approved and timed; reset restores them."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    auto_approve: bool = False
    """Approve every code at its first poll, as `user_principal_name`."""
    user_principal_name: str | None = None
    """Who signs in when a code is approved without naming a user; default `admin@{domain}`."""
    admin: bool = True
    """Whether that user is a Global Administrator (`wids`)."""
    interval: int = Field(default=5, ge=0, le=60)
    """Seconds a client must wait between polls (Entra says 5)."""
    expires_in: int = Field(default=900, ge=0)
    """Seconds a code lives (Entra: 15 minutes); 0 makes codes expire at once (tests)."""


class Approval(BaseModel):
    """`POST /_sandbox/devicecode/approve` (and `/decline`, which reads only `userCode`)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    user_code: str
    user_principal_name: str | None = None
    """Who signs in; default the settings' user."""
    admin: bool | None = None
    """Whether the user is a Global Administrator; default the settings' choice."""


@dataclass
class SignIn:
    """One device-code sign-in, from the code to the token."""

    device_code: str
    user_code: str
    client_id: str
    tenant: str
    scopes: tuple[str, ...]
    """Graph scopes asked for, short names (`AppCatalog.Submit`)."""
    reserved: tuple[str, ...]
    """OpenID scopes asked for (`openid`, `profile`, `offline_access`)."""
    expires_at: float
    state: Literal["pending", "approved", "declined"] = "pending"
    user_principal_name: str | None = None
    admin: bool = False

    def to_json(self) -> dict[str, Any]:
        """How the control API shows it (never the device code: that is the client's secret)."""
        return {
            "userCode": self.user_code,
            "clientId": self.client_id,
            "scopes": list(self.scopes),
            "state": self.state,
            "userPrincipalName": self.user_principal_name,
            "expired": time.time() >= self.expires_at,
        }


@dataclass
class DeviceSignIns:
    """The tenant's pending and finished device-code sign-ins, behind their own lock."""

    settings: SignInSettings = field(default_factory=SignInSettings)
    by_device_code: dict[str, SignIn] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """No sign-ins; settings back to their defaults."""
        with self.lock:
            self.settings = SignInSettings()
            self.by_device_code.clear()

    def by_user_code(self, user_code: str) -> SignIn | None:
        """The sign-in a user code names (case and dashes ignored, as the sign-in page does)."""
        wanted = user_code.replace("-", "").strip().upper()
        for sign_in in self.by_device_code.values():
            if sign_in.user_code == wanted:
                return sign_in
        return None


def _graph_scopes(scope: str, tenant_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(Graph scopes, OpenID scopes) of a `scope` parameter; refuses other resources."""
    graph, reserved = split_scopes(scope, tenant_named=tenant_id)
    if not graph:
        raise TokenRequestError(
            400,
            "invalid_scope",
            70011,
            "The provided request must include a 'scope' input parameter naming a resource "
            "permission.",
        )
    return graph, reserved


def _user_identity(tenant: Tenant, upn: str) -> tuple[str, str]:
    """(object id, display name) of the user signing in; made up when not in the directory."""
    with tenant.lock:
        user = tenant.directory.find(upn)
    if user is not None:
        return user.id, user.display_name
    return str(uuid.uuid5(uuid.UUID(tenant.tenant_id), upn.lower())), upn.split("@")[0].title()


def _tokens(tenant: Tenant, sign_in: SignIn, want_client_info: bool) -> dict[str, Any]:
    """Entra's answer for a redeemed code, with the claims of a Graph token of a device-code
    sign-in (`wids` for an admin)."""
    upn = sign_in.user_principal_name or f"admin@{tenant.config.domain}"
    oid, name = _user_identity(tenant, upn)
    wids = [MEMBER_ROLE] + ([GLOBAL_ADMINISTRATOR] if sign_in.admin else [])
    return user_tokens(
        tenant.authority,
        client_id=sign_in.client_id,
        upn=upn,
        oid=oid,
        name=name,
        scopes=sign_in.scopes,
        reserved=sign_in.reserved,
        want_client_info=want_client_info,
        access_claims={
            "app_displayname": "DealBridge",
            "appidacr": "0",
            "unique_name": upn,
            "uti": b64url(secrets.token_bytes(16)),
            "wids": wids,
        },
        id_claims={},
    )


def _redeem(tenant: Tenant, sign_ins: DeviceSignIns, tenant_name: str) -> Response:
    """The device-code grant at the token endpoint."""
    form = request.form
    device_code = form.get("device_code") or form.get("code") or ""
    with sign_ins.lock:
        sign_in = sign_ins.by_device_code.get(device_code)
        settings = sign_ins.settings
        if sign_in is None or not tenant.authority.knows_tenant(tenant_name):
            raise TokenRequestError(
                400,
                "bad_verification_code",
                70000,
                "The provided device code was not recognized.",
            )
        if sign_in.client_id.lower() != form.get("client_id", "").lower():
            raise TokenRequestError(
                400,
                "invalid_grant",
                70000,
                "The client_id does not match the one the device code was issued to.",
            )
        if time.time() >= sign_in.expires_at:
            del sign_ins.by_device_code[device_code]
            raise TokenRequestError(
                400, "expired_token", 70019, "Verification code expired. Sign in again."
            )
        if sign_in.state == "pending" and settings.auto_approve:
            sign_in.state = "approved"
            sign_in.user_principal_name = settings.user_principal_name
            sign_in.admin = settings.admin
        if sign_in.state == "declined":
            del sign_ins.by_device_code[device_code]
            raise TokenRequestError(
                400,
                "authorization_declined",
                65004,
                "User declined to consent to access the app.",
            )
        if sign_in.state == "pending":
            raise TokenRequestError(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        # A device code is redeemed once.
        del sign_ins.by_device_code[device_code]
    return token_json(_tokens(tenant, sign_in, form.get("client_info") == "1"))


def _start(tenant: Tenant, sign_ins: DeviceSignIns, tenant_name: str) -> Response:
    """`/devicecode`: a new sign-in for the client and scopes."""
    authority = tenant.authority
    if not authority.knows_tenant(tenant_name):
        raise unknown_tenant(tenant_name)
    client_id = request.form.get("client_id", "")
    if client_id.lower() != authority.client_id.lower():
        raise TokenRequestError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{authority.tenant_id}'.",
        )
    scopes, reserved = _graph_scopes(request.form.get("scope", ""), authority.tenant_id)
    user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))
    device_code = b64url(secrets.token_bytes(64))
    with sign_ins.lock:
        settings = sign_ins.settings
        sign_ins.by_device_code[device_code] = SignIn(
            device_code=device_code,
            user_code=user_code,
            client_id=client_id,
            tenant=tenant_name,
            scopes=scopes,
            reserved=reserved,
            expires_at=time.time() + settings.expires_in,
        )
    return token_json(
        {
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": VERIFICATION_URI,
            "expires_in": settings.expires_in,
            "interval": settings.interval,
            "message": f"To sign in, use a web browser to open the page {VERIFICATION_URI} "
            f"and enter the code {user_code} to authenticate.",
        }
    )


def sign_ins_of(app: Flask) -> DeviceSignIns:
    """The device-code sign-ins an app's tenant keeps."""
    sign_ins: DeviceSignIns = app.extensions[EXTENSION]
    return sign_ins


def create_blueprint(tenant: Tenant) -> Blueprint:
    """`/devicecode`, the device-code grant at `/token`, and the control routes to approve."""
    blueprint = Blueprint("device_code", __name__)
    sign_ins = DeviceSignIns()

    @blueprint.record_once
    def _keep(state: Any) -> None:
        state.app.extensions[EXTENSION] = sign_ins

    @blueprint.post("/<tenant_name>/oauth2/v2.0/devicecode")
    def device_code(tenant_name: str) -> Response:
        try:
            answer = _start(tenant, sign_ins, tenant_name)
        except TokenRequestError as e:
            answer = token_error(e)
        route = "/{tenant}/oauth2/v2.0/devicecode"
        log_token_request(tenant, route, answer.status_code, method="POST")
        return answer

    answer_grant(
        blueprint,
        tenant,
        DEVICE_CODE_GRANT,
        lambda tenant_name: _redeem(tenant, sign_ins, tenant_name),
        reset=sign_ins.reset,
        logged_method="POST",
    )

    @blueprint.get("/_sandbox/devicecode")
    def list_sign_ins() -> Response:
        with sign_ins.lock:
            return jsonify(
                {
                    "settings": sign_ins.settings.model_dump(by_alias=True),
                    "value": [s.to_json() for s in sign_ins.by_device_code.values()],
                }
            )

    @blueprint.patch("/_sandbox/devicecode")
    def change_settings() -> tuple[Response, int]:
        changes = request.get_json(force=True)
        if not isinstance(changes, dict):
            return _control_error(400, "Send a JSON object of settings to change.")
        with sign_ins.lock:
            merged = sign_ins.settings.model_dump(by_alias=True) | changes
            try:
                sign_ins.settings = SignInSettings.model_validate(merged)
            except ValidationError as e:
                return _control_error(400, str(e.errors()[0]["msg"]))
            return jsonify(sign_ins.settings.model_dump(by_alias=True)), 200

    def _decide(approve: bool) -> tuple[Response, int]:
        try:
            given = Approval.model_validate(request.get_json(force=True))
        except ValidationError as e:
            return _control_error(400, str(e.errors()[0]["msg"]))
        with sign_ins.lock:
            sign_in = sign_ins.by_user_code(given.user_code)
            if sign_in is None:
                return _control_error(404, f"No pending sign-in with code '{given.user_code}'.")
            if approve:
                settings = sign_ins.settings
                sign_in.state = "approved"
                sign_in.user_principal_name = (
                    given.user_principal_name or settings.user_principal_name
                )
                sign_in.admin = settings.admin if given.admin is None else given.admin
            else:
                sign_in.state = "declined"
            return jsonify(sign_in.to_json()), 200

    @blueprint.post("/_sandbox/devicecode/approve")
    def approve() -> tuple[Response, int]:
        return _decide(approve=True)

    @blueprint.post("/_sandbox/devicecode/decline")
    def decline() -> tuple[Response, int]:
        return _decide(approve=False)

    return blueprint


def _control_error(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"error": {"code": "SandboxControlError", "message": message}}), status
