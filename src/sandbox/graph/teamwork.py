"""Teams through Graph: the org app catalog, personal-scope installs, their chat, activity feed.

userteamwork-post-installedapps.md (201, no body), userteamwork-list-installedapps.md,
userscopeteamsappinstallation-get-chat.md, userteamwork-sendactivitynotification.md (204),
chat-list-messages.md (`GET /chats/{id}/messages`: newest first, `$top` at most 50),
teams-send-activityfeednotifications.md (the app must be installed for the user, and the
activity type declared in its manifest).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandbox.errors import GraphError, without_annotations
from sandbox.graph.query import parse_filter
from sandbox.graph.service import Router
from sandbox.graph.teams_apps import (
    INSTALL,
    READ_CATALOG,
    READ_CHAT_MESSAGES,
    READ_INSTALLS,
    SEND_ACTIVITY,
    TeamsApp,
)
from sandbox.graph.users import directory_user
from sandbox.graph.wire import GraphRequest, GraphResponse, no_content, ok
from sandbox.timezones import format_timestamp

if TYPE_CHECKING:
    from sandbox.tenant import Tenant


def installation_id(user_id: str, app_id: str) -> str:
    """Installation ids as Teams makes them: base64 of `{user}##{app}`."""
    return base64.b64encode(f"{user_id}##{app_id}".encode()).decode()


def _installation_json(inst: str, app: TeamsApp, expand: str) -> dict[str, Any]:
    item: dict[str, Any] = {"id": inst}
    wanted = {part.strip().lower() for part in expand.split(",") if part.strip()}
    if "teamsapp" in wanted:
        item["teamsApp"] = app.to_graph()
    if "teamsappdefinition" in wanted:
        item["teamsAppDefinition"] = app.definition()
    return item


def install(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """POST /users/{id}/teamwork/installedApps: 201 without a body; 409 when installed."""
    user = directory_user(tenant, params["user"])
    bind = (
        (request.body or {}).get("teamsApp@odata.bind") if isinstance(request.body, dict) else None
    )
    if not isinstance(bind, str) or "/appCatalogs/teamsApps/" not in bind:
        raise GraphError(
            400, "BadRequest", "teamsApp@odata.bind must name /appCatalogs/teamsApps/{id}."
        )
    app_id = bind.rsplit("/", 1)[-1]
    roles = {r.lower() for r in request.claims.get("roles", [])}
    with tenant.lock:
        app = tenant.teams.apps.get(app_id)
        if app is None:
            raise GraphError(
                404, "NotFound", f"App with id '{app_id}' was not found in the catalog."
            )
        only_self = "teamsappinstallation.readwriteforuser.all" not in roles
        if (
            only_self
            and app.azure_ad_app_id.lower() != str(request.claims.get("appid", "")).lower()
        ):
            raise GraphError(
                403,
                "Forbidden",
                "TeamsAppInstallation.ReadWriteSelfForUser.All only "
                "allows an app to install itself.",
            )
        inst = installation_id(user.id, app.id)
        if inst in tenant.teams.installations:
            raise GraphError(409, "Conflict", "App is already installed for this user.")
        tenant.teams.installations[inst] = (user.id, app.id)
        hooks = list(tenant.teams.on_install)
    base_url = request.graph_base.rsplit("/v1.0", 1)[0]
    for hook in hooks:
        hook(user.id, app, base_url)
    return GraphResponse(201)


def list_installed(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """GET /users/{id}/teamwork/installedApps (`$expand`, `$filter` on teamsApp/...)."""
    user = directory_user(tenant, params["user"])
    expand = request.query.get("$expand", "")
    with tenant.lock:
        items = [
            _installation_json(inst, app, "teamsApp,teamsAppDefinition")
            for inst, app in tenant.teams.installed(user.id)
        ]
    if "$filter" in request.query:
        keep = parse_filter(request.query["$filter"])
        items = [item for item in items if keep(item)]
    value = [
        {k: v for k, v in item.items() if k == "id" or k.lower() in expand.lower()}
        for item in items
    ]
    context = f"{request.graph_base}/$metadata#users('{params['user']}')/teamwork/installedApps"
    return ok({"@odata.context": context, "value": value})


def _installation(tenant: Tenant, user_key: str, inst: str) -> tuple[str, TeamsApp]:
    user = directory_user(tenant, user_key)
    with tenant.lock:
        found = tenant.teams.installations.get(inst)
        if found is None or found[0] != user.id or found[1] not in tenant.teams.apps:
            raise GraphError(404, "NotFound", f"Installation '{inst}' was not found.")
        return user.id, tenant.teams.apps[found[1]]


def get_installed(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """GET /users/{id}/teamwork/installedApps/{installation}."""
    _, app = _installation(tenant, params["user"], params["installation"])
    body = _installation_json(params["installation"], app, request.query.get("$expand", ""))
    return ok(
        {
            "@odata.context": f"{request.graph_base}/$metadata#users('{params['user']}')"
            "/teamwork/installedApps/$entity"
        }
        | body
    )


def uninstall(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """DELETE /users/{id}/teamwork/installedApps/{installation}: 204."""
    _installation(tenant, params["user"], params["installation"])
    with tenant.lock:
        tenant.teams.installations.pop(params["installation"], None)
    return no_content()


def installation_chat(
    tenant: Tenant, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    """GET .../installedApps/{installation}/chat: the 1:1 chat of the user and the app's bot."""
    user_id, app = _installation(tenant, params["user"], params["installation"])
    chat = f"19:{app.azure_ad_app_id}_{user_id}@unq.gbl.spaces"
    return ok({"@odata.context": f"{request.graph_base}/$metadata#chats/$entity", "id": chat})


class _Topic(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    source: str
    value: str
    web_url: str | None = Field(default=None, alias="webUrl")


class _Preview(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    content: str
    content_type: str | None = Field(default=None, alias="contentType")


class _Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    value: str


class ActivityNotice(BaseModel):
    """`sendActivityNotification`'s body."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    topic: _Topic
    activity_type: str = Field(alias="activityType")
    preview_text: _Preview = Field(alias="previewText")
    template_parameters: list[_Pair] = Field(default_factory=list, alias="templateParameters")
    chain_id: int | None = Field(default=None, alias="chainId")
    recipient: dict[str, Any] | None = None
    icon_id: str | None = Field(default=None, alias="iconId")
    teams_app_id: str | None = Field(default=None, alias="teamsAppId")


def send_activity(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """POST /users/{id}/teamwork/sendActivityNotification: 204, into the user's activity feed."""
    user = directory_user(tenant, params["user"])
    try:
        notice = ActivityNotice.model_validate(without_annotations(request.body))
    except ValidationError as e:
        raise GraphError(400, "BadRequest", f"Invalid request body: {e.errors()[0]['msg']}") from e
    if notice.topic.source == "text" and not notice.topic.web_url:
        raise GraphError(400, "BadRequest", "A topic with source 'text' needs a webUrl.")
    caller = str(request.claims.get("appid", "")).lower()
    with tenant.lock:
        apps = [
            app
            for _, app in tenant.teams.installed(user.id)
            if app.azure_ad_app_id.lower() == caller
        ]
        if not apps:
            raise GraphError(
                403,
                "Forbidden",
                "The Teams app linked to the calling application is not "
                "installed for the recipient.",
            )
        declared = apps[0].activity_types
        if declared and notice.activity_type not in declared:
            raise GraphError(
                400,
                "BadRequest",
                f"Activity type '{notice.activity_type}' is not declared in the app manifest.",
            )
        feed = tenant.teams.activities.setdefault(user.id, [])
        feed.append(
            {
                "time": format_timestamp(datetime.now(UTC)),
                "teamsAppId": apps[0].id,
                **notice.model_dump(by_alias=True, exclude_none=True),
            }
        )
    return no_content()


def list_catalog(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """GET /appCatalogs/teamsApps (`$filter` e.g. externalId eq '...')."""
    with tenant.lock:
        items = [app.to_graph() for app in tenant.teams.apps.values()]
    if "$filter" in request.query:
        keep = parse_filter(request.query["$filter"])
        items = [item for item in items if keep(item)]
    return ok(
        {"@odata.context": f"{request.graph_base}/$metadata#appCatalogs/teamsApps", "value": items}
    )


MAX_MESSAGES_PAGE = 50
DEFAULT_MESSAGES_PAGE = 20


def list_chat_messages(
    tenant: Tenant, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    """GET /chats/{chat}/messages: newest first (by lastModifiedDateTime), `$top` up to 50,
    then `@odata.nextLink` with a `$skiptoken`."""
    top_text = request.query.get("$top", str(DEFAULT_MESSAGES_PAGE))
    if not top_text.isdigit() or not 1 <= int(top_text) <= MAX_MESSAGES_PAGE:
        raise GraphError(
            400,
            "BadRequest",
            f"Invalid page size specified: '{top_text}'. Must be between "
            f"1 and {MAX_MESSAGES_PAGE} inclusive.",
        )
    skip_text = request.query.get("$skiptoken", "0")
    try:
        skip = int(base64.urlsafe_b64decode(skip_text.encode()).decode()) if skip_text != "0" else 0
    except ValueError as e:
        raise GraphError(400, "BadRequest", "The skip token is not valid.") from e
    with tenant.lock:
        messages = tenant.teams.chat_messages(params["chat"])
    if messages is None:
        raise GraphError(404, "NotFound", "Resource not found.")
    newest = sorted(messages, key=lambda m: (m["lastModifiedDateTime"], m["id"]), reverse=True)
    top = int(top_text)
    page = newest[skip : skip + top]
    chat = params["chat"]
    body: dict[str, Any] = {
        "@odata.context": f"{request.graph_base}/$metadata#chats('{chat}')/messages",
        "@odata.count": len(page),
        "value": page,
    }
    if skip + top < len(newest):
        token = base64.urlsafe_b64encode(str(skip + top).encode()).decode()
        body["@odata.nextLink"] = (
            f"{request.graph_base}/chats/{chat}/messages?$top={top}&$skiptoken={token}"
        )
    return ok(body)


def register(router: Router) -> None:
    """Serve the Teams routes."""
    base = "/users/{user}/teamwork"
    router.add("POST", f"{base}/installedApps", install, INSTALL)
    router.add("GET", f"{base}/installedApps", list_installed, READ_INSTALLS)
    router.add("GET", f"{base}/installedApps/{{installation}}", get_installed, READ_INSTALLS)
    router.add("DELETE", f"{base}/installedApps/{{installation}}", uninstall, INSTALL)
    router.add(
        "GET", f"{base}/installedApps/{{installation}}/chat", installation_chat, READ_INSTALLS
    )
    router.add("POST", f"{base}/sendActivityNotification", send_activity, SEND_ACTIVITY)
    router.add("GET", "/appCatalogs/teamsApps", list_catalog, READ_CATALOG)
    router.add("GET", "/chats/{chat}/messages", list_chat_messages, READ_CHAT_MESSAGES)
