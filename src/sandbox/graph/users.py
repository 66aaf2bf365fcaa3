"""`/users`, `/users/{id}/mailboxSettings`, `/organization` (user.md, mailboxsettings.md...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sandbox.directory import User, organization_graph
from sandbox.errors import GraphError
from sandbox.graph.permissions import MAILBOX_SETTINGS_READ, ORGANIZATION_READ, USERS_READ
from sandbox.graph.query import int_option, parse_filter, select_names, sort_items
from sandbox.graph.service import Router
from sandbox.graph.wire import GraphRequest, GraphResponse, ok

if TYPE_CHECKING:
    from sandbox.tenant import Tenant

_USER_PROPERTIES = {
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
}
_DEFAULT_PAGE = 100


def directory_user(tenant: Tenant, key: str) -> User:
    """The user a `/users/{id | userPrincipalName}` segment names, or the directory's 404."""
    with tenant.lock:
        user = tenant.directory.find(key)
    if user is None:
        raise GraphError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{key}' does not exist or one of its queried reference-property objects "
            "are not present.",
        )
    return user


def mailbox_user(tenant: Tenant, key: str) -> User:
    """The user whose mailbox a path names, or Exchange's 404 for an unknown user."""
    with tenant.lock:
        user = tenant.directory.find(key)
    if user is None:
        raise GraphError(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
    return user


def _selected(item: dict[str, Any], names: list[str] | None) -> dict[str, Any]:
    if names is None:
        return item
    return {name: item.get(name) for name in names} | {"id": item["id"]}


def list_users(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """GET /users: paged by `$top` (default 100) with `$skiptoken`; `$filter`, `$select`."""
    with tenant.lock:
        items = [user.to_graph() for user in tenant.directory.all()]
    query = request.query
    if "$filter" in query:
        keep = parse_filter(query["$filter"])
        items = [item for item in items if keep(item)]
    if "$orderby" in query:
        items = sort_items(items, query["$orderby"])
    names = select_names(query.get("$select"), _USER_PROPERTIES, "user")
    top = int_option(query, "$top", maximum=999) or _DEFAULT_PAGE
    skip = int(query.get("$skiptoken", "0")) if query.get("$skiptoken", "0").isdigit() else 0
    page = items[skip : skip + top]
    context = f"{request.graph_base}/$metadata#users"
    if names:
        context += f"({','.join(names)})"
    body: dict[str, Any] = {"@odata.context": context}
    if skip + top < len(items):
        rest = {k: v for k, v in query.items() if k != "$skiptoken"} | {
            "$skiptoken": str(skip + top)
        }
        body["@odata.nextLink"] = f"{request.graph_base}/users?{urlencode(rest, safe='$,()')}"
    body["value"] = [_selected(item, names) for item in page]
    return ok(body)


def get_user(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """GET /users/{id | userPrincipalName}."""
    user = directory_user(tenant, params["user"])
    names = select_names(request.query.get("$select"), _USER_PROPERTIES, "user")
    context = f"{request.graph_base}/$metadata#users/$entity"
    return ok({"@odata.context": context} | _selected(user.to_graph(), names))


def get_mailbox_settings(
    tenant: Tenant, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    """GET /users/{id}/mailboxSettings."""
    user = mailbox_user(tenant, params["user"])
    context = f"{request.graph_base}/$metadata#users('{params['user']}')/mailboxSettings"
    return ok({"@odata.context": context} | user.mailbox_settings_graph())


def list_organization(
    tenant: Tenant, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    """GET /organization: the one tenant, with its verified domains."""
    return ok(
        {
            "@odata.context": f"{request.graph_base}/$metadata#organization",
            "value": [_organization(tenant)],
        }
    )


def get_organization(
    tenant: Tenant, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    """GET /organization/{id}."""
    if params["organization"].lower() != tenant.tenant_id:
        raise GraphError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{params['organization']}' does not exist or one of its queried "
            "reference-property objects are not present.",
        )
    return ok(
        {"@odata.context": f"{request.graph_base}/$metadata#organization/$entity"}
        | _organization(tenant)
    )


def _organization(tenant: Tenant) -> dict[str, Any]:
    config = tenant.config
    return organization_graph(
        tenant.tenant_id, config.organization_name, config.domain, tenant.created
    )


def register(router: Router) -> None:
    """Serve the directory routes."""
    router.add("GET", "/users", list_users, USERS_READ)
    router.add("GET", "/users/{user}", get_user, USERS_READ)
    router.add(
        "GET",
        "/users/{user}/mailboxSettings",
        get_mailbox_settings,
        MAILBOX_SETTINGS_READ,
        mailbox=True,
    )
    router.add("GET", "/organization", list_organization, ORGANIZATION_READ)
    router.add("GET", "/organization/{organization}", get_organization, ORGANIZATION_READ)
