"""`/subscriptions`: create (with the validation handshake), get, list, renew, delete."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, TypeVar

from pydantic import ValidationError

from sandbox.errors import GraphError, without_annotations
from sandbox.graph.permissions import CALENDARS_READ, Permission
from sandbox.graph.service import Router, require
from sandbox.graph.wire import GraphRequest, GraphResponse, no_content, ok
from sandbox.tenant import utc_now
from sandbox.webhooks import (
    CHANGE_TYPES,
    Subscription,
    SubscriptionInput,
    SubscriptionPatch,
    check_expiration,
    validate_endpoint,
)

if TYPE_CHECKING:
    from sandbox.tenant import Tenant

# Subscribing needs read access to the resource; Outlook wraps the 403 in an ExtensionError.
_SUBSCRIBE_EVENTS = Permission(
    CALENDARS_READ.any_of,
    "ExtensionError",
    "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is denied. "
    "Check credentials and try again.]",
)


_Body = TypeVar("_Body", SubscriptionInput, SubscriptionPatch)


def _parse(model: type[_Body], body: object) -> _Body:
    try:
        return model.model_validate(without_annotations(body))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise GraphError(
            400, "InvalidRequest", f"Invalid value for '{where}': {first['msg']}"
        ) from e


def _found(tenant: Tenant, subscription_id: str) -> Subscription:
    sub = tenant.subscriptions.by_id.get(subscription_id.lower())
    if sub is None:
        raise GraphError(404, "ResourceNotFound", f"The object '{subscription_id}' was not found.")
    return sub


def create_subscription(
    tenant: Tenant, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    """POST /subscriptions: validate both endpoints (outside the lock), then 201."""
    given = _parse(SubscriptionInput, request.body)
    require(request, _SUBSCRIBE_EVENTS)
    types = tuple(t.strip() for t in given.change_type.split(",") if t.strip())
    if not types or any(t not in CHANGE_TYPES for t in types):
        raise GraphError(
            400, "InvalidRequest", f"Invalid 'changeType' attribute: '{given.change_type}'."
        )
    now = utc_now()
    expiration = check_expiration(given.expiration_date_time, now)
    with tenant.lock:
        mailbox_id = tenant.subscriptions.mailbox_of(given.resource, tenant.directory)
    timeout = tenant.config.validation_timeout_seconds
    for url in filter(None, (given.notification_url, given.lifecycle_notification_url)):
        problem = validate_endpoint(url, timeout)
        if problem is not None:
            raise GraphError(400, "ValidationError", problem)
    sub = Subscription(
        id=str(uuid.uuid4()),
        resource=given.resource,
        mailbox_id=mailbox_id,
        change_types=types,
        notification_url=given.notification_url,
        lifecycle_url=given.lifecycle_notification_url,
        client_state=given.client_state,
        expiration=expiration,
        latest_tls=given.latest_supported_tls_version or "v1_2",
        application_id=str(request.claims.get("appid", "")),
        creator_id=str(request.claims.get("oid", "")),
    )
    with tenant.lock:
        tenant.subscriptions.by_id[sub.id] = sub
    context = f"{request.graph_base}/$metadata#subscriptions/$entity"
    return ok({"@odata.context": context} | sub.to_graph(), 201)


def list_subscriptions(
    tenant: Tenant, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    """GET /subscriptions: the app's subscriptions."""
    with tenant.lock:
        value = [sub.to_graph() for sub in tenant.subscriptions.by_id.values()]
    return ok({"@odata.context": f"{request.graph_base}/$metadata#subscriptions", "value": value})


def get_subscription(
    tenant: Tenant, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    """GET /subscriptions/{id}."""
    with tenant.lock:
        body = _found(tenant, params["subscription"]).to_graph()
    return ok({"@odata.context": f"{request.graph_base}/$metadata#subscriptions/$entity"} | body)


def renew_subscription(
    tenant: Tenant, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    """PATCH /subscriptions/{id}: a new expiration (at most 4,230 minutes ahead)."""
    given = _parse(SubscriptionPatch, request.body)
    if given.notification_url:
        problem = validate_endpoint(
            given.notification_url, tenant.config.validation_timeout_seconds
        )
        if problem is not None:
            raise GraphError(400, "ValidationError", problem)
    with tenant.lock:
        sub = _found(tenant, params["subscription"])
        if given.expiration_date_time is not None:
            sub.expiration = check_expiration(given.expiration_date_time, utc_now())
        if given.notification_url:
            sub.notification_url = given.notification_url
        body = sub.to_graph()
    return ok({"@odata.context": f"{request.graph_base}/$metadata#subscriptions/$entity"} | body)


def delete_subscription(
    tenant: Tenant, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    """DELETE /subscriptions/{id}: 204."""
    with tenant.lock:
        _found(tenant, params["subscription"])
        del tenant.subscriptions.by_id[params["subscription"].lower()]
    return no_content()


def reauthorize_subscription(
    tenant: Tenant, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    """POST /subscriptions/{id}/reauthorize: answers 204 (after a reauthorizationRequired)."""
    with tenant.lock:
        _found(tenant, params["subscription"])
    return no_content()


def register(router: Router) -> None:
    """Serve the subscription routes."""
    router.add("POST", "/subscriptions", create_subscription)
    router.add("GET", "/subscriptions", list_subscriptions)
    router.add("GET", "/subscriptions/{subscription}", get_subscription)
    router.add("PATCH", "/subscriptions/{subscription}", renew_subscription)
    router.add("DELETE", "/subscriptions/{subscription}", delete_subscription)
    router.add("POST", "/subscriptions/{subscription}/reauthorize", reauthorize_subscription)
