"""Entra ID's endpoints for the sandbox tenant: OpenID metadata, instance discovery, keys, token.

The keys and tokens themselves are `sandbox.authority`'s, state the tenant holds.

The metadata names Microsoft's own host (`login_authority_base`): clients keep the real
authority string and route its host to the sandbox (MSAL refuses `http://` authorities).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flask import Blueprint, Response, request

from sandbox.authority import TokenRequestError
from sandbox.faults import FaultRule
from sandbox.grants import TOKEN_ROUTE, log_token_request, token_error, token_json, unknown_tenant

if TYPE_CHECKING:
    from sandbox.tenant import Tenant


def create_blueprint(tenant: Tenant) -> Blueprint:
    """Entra's endpoints for the tenant: metadata, instance discovery, keys, token."""
    blueprint = Blueprint("identity", __name__)
    authority = tenant.authority

    def refuse_tenant(name: str) -> Response:
        return token_error(unknown_tenant(name))

    @blueprint.get("/<tenant_name>/v2.0/.well-known/openid-configuration")
    def openid_configuration(tenant_name: str) -> Response:
        if not authority.knows_tenant(tenant_name):
            return refuse_tenant(tenant_name)
        return token_json(authority.openid_configuration())

    @blueprint.get("/common/discovery/instance")
    def instance_discovery() -> Response:
        return token_json(authority.instance_discovery(request.args.get("authorization_endpoint")))

    @blueprint.get("/<tenant_name>/discovery/v2.0/keys")
    def keys(tenant_name: str) -> Response:
        if tenant_name != "common" and not authority.knows_tenant(tenant_name):
            return refuse_tenant(tenant_name)
        return token_json(authority.jwks())

    @blueprint.post("/<tenant_name>/oauth2/v2.0/token")
    def token(tenant_name: str) -> Response:
        line = f"POST {request.full_path.rstrip('?')}"
        with tenant.lock:
            fault = tenant.faults.draw(line)
            roles = tenant.settings.roles
        status = 200
        try:
            if fault is not None:
                raise _fault_as_token_error(fault, tenant.settings.fault_timeout_seconds)
            if not authority.knows_tenant(tenant_name):
                raise unknown_tenant(tenant_name)  # answered and logged with its status below
            basic = None
            if request.authorization and request.authorization.type == "basic":
                basic = (request.authorization.username or "", request.authorization.password or "")
            issued = authority.issue(request.form.to_dict(), basic, roles)
            return token_json(
                {
                    "token_type": "Bearer",
                    "expires_in": issued.expires_in,
                    "ext_expires_in": issued.expires_in,
                    "access_token": issued.access_token,
                }
            )
        except TokenRequestError as e:
            status = e.status
            answer = token_error(e)
            if fault is not None and fault.retry_after is not None:
                answer.headers["Retry-After"] = str(int(fault.retry_after))
            return answer
        finally:
            log_token_request(tenant, TOKEN_ROUTE, status, method="POST")

    return blueprint


def _fault_as_token_error(fault: FaultRule, default_timeout: float) -> TokenRequestError:
    if fault.status == "timeout":
        time.sleep(fault.timeout_seconds if fault.timeout_seconds is not None else default_timeout)
        return TokenRequestError(
            504,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
        )
    graph_only = ("unreadable", "incomplete")  # Graph pages only
    status = 500 if fault.status in graph_only else int(fault.status)
    return TokenRequestError(
        status,
        "temporarily_unavailable",
        90033 if status != 429 else 50196,
        "A transient error has occurred. Please try again.",
    )
