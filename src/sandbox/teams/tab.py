"""Teams' side of a personal tab: single sign-on tokens for the simulated users, and a page that
hosts a tab in an iframe the way the Teams web client does.

- ``POST /_sandbox/teams/{user}/sso-token`` ``{"resource": "api://host/client-id"}``: what
  Entra gives Teams for ``authentication.getAuthToken``: a v2.0 access token for the user with
  ``aud`` = the resource (the manifest's ``webApplicationInfo.resource``), ``iss``
  ``{login}/{tenant}/v2.0``, ``tid``, ``oid``, ``preferred_username``, ``name``,
  ``scp: access_as_user``, signed with the tenant's key (its ``jwks_uri``). For tests that
  need a bad token: ``tenant`` (another ``tid`` and issuer), ``lifetimeSeconds`` (negative:
  expired), ``forged`` (signed with a key the tenant does not publish), ``scope``.
- ``GET /teams/tab/{user}?url=...&resource=...``: the host page. It frames ``url`` and answers
  the tab's Teams JS SDK messages (``window.parent.postMessage``: ``{id, func, args}``, answered
  ``{id, args}``): ``initialize`` with a content frame context, ``getContext`` with the user and
  tenant, ``authentication.getAuthToken`` with a token from the route above (``[true, token]``,
  or ``[false, reason]``), anything else with ``[]``.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Blueprint, Response, jsonify, render_template, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from sandbox.tenant import Tenant

TEAMS_WEB_CLIENT_ID = "5e3ce6c0-2b1f-4285-8d4b-75ee78787346"
"""The Teams web client's app id: the ``azp`` of the tokens it gets for a tab."""


class SsoTokenInput(BaseModel):
    """`POST /_sandbox/teams/{user}/sso-token`."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    resource: str = Field(min_length=1, max_length=2048)
    tenant: str | None = None
    """Issue it as another tenant would (its ``tid`` and issuer)."""
    lifetime_seconds: int = Field(default=3600, ge=-86_400, le=86_400)
    forged: bool = False
    """Signed with a key the tenant does not publish."""
    scope: str = "access_as_user"


_FORGER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sso_token(tenant: Tenant, user_key: str, given: SsoTokenInput) -> str | None:
    """The user's tab token, or None when there is no such user."""
    with tenant.lock:
        user = tenant.directory.find(user_key)
    if user is None:
        return None
    authority = tenant.authority
    tid = (given.tenant or authority.tenant_id).lower()
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "aud": given.resource,
        "iss": f"{authority.login_base}/{tid}/v2.0",
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=given.lifetime_seconds)).timestamp()),
        "aio": secrets.token_urlsafe(24),
        "azp": TEAMS_WEB_CLIENT_ID,
        "azpacr": "0",
        "name": user.display_name,
        "oid": user.id,
        "preferred_username": user.user_principal_name,
        "rh": secrets.token_urlsafe(16),
        "scp": given.scope,
        "sub": secrets.token_urlsafe(24),
        "tid": tid,
        "uti": secrets.token_urlsafe(16),
        "ver": "2.0",
    }
    if given.forged:
        headers = {"typ": "JWT", "kid": authority.kid, "x5t": authority.kid}
        return jwt.encode(claims, _FORGER, algorithm="RS256", headers=headers)
    return authority.sign_claims(claims)


def create_blueprint(tenant: Tenant) -> Blueprint:
    blueprint = Blueprint("teams_tab", __name__, template_folder="templates")

    @blueprint.post("/_sandbox/teams/<key>/sso-token")
    def issue(key: str) -> tuple[Response, int]:
        try:
            given = SsoTokenInput.model_validate(request.get_json(silent=True) or {})
        except ValidationError as e:
            problems = [
                {"field": ".".join(map(str, d["loc"])), "message": d["msg"]} for d in e.errors()
            ]
            return jsonify({"error": "invalid_request", "problems": problems}), 400
        token = sso_token(tenant, key, given)
        if token is None:
            return jsonify({"error": "user_not_found", "message": f"No user '{key}'."}), 404
        return jsonify({"token": token, "tokenType": "Bearer"}), 200

    @blueprint.get("/teams/tab/<key>")
    def host(key: str) -> tuple[str, int]:
        with tenant.lock:
            user = tenant.directory.find(key)
        if user is None:
            return f"No user '{key}' in the tenant.", 404
        return (
            render_template(
                "tab_host.html",
                user=user,
                user_key=key,
                tenant_id=tenant.authority.tenant_id,
                url=request.args.get("url", ""),
                resource=request.args.get("resource", ""),
                session_id=str(uuid.uuid4()),
            ),
            200,
        )

    return blueprint
