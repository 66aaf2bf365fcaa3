"""Entra's authorization-code sign-in with PKCE for the sandbox (v2-oauth2-auth-code-flow.md).

- `GET /{tenant}/oauth2/v2.0/authorize` (`client_id`, `response_type=code`, `redirect_uri`,
  `scope`, `state`, `nonce`, `code_challenge`, `code_challenge_method=S256`): a sign-in page
  listing the tenant's users; choosing one (`POST` to the same address) sends the browser to
  `redirect_uri?code=...&state=...&session_state=...`. Errors after the redirect URI is known
  go back to it as `error`, `error_description` (with the AADSTS code), `state`, as Entra does.
- `POST /{tenant}/oauth2/v2.0/token` with `grant_type=authorization_code`: the client's secret,
  the code (once, 10 minutes), the same `redirect_uri`, and `code_verifier` whose S256 hash is
  the challenge (AADSTS501481 otherwise) → an access token for Graph (`scp`) and an id_token
  with `aud` (the client), `iss`, `oid`, `preferred_username`, `name`, `tid`, `nonce`, and
  `roles`: the app roles assigned to the user (Entra puts assigned app roles in the id_token).
  Other grants go on to the device-code and client-credentials handlers.

App roles are assigned through the control API: `POST /_sandbox/approles
{"userPrincipalName", "role"}`, `DELETE` the same body to unassign, `GET` to list; a reset
clears them. Redirect URIs are not registered in the sandbox: any absolute http(s) URL is taken.
"""

from __future__ import annotations

import hashlib
import html
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from sandbox.authority import TokenRequestError
from sandbox.grants import (
    answer_grant,
    b64url,
    log_token_request,
    split_scopes,
    token_json,
    user_tokens,
)

if TYPE_CHECKING:
    from sandbox.tenant import Tenant

AUTHORIZATION_CODE_GRANT = "authorization_code"
CODE_LIFETIME_SECONDS = 600  # Entra: authorization codes live about 10 minutes


class RoleAssignment(BaseModel):
    """`POST` / `DELETE /_sandbox/approles`: give (or take) an app role of the app to a user."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    user_principal_name: str
    role: str


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    scopes: tuple[str, ...]
    reserved: tuple[str, ...]
    upn: str
    expires_at: float


@dataclass
class CodeSignIns:
    """Codes not yet redeemed and the app roles assigned to users, behind their own lock."""

    codes: dict[str, _Code] = field(default_factory=dict)
    roles: dict[str, set[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.codes.clear()
            self.roles.clear()


def _scopes(scope: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    graph, reserved = split_scopes(scope)
    return graph or ("User.Read",), reserved


def _back(redirect_uri: str, params: dict[str, str]) -> Response:
    glue = "&" if "?" in redirect_uri else "?"
    return Response(status=302, headers={"Location": redirect_uri + glue + urlencode(params)})


def _error_back(redirect_uri: str, state: str | None, error: TokenRequestError) -> Response:
    params = {"error": error.error, "error_description": f"AADSTS{error.code}: {error.description}"}
    if state is not None:
        params["state"] = state
    return _back(redirect_uri, params)


def _error_page(error: TokenRequestError) -> Response:
    body = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Sign in</title></head>"
        f"<body><h1>Sorry, but we're having trouble signing you in.</h1><p>AADSTS{error.code}: "
        f"{html.escape(error.description)}</p></body></html>"
    )
    return Response(body, status=error.status, mimetype="text/html")


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Sign in to your account</title><style>body{{font:16px/1.5 system-ui,sans-serif;
max-width:440px;margin:3em auto;padding:0 1em}}button{{display:block;width:100%;text-align:left;
margin:.4em 0;padding:.6em;font:inherit;border:1px solid #bbb;background:#fff;cursor:pointer}}
button:hover{{background:#eef}}</style></head><body><h1>Pick an account</h1>
<p>{tenant} (sandbox): choose who signs in to <strong>{client}</strong>.</p>
<form method="post">{hidden}{users}</form></body></html>"""


def _sign_in_page(tenant: Tenant) -> Response:
    with tenant.lock:
        users = [(u.user_principal_name, u.display_name) for u in tenant.directory.all()]
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in request.args.items()
    )
    buttons = (
        "".join(
            f'<button name="login" value="{html.escape(upn)}">{html.escape(name)}<br>'
            f"<small>{html.escape(upn)}</small></button>"
            for upn, name in users
        )
        or "<p>No users in this tenant yet.</p>"
    )
    page = _PAGE.format(
        tenant=html.escape(tenant.config.organization_name),
        client="DealBridge",
        hidden=hidden,
        users=buttons,
    )
    return Response(page, mimetype="text/html")


def _authorize(tenant: Tenant, sign_ins: CodeSignIns, tenant_name: str) -> Response:
    authority = tenant.authority
    params = request.values
    if not authority.knows_tenant(tenant_name):
        return _error_page(
            TokenRequestError(400, "invalid_tenant", 90002, f"Tenant '{tenant_name}' not found.")
        )
    client_id = params.get("client_id", "")
    if client_id.lower() != authority.client_id.lower():
        return _error_page(
            TokenRequestError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{authority.tenant_id}'.",
            )
        )
    redirect_uri = params.get("redirect_uri", "")
    parts = urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return _error_page(
            TokenRequestError(
                400,
                "invalid_request",
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                "redirect URIs configured for the application.",
            )
        )
    state = params.get("state")
    if params.get("response_type") != "code":
        return _error_back(
            redirect_uri,
            state,
            TokenRequestError(
                400,
                "unsupported_response_type",
                700054,
                "response_type 'code' is the one this sandbox app is enabled for.",
            ),
        )
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if not challenge or method != "S256":
        return _error_back(
            redirect_uri,
            state,
            TokenRequestError(
                400,
                "invalid_request",
                501491,
                "Invalid size of Code_Challenge parameter, or code_challenge_method is not "
                "S256: the sandbox requires PKCE with S256.",
            ),
        )
    try:
        scopes, reserved = _scopes(params.get("scope", ""))
    except TokenRequestError as e:
        return _error_back(redirect_uri, state, e)
    if request.method == "GET":
        hint = params.get("login_hint")
        with tenant.lock:
            hinted = tenant.directory.find(hint) if hint else None
        if hinted is None:
            return _sign_in_page(tenant)
        upn = hinted.user_principal_name
    else:
        chosen = request.form.get("login", "")
        with tenant.lock:
            user = tenant.directory.find(chosen) if chosen else None
        if user is None:
            return _sign_in_page(tenant)
        upn = user.user_principal_name
    code = b64url(secrets.token_bytes(48))
    with sign_ins.lock:
        sign_ins.codes[code] = _Code(
            client_id=client_id,
            redirect_uri=redirect_uri,
            challenge=challenge,
            nonce=params.get("nonce"),
            scopes=scopes,
            reserved=reserved,
            upn=upn,
            expires_at=time.time() + CODE_LIFETIME_SECONDS,
        )
    answer = {"code": code, "session_state": str(uuid.uuid4())}
    if state is not None:
        answer["state"] = state
    return _back(redirect_uri, answer)


def _s256(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _redeem(tenant: Tenant, sign_ins: CodeSignIns, tenant_name: str) -> Response:
    authority = tenant.authority
    form = request.form
    client_id, secret = form.get("client_id", ""), form.get("client_secret")
    if request.authorization and request.authorization.type == "basic":
        client_id = request.authorization.username or ""
        secret = request.authorization.password
    if not authority.knows_tenant(tenant_name):
        raise TokenRequestError(400, "invalid_tenant", 90002, f"Tenant '{tenant_name}' not found.")
    authority.verify_client(client_id, secret)
    with sign_ins.lock:
        code = sign_ins.codes.pop(form.get("code", ""), None)
    if code is None or time.time() >= code.expires_at:
        raise TokenRequestError(
            400,
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity, "
            "or was already redeemed. Send a new interactive authorization request.",
        )
    if code.client_id.lower() != client_id.lower():
        raise TokenRequestError(
            400, "invalid_grant", 70000, "The code was issued to another application."
        )
    if form.get("redirect_uri", "") != code.redirect_uri:
        raise TokenRequestError(
            400,
            "invalid_grant",
            500117,
            "The reply uri specified in the request does not match the reply uri used in the "
            "authorization request.",
        )
    verifier = form.get("code_verifier", "")
    if not verifier or not secrets.compare_digest(_s256(verifier), code.challenge):
        raise TokenRequestError(
            400,
            "invalid_grant",
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization "
            "request.",
        )
    with sign_ins.lock:
        roles = sorted(sign_ins.roles.get(code.upn.lower(), set()))
    return token_json(_tokens(tenant, code, roles, form.get("client_info") == "1"))


def _tokens(
    tenant: Tenant, code: _Code, roles: list[str], want_client_info: bool
) -> dict[str, Any]:
    with tenant.lock:
        user = tenant.directory.find(code.upn)
    oid = user.id if user else str(uuid.uuid5(uuid.UUID(tenant.tenant_id), code.upn.lower()))
    name = user.display_name if user else code.upn.split("@")[0]
    id_claims: dict[str, Any] = {}
    if code.nonce is not None:
        id_claims["nonce"] = code.nonce
    if roles:
        id_claims["roles"] = roles
    return user_tokens(
        tenant.authority,
        client_id=code.client_id,
        upn=code.upn,
        oid=oid,
        name=name,
        scopes=code.scopes,
        reserved=code.reserved,
        want_client_info=want_client_info,
        access_claims={"appidacr": "1"},
        id_claims=id_claims,
    )


def create_blueprint(tenant: Tenant) -> Blueprint:
    """`/authorize` (the sign-in page), the code grant at `/token`, and `/_sandbox/approles`."""
    blueprint = Blueprint("auth_code", __name__)
    sign_ins = CodeSignIns()

    @blueprint.route("/<tenant_name>/oauth2/v2.0/authorize", methods=["GET", "POST"])
    def authorize(tenant_name: str) -> Response:
        answer = _authorize(tenant, sign_ins, tenant_name)
        log_token_request(
            tenant, "/{tenant}/oauth2/v2.0/authorize", answer.status_code, method=None
        )
        return answer

    answer_grant(
        blueprint,
        tenant,
        AUTHORIZATION_CODE_GRANT,
        lambda tenant_name: _redeem(tenant, sign_ins, tenant_name),
        reset=sign_ins.reset,
        logged_method=None,
    )

    def _assignment() -> RoleAssignment | tuple[Response, int]:
        try:
            return RoleAssignment.model_validate(request.get_json(force=True))
        except ValidationError as e:
            message = str(e.errors()[0]["msg"])
            return jsonify({"error": {"code": "SandboxControlError", "message": message}}), 400

    @blueprint.get("/_sandbox/approles")
    def list_roles() -> Response:
        with sign_ins.lock:
            return jsonify(
                {
                    "value": [
                        {"userPrincipalName": u, "roles": sorted(r)}
                        for u, r in sign_ins.roles.items()
                    ]
                }
            )

    @blueprint.post("/_sandbox/approles")
    def assign() -> tuple[Response, int]:
        given = _assignment()
        if not isinstance(given, RoleAssignment):
            return given
        with sign_ins.lock:
            sign_ins.roles.setdefault(given.user_principal_name.lower(), set()).add(given.role)
        return jsonify(given.model_dump(by_alias=True)), 201

    @blueprint.delete("/_sandbox/approles")
    def unassign() -> tuple[Response, int]:
        given = _assignment()
        if not isinstance(given, RoleAssignment):
            return given
        with sign_ins.lock:
            sign_ins.roles.get(given.user_principal_name.lower(), set()).discard(given.role)
        return jsonify(given.model_dump(by_alias=True)), 200

    return blueprint
