"""Users, mailbox settings and the organization's verified domains. What a mailbox's round
reads (one user, its mailbox settings, the verified domains) is raw JSON into our models;
listing every user goes through the typed SDK (a cold path)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graph_sync.client import GraphClient
from graph_sync.errors import GraphError, UnreadablePage, error_for
from graph_sync.models import GraphMailboxSettings, MailboxSettings

T = TypeVar("T")

USER_READ = "User.Read.All"
MAILBOX_SETTINGS_READ = "MailboxSettings.Read"
ORGANIZATION_READ = "Organization.Read.All"
_USER_FIELDS = ["id", "userPrincipalName", "mail", "displayName"]


class DirectoryUser(BaseModel):
    """A user of the tenant."""

    model_config = ConfigDict(frozen=True)

    id: str
    """Entra object id (GUID)."""
    user_principal_name: str
    """Sign-in name, e.g. ann@contoso.com."""
    mail: str | None = None
    """Primary SMTP address (None for users without a mailbox)."""
    display_name: str | None = None
    """Name as shown in Outlook and Teams."""


def _sdk_call(
    client: GraphClient,
    call: Callable[[], Awaitable[T]],
    *,
    permission: str,
    mailbox: str | None = None,
) -> T:
    """Run a typed SDK call; its ODataError becomes our GraphError."""
    from kiota_abstractions.api_error import APIError

    try:
        return client.run(call, mailbox=mailbox)
    except APIError as e:
        raise _from_api_error(e, permission, mailbox) from e


def _from_api_error(e: Any, permission: str, mailbox: str | None) -> GraphError:
    main = getattr(e, "error", None)
    code = str(getattr(main, "code", None) or "UnknownError")
    message = str(getattr(main, "message", None) or e.message or "")
    headers = {k.lower(): v for k, v in dict(e.response_headers or {}).items()}
    return error_for(
        int(e.response_status_code or 0),
        code,
        message,
        mailbox=mailbox,
        request_id=headers.get("request-id"),
        permission=permission,
    )


def _user(raw: Any) -> DirectoryUser:
    """Our user from the SDK's; an answer without `id` or `userPrincipalName` is broken
    (never the string "None": a rep would be mapped to it)."""
    missing = [
        wire
        for wire, value in (("id", raw.id), ("userPrincipalName", raw.user_principal_name))
        if not isinstance(value, str) or not value.strip()
    ]
    if missing:
        raise UnreadablePage(None, f"a user without {' and '.join(missing)}")
    return DirectoryUser(
        id=raw.id,
        user_principal_name=raw.user_principal_name,
        mail=raw.mail,
        display_name=raw.display_name,
    )


class _WireUser(BaseModel):
    """A user as Graph sends it (the fields of ``_USER_FIELDS``), read without msgraph's typed
    models: a new round reads it, and their first import costs seconds."""

    id: Any = None
    user_principal_name: Any = Field(default=None, alias="userPrincipalName")
    mail: str | None = None
    display_name: str | None = Field(default=None, alias="displayName")


def get_user(client: GraphClient, id_or_upn: str) -> DirectoryUser:
    """One user by id or UPN; NotFound when there is none."""
    raw = client.get_bytes(
        f"/users/{quote(id_or_upn, safe='@')}",
        params={"$select": ",".join(_USER_FIELDS)},
        permission=USER_READ,
    )
    try:
        return _user(_WireUser.model_validate_json(raw))
    except ValidationError as e:
        raise UnreadablePage(None, f"a user Graph sent: {e.errors()[0]['msg']}") from e


def list_users(client: GraphClient, *, page_size: int = 999) -> list[DirectoryUser]:
    """Every user of the tenant (all pages)."""
    from msgraph.generated.users.users_request_builder import UsersRequestBuilder

    config = UsersRequestBuilder.UsersRequestBuilderGetRequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            select=_USER_FIELDS, top=page_size
        )
    )
    users: list[DirectoryUser] = []
    page = _sdk_call(
        client, lambda: client.sdk.users.get(request_configuration=config), permission=USER_READ
    )
    while page is not None:
        users.extend(_user(raw) for raw in page.value or [])
        link = page.odata_next_link
        if not link:
            break
        next_page: Callable[[], Awaitable[Any]] = client.sdk.users.with_url(link).get
        page = _sdk_call(client, next_page, permission=USER_READ)
    return users


def first_user_id(client: GraphClient) -> str | None:
    """The id of one user of the tenant, or None in an empty directory."""
    raw = client.get_json("/users", params={"$top": "1", "$select": "id"}, permission=USER_READ)
    users = raw.get("value", [])
    return str(users[0]["id"]) if users else None


def get_mailbox_settings(client: GraphClient, user: str) -> MailboxSettings:
    """The rep's zone (IANA) and working hours, from `GET /users/{id}/mailboxSettings`."""
    # Our model rather than the SDK's: we need the customTimeZone's @odata.type as sent.
    raw = client.get_bytes(
        f"/users/{user}/mailboxSettings", mailbox=user, permission=MAILBOX_SETTINGS_READ
    )
    return MailboxSettings.from_graph(GraphMailboxSettings.model_validate_json(raw))


class _VerifiedDomain(BaseModel):
    name: str | None = None


class _Organization(BaseModel):
    verified_domains: list[_VerifiedDomain] | None = Field(default=None, alias="verifiedDomains")


class _Organizations(BaseModel):
    value: list[_Organization] | None = None


def get_verified_domains(client: GraphClient) -> list[str]:
    """The organization's verified domains (lower-case), e.g. for internal-only meetings.
    Read as raw JSON (a new round reads them; msgraph's typed models cost seconds to import)."""
    raw = client.get_bytes(
        "/organization", params={"$select": "verifiedDomains"}, permission=ORGANIZATION_READ
    )
    try:
        page = _Organizations.model_validate_json(raw)
    except ValidationError as e:
        raise UnreadablePage(None, f"the organization Graph sent: {e.errors()[0]['msg']}") from e
    domains: list[str] = []
    for organization in page.value or []:
        for domain in organization.verified_domains or []:
            if domain.name:
                domains.append(str(domain.name).lower())
    return sorted(set(domains))
