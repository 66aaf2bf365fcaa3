"""What the sandbox's grants at Entra's token endpoint share: answers, the request log, scopes,
and the tokens a user's sign-in ends with.

`sandbox.identity` owns `/{tenant}/oauth2/v2.0/token` and its client-credentials grant; the
user sign-ins (`sandbox.auth_code`, `sandbox.device_code`) each answer their own grant there
through `answer_grant`.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from sandbox.authority import GRAPH_AUDIENCE, GRAPH_RESOURCES, TokenRequestError, token_error_body
from sandbox.request_log import LoggedRequest

if TYPE_CHECKING:
    from sandbox.authority import Authority
    from sandbox.tenant import Tenant

TOKEN_ROUTE = "/{tenant}/oauth2/v2.0/token"
RESERVED_SCOPES = ("openid", "profile", "offline_access", "email")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def token_json(body: dict[str, Any], status: int = 200) -> Response:
    """A JSON answer of Entra's endpoints: never cached."""
    answer = Response(
        json.dumps(body), status=status, content_type="application/json; charset=utf-8"
    )
    answer.headers["Cache-Control"] = "no-store, no-cache"
    return answer


def token_error(error: TokenRequestError) -> Response:
    return token_json(token_error_body(error, datetime.now(UTC)), error.status)


def unknown_tenant(name: str) -> TokenRequestError:
    return TokenRequestError(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud.",
    )


def log_token_request(tenant: Tenant, route: str, status: int, *, method: str | None) -> None:
    """Put a request to one of Entra's endpoints in the tenant's log, as `method` (None: the
    request's own)."""
    tenant.log.record(
        LoggedRequest(
            time=datetime.now(UTC).isoformat(),
            method=request.method if method is None else method,
            path=request.path,
            route=route,
            status=status,
            mailbox=None,
            in_batch=False,
        )
    )


def answer_grant(
    blueprint: Blueprint,
    tenant: Tenant,
    grant_type: str,
    redeem: Callable[[str], Response],
    *,
    reset: Callable[[], None],
    logged_method: str | None,
) -> None:
    """Answer `grant_type` at `sandbox.identity`'s token endpoint with `redeem(tenant name)`,
    its TokenRequestError as Entra's error; `reset` when the tenant is reset."""

    @blueprint.before_app_request
    def grant() -> Response | None:
        # The token endpoint belongs to sandbox.identity; only this grant is answered here.
        if request.endpoint == "control.reset":
            reset()
            return None
        if request.endpoint != "identity.token":
            return None
        if request.form.get("grant_type") != grant_type:
            return None
        tenant_name = str((request.view_args or {}).get("tenant_name", ""))
        try:
            answer = redeem(tenant_name)
        except TokenRequestError as e:
            answer = token_error(e)
        log_token_request(tenant, TOKEN_ROUTE, answer.status_code, method=logged_method)
        return answer


def split_scopes(
    scope: str, tenant_named: str | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(Graph scopes, OpenID scopes) of a `scope` parameter, each once; refuses other resources
    (naming `tenant_named` in the error when given)."""
    graph: list[str] = []
    reserved: list[str] = []
    for item in scope.split():
        if item.lower() in RESERVED_SCOPES:
            reserved.append(item.lower())
            continue
        resource, _, name = item.rpartition("/")
        if resource and resource.rstrip("/").lower() not in GRAPH_RESOURCES:
            where = f"the tenant named {tenant_named}" if tenant_named else "the tenant"
            raise TokenRequestError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in {where}.",
            )
        # A bare scope name means Microsoft Graph (permissions-consent-overview.md).
        graph.append(name)
    return tuple(dict.fromkeys(graph)), tuple(dict.fromkeys(reserved))


def user_tokens(
    authority: Authority,
    *,
    client_id: str,
    upn: str,
    oid: str,
    name: str,
    scopes: tuple[str, ...],
    reserved: tuple[str, ...],
    want_client_info: bool,
    access_claims: dict[str, Any],
    id_claims: dict[str, Any],
) -> dict[str, Any]:
    """Entra's answer to a user's grant: a v1 Graph access token (`scp`), and an id_token, a
    refresh token and client info as the OpenID scopes and MSAL's `client_info=1` ask.
    `access_claims` and `id_claims` are the flow's own, added to the claims both flows give."""
    now = datetime.now(UTC)
    lifetime = authority.token_lifetime
    issued, expires = int(now.timestamp()), int((now + timedelta(seconds=lifetime)).timestamp())
    access = {
        "aud": GRAPH_AUDIENCE,
        "iss": f"https://sts.windows.net/{authority.tenant_id}/",
        "iat": issued,
        "nbf": issued,
        "exp": expires,
        "appid": client_id,
        "idtyp": "user",
        "name": name,
        "oid": oid,
        "scp": " ".join(scopes),
        "sub": b64url(oid.encode()),
        "tid": authority.tenant_id,
        "upn": upn,
        "ver": "1.0",
    }
    answer: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": " ".join([f"https://graph.microsoft.com/{s}" for s in scopes] + list(reserved)),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": authority.sign_claims(access | access_claims),
    }
    if "openid" in reserved:
        identity = {
            "aud": client_id,
            "iss": f"{authority.login_base}/{authority.tenant_id}/v2.0",
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "name": name,
            "oid": oid,
            "preferred_username": upn,
            "sub": b64url(f"{oid}:{client_id}".encode()),
            "tid": authority.tenant_id,
            "ver": "2.0",
        }
        answer["id_token"] = authority.sign_claims(identity | id_claims)
    if "offline_access" in reserved:
        answer["refresh_token"] = b64url(secrets.token_bytes(48))
    if want_client_info:
        info = json.dumps({"uid": oid, "utid": authority.tenant_id}).encode()
        answer["client_info"] = b64url(info)
    return answer
