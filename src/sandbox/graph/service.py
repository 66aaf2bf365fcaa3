"""Routing and the path every Graph call takes: faults, permissions, throttling, the log."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sandbox.errors import GraphError
from sandbox.faults import FaultRule, loses_answer
from sandbox.graph.permissions import Permission
from sandbox.graph.wire import GraphRequest, GraphResponse, error_response, ok
from sandbox.request_log import LoggedRequest

if TYPE_CHECKING:
    from sandbox.tenant import Tenant

Handler = Callable[["Tenant", GraphRequest, dict[str, str]], GraphResponse]


@dataclass(frozen=True)
class Route:
    """A method and path template (`{name}` matches one segment) served by a handler."""

    method: str
    template: str
    handler: Handler
    permission: Permission | None
    mailbox: bool

    @property
    def segments(self) -> tuple[str, ...]:
        """The template split on '/'."""
        return tuple(self.template.strip("/").split("/"))


class Router:
    """Graph routes; `delta` and `delta()` are both routed (the SDK sends the parentheses)."""

    def __init__(self) -> None:
        self._routes: list[tuple[tuple[str, ...], Route]] = []

    def add(
        self,
        method: str,
        template: str,
        handler: Handler,
        permission: Permission | None = None,
        mailbox: bool = False,
    ) -> None:
        """Serve `method template` with a handler, needing a permission, counted per mailbox."""
        route = Route(method, template, handler, permission, mailbox)
        self._routes.append((route.segments, route))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for a call and its path parameters; Graph's 400/405 when none serves it."""
        parts = tuple(p for p in path.strip("/").split("/") if p != "")
        allowed = False
        for segments, route in self._routes:
            params = _match(segments, parts)
            if params is None:
                continue
            if route.method == method:
                return route, params
            allowed = True
        if allowed:
            raise GraphError(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            )
        last = parts[-1] if parts else ""
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{last}'.")


def _match(segments: tuple[str, ...], parts: tuple[str, ...]) -> dict[str, str] | None:
    if len(segments) != len(parts):
        return None
    params: dict[str, str] = {}
    for segment, part in zip(segments, parts, strict=True):
        if segment.startswith("{") and segment.endswith("}"):
            params[segment[1:-1]] = part
        elif segment.lower() != part.lower():
            return None
    return params


class GraphService:
    """Serves Graph calls (top-level or `$batch` items) against the tenant."""

    def __init__(self, tenant: Tenant, router: Router) -> None:
        self.tenant = tenant
        self.router = router

    def mailbox_of(self, request: GraphRequest) -> str | None:
        """The mailbox a call works on (what Outlook throttles), None for other routes."""
        try:
            route, params = self.router.match(request.method, request.path)
        except GraphError:
            return None
        return self._mailbox(params["user"]) if route.mailbox and "user" in params else None

    def serve(self, request: GraphRequest) -> GraphResponse:
        """One call through faults, permission, throttling and its handler; always logged."""
        tenant = self.tenant
        route_name, mailbox = "?", None
        try:
            route, params = self.router.match(request.method, request.path)
            route_name = "/v1.0/" + "/".join(route.segments)
            if route.mailbox and "user" in params:
                mailbox = self._mailbox(params["user"])
            response = self._serve(route, params, request, mailbox)
        except GraphError as e:
            response = error_response(e, request)
        response.headers.setdefault("request-id", request.request_id)
        response.headers.setdefault("client-request-id", request.client_request_id)
        tenant.log.record(
            LoggedRequest(
                time=datetime.now(UTC).isoformat(),
                method=request.method,
                path=request.line().split(" ", 1)[1],
                route=route_name,
                status=response.status,
                mailbox=mailbox,
                in_batch=request.in_batch,
            )
        )
        return response

    def _serve(
        self, route: Route, params: dict[str, str], request: GraphRequest, mailbox: str | None
    ) -> GraphResponse:
        tenant = self.tenant
        with tenant.lock:
            fault = tenant.faults.draw(request.line())
            settings = tenant.settings
        if fault is not None and fault.status == "unreadable":
            return ok(UNREADABLE_PAGE)
        if fault is not None and fault.status == "incomplete":
            return _without(self._act(route, params, request, mailbox), fault.drop or [])
        if fault is not None and loses_answer(fault):
            done = self._act(route, params, request, mailbox)
            if done.status >= 400:
                return done
            lost = error_response(
                GraphError(504, "GatewayTimeout", "The service did not answer in time."), request
            )
            lost.drop_connection = fault.status == "lost_reset" and not request.in_batch
            return lost
        if fault is not None:
            raise fault_error(fault, settings.fault_timeout_seconds)
        return self._act(route, params, request, mailbox)

    def _act(
        self, route: Route, params: dict[str, str], request: GraphRequest, mailbox: str | None
    ) -> GraphResponse:
        tenant = self.tenant
        with tenant.lock:
            settings = tenant.settings
        if route.permission is not None:
            require(request, route.permission)
        if mailbox is None:
            return route.handler(tenant, request, params)
        tenant.throttle.enter(
            mailbox,
            settings.mailbox_concurrency_limit,
            settings.mailbox_request_budget,
            settings.mailbox_budget_window_seconds,
        )
        try:
            if settings.latency_seconds:
                time.sleep(settings.latency_seconds)
            return route.handler(tenant, request, params)
        finally:
            tenant.throttle.leave(mailbox)

    def _mailbox(self, user_key: str) -> str:
        with self.tenant.lock:
            user = self.tenant.directory.find(user_key)
        return user.user_principal_name.lower() if user else user_key.lower()


def _without(response: GraphResponse, fields: list[str]) -> GraphResponse:
    """The answer with `fields` left out of its object and of each item of its `value`."""
    body = copy.deepcopy(response.body)  # never the tenant's own objects
    if isinstance(body, dict):
        items = body.get("value") if isinstance(body.get("value"), list) else [body]
        for item in items or []:
            if isinstance(item, dict):
                for name in fields:
                    item.pop(name, None)
    return GraphResponse(response.status, body, response.headers)


# A 200 whose page breaks every field a reader relies on (a truncating proxy, a service bug).
UNREADABLE_PAGE = {"value": [{"id": 7, "start": "soon", "end": None, "attendees": "all"}]}


def require(request: GraphRequest, permission: Permission) -> None:
    """403 as the service answers when the token's roles hold none of the permissions."""
    roles = {r.lower() for r in request.claims.get("roles", [])}
    if not any(p.lower() in roles for p in permission.any_of):
        raise GraphError(403, permission.code, permission.message)


def fault_error(fault: FaultRule, default_timeout: float) -> GraphError:
    """The answer an armed fault gives (after holding the request, for `timeout`)."""
    retry = {"Retry-After": _seconds(fault.retry_after)} if fault.retry_after is not None else {}
    if fault.status == "timeout":
        time.sleep(fault.timeout_seconds if fault.timeout_seconds is not None else default_timeout)
        return GraphError(504, "GatewayTimeout", "The service did not answer in time.", retry)
    status = int(fault.status)
    if status == 429:
        return GraphError(
            429,
            "TooManyRequests",
            "Too many requests. Retry after the time in Retry-After.",
            retry or {"Retry-After": "1"},
        )
    if status == 410:
        return GraphError(
            410,
            "SyncStateNotFound",
            "The sync state generation is not found; generation=0;[highest=1][1].",
        )
    messages = {
        500: ("InternalServerError", "An internal server error occurred."),
        502: ("BadGateway", "The service is not reachable."),
        503: ("ServiceUnavailable", "The service is temporarily unavailable."),
        504: ("GatewayTimeout", "The service did not answer in time."),
    }
    code, message = messages[status]
    return GraphError(status, code, message, retry)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}".rstrip("0")
