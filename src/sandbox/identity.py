"""Entra ID's endpoints for the sandbox tenant: OpenID metadata, instance discovery, keys, token.

The keys and tokens themselves are `sandbox.authority`'s, state the tenant holds.

The metadata names Microsoft's own host (`login_authority_base`): clients keep the real
authority string and route its host to the sandbox (MSAL refuses `http://` authorities).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from sandbox.authority import TokenRequestError, token_error_body
from sandbox.faults import FaultRule
from sandbox.request_log import LoggedRequest

if TYPE_CHECKING:
    from sandbox.tenant import Tenant


def create_blueprint(tenant: Tenant) -> Blueprint:
    """Entra's endpoints for the tenant: metadata, instance discovery, keys, token."""
    blueprint = Blueprint("identity", __name__)
    authority = tenant.authority

    def unknown_tenant(name: str) -> Response:
        error = TokenRequestError(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID and are "
            "signing into the correct cloud.",
        )
        return _json(token_error_body(error, datetime.now(UTC)), 400)

    @blueprint.get("/<tenant_name>/v2.0/.well-known/openid-configuration")
    def openid_configuration(tenant_name: str) -> Response:
        if not authority.knows_tenant(tenant_name):
            return unknown_tenant(tenant_name)
        return _json(authority.openid_configuration())

    @blueprint.get("/common/discovery/instance")
    def instance_discovery() -> Response:
        return _json(authority.instance_discovery(request.args.get("authorization_endpoint")))

    @blueprint.get("/<tenant_name>/discovery/v2.0/keys")
    def keys(tenant_name: str) -> Response:
        if tenant_name != "common" and not authority.knows_tenant(tenant_name):
            return unknown_tenant(tenant_name)
        return _json(authority.jwks())

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
                return unknown_tenant(tenant_name)
            basic = None
            if request.authorization and request.authorization.type == "basic":
                basic = (request.authorization.username or "", request.authorization.password or "")
            issued = authority.issue(request.form.to_dict(), basic, roles)
            return _json(
                {
                    "token_type": "Bearer",
                    "expires_in": issued.expires_in,
                    "ext_expires_in": issued.expires_in,
                    "access_token": issued.access_token,
                }
            )
        except TokenRequestError as e:
            status = e.status
            answer = _json(token_error_body(e, datetime.now(UTC)), e.status)
            if fault is not None and fault.retry_after is not None:
                answer.headers["Retry-After"] = str(int(fault.retry_after))
            return answer
        finally:
            tenant.log.record(
                LoggedRequest(
                    time=datetime.now(UTC).isoformat(),
                    method="POST",
                    path=request.path,
                    route="/{tenant}/oauth2/v2.0/token",
                    status=status,
                    mailbox=None,
                    in_batch=False,
                )
            )

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


def _json(body: dict[str, Any], status: int = 200) -> Response:
    response = Response(
        json.dumps(body), status=status, content_type="application/json; charset=utf-8"
    )
    response.headers["Cache-Control"] = "no-store, no-cache"
    return response
