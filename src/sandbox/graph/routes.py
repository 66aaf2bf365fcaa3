"""Microsoft Graph v1.0 for the sandbox tenant, with Exchange's semantics, under `{base}/v1.0`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from flask import Blueprint, Response, request

from sandbox.authority import InvalidTokenError
from sandbox.errors import GraphError
from sandbox.faults import drop_connection
from sandbox.graph import batch, delta, events, online_meetings, subscriptions, teamwork, users
from sandbox.graph.service import GraphService, Router
from sandbox.graph.wire import ODATA_JSON, GraphRequest, GraphResponse, error_response

if TYPE_CHECKING:
    from sandbox.tenant import Tenant

_CHALLENGE = (
    'Bearer realm="", '
    'authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    'client_id="00000003-0000-0000-c000-000000000000"'
)


def build_service(tenant: Tenant) -> GraphService:
    """The Graph routes of the sandbox, served against a tenant."""
    router = Router()
    service = GraphService(tenant, router)
    users.register(router)
    events.register(router)
    delta.register(router)
    subscriptions.register(router)
    teamwork.register(router)
    online_meetings.register(router)
    batch.register(router, lambda: service)
    return service


def to_flask(answer: GraphResponse) -> Response:
    """A Graph answer as a Flask response, compact JSON with Graph's content type."""
    if answer.body is None:
        response = Response(status=answer.status)
    else:
        payload = json.dumps(answer.body, separators=(",", ":"), ensure_ascii=False)
        response = Response(payload, status=answer.status, content_type=ODATA_JSON)
    for name, value in answer.headers.items():
        response.headers[name] = value
    return response


def authenticated_call(tenant: Tenant, path: str) -> GraphRequest | Response:
    """The Flask request as a Graph call with its token's claims (body not read yet), or the
    401 Graph answers for a missing or bad bearer token."""
    call = GraphRequest(
        method=request.method,
        path=path,
        query={k.lower(): v for k, v in request.args.items()},
        headers={k.lower(): v for k, v in request.headers.items()},
        body=None,
        base_url=request.host_url.rstrip("/"),
        claims={},
        query_string=request.query_string.decode("latin-1"),
    )
    try:
        call.claims = tenant.authority.verify_graph_token(request.headers.get("Authorization"))
    except InvalidTokenError as e:
        answer = error_response(GraphError(401, "InvalidAuthenticationToken", str(e)), call)
        answer.headers["WWW-Authenticate"] = _CHALLENGE
        return to_flask(answer)
    return call


def create_blueprint(tenant: Tenant) -> Blueprint:
    """`/v1.0/<path>`: authenticate the bearer token once, then serve through the Graph service."""
    service = build_service(tenant)
    blueprint = Blueprint("graph", __name__)

    @blueprint.route(
        "/v1.0/<path:subpath>",
        methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
        strict_slashes=False,
    )
    def graph(subpath: str) -> Response:
        call = authenticated_call(tenant, "/" + subpath)
        if isinstance(call, Response):
            return call
        raw = request.get_data(cache=False)
        if raw:
            try:
                call.body = json.loads(raw)
            except ValueError:
                problem = GraphError(400, "BadRequest", "Unable to read JSON request payload.")
                return to_flask(error_response(problem, call))
        answer = service.serve(call)
        if answer.drop_connection:
            drop_connection(request.environ)
        return to_flask(answer)

    return blueprint
