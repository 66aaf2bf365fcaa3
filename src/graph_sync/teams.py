"""Teams through Graph: install our app for a rep, find its 1:1 chat, activity-feed notices.

App-only Graph cannot post chat messages (M365_NOTES.md): the bot does; these calls only
open the way for it, or notify through the activity feed when it cannot.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from graph_sync.client import GraphClient
from graph_sync.errors import GraphError, NotFound
from graph_sync.models import GraphBody

INSTALL_PERMISSION = "TeamsAppInstallation.ReadWriteSelfForUser.All"
ACTIVITY_PERMISSION = "TeamsActivity.Send"


class _Id(BaseModel):
    id: str


class _Installations(BaseModel):
    value: list[_Id] = Field(default_factory=list)


def _installed_apps(user: str) -> str:
    return f"/users/{user}/teamwork/installedApps"


def find_installation(client: GraphClient, user: str, teams_app_id: str) -> str | None:
    """The installation id of our app for `user`, or None when not installed."""
    expression = quote(f"teamsApp/id eq '{teams_app_id}'", safe="")
    raw = client.get_bytes(
        f"{_installed_apps(user)}?$expand=teamsApp&$filter={expression}",
        mailbox=user,
        permission=INSTALL_PERMISSION,
    )
    found = _Installations.model_validate_json(raw).value
    return found[0].id if found else None


def count_installed_apps(client: GraphClient, user: str) -> int:
    """How many Teams apps `user` has installed (one page; the doctor's permission probe)."""
    raw = client.get_bytes(_installed_apps(user), mailbox=user, permission=INSTALL_PERMISSION)
    return len(_Installations.model_validate_json(raw).value)


class AppInstallation(GraphBody):
    """`POST /users/{id}/teamwork/installedApps` (userteamwork-post-installedapps.md)."""

    teams_app: str = Field(serialization_alias="teamsApp@odata.bind")
    """The catalog app's URL: `{graph}/appCatalogs/teamsApps/{id}`."""


class ActivityTopic(GraphBody):
    """What the notice is about: a text topic with a link."""

    source: Literal["text", "entityUrl"]
    """`text` for a topic of our own."""
    value: str
    """The topic's text."""
    web_url: str
    """Where a click on the notice goes."""


class ItemText(GraphBody):
    """Graph's `itemBody` without a content type: the preview line."""

    content: str
    """The text."""


class KeyValue(GraphBody):
    """One template parameter."""

    name: str
    """The parameter, as the manifest's activity template names it."""
    value: str
    """Its value."""


class ActivityNotification(GraphBody):
    """`POST /users/{id}/teamwork/sendActivityNotification`."""

    topic: ActivityTopic
    """What it is about."""
    activity_type: str
    """An activity type the manifest declares."""
    preview_text: ItemText
    """The line the feed shows."""
    template_parameters: list[KeyValue]
    """Values for the activity type's template."""


def install_app_for_user(client: GraphClient, user: str, teams_app_id: str) -> str:
    """Install our Teams app (catalog id) in the rep's personal scope; the installation id.
    Already installed (409) is success. Forbidden when the permission is not granted."""
    body = AppInstallation(teams_app=f"{client.api_base}/appCatalogs/teamsApps/{teams_app_id}")
    try:
        answer = client.post_json(
            _installed_apps(user), body, mailbox=user, permission=INSTALL_PERMISSION
        )
    except GraphError as e:
        if e.status != 409:
            raise
        answer = {}
    if isinstance(answer.get("id"), str):
        return str(answer["id"])
    # Graph answers 201 without a body (userteamwork-post-installedapps.md): look it up.
    installation = find_installation(client, user, teams_app_id)
    if installation is None:
        raise NotFound(404, "InstallationNotFound", "installed, but not listed yet", user)
    return installation


def get_installation_chat(client: GraphClient, user: str, installation_id: str) -> str:
    """The id of the 1:1 chat between the rep and our bot for an installation."""
    raw = client.get_bytes(
        f"{_installed_apps(user)}/{installation_id}/chat",
        mailbox=user,
        permission=INSTALL_PERMISSION,
    )
    return _Id.model_validate_json(raw).id


def send_activity_notification(
    client: GraphClient,
    user: str,
    activity_type: str,
    preview_text: str,
    web_url: str,
    template_parameters: dict[str, str] | None = None,
    *,
    topic: str = "DealBridge",
) -> None:
    """A Teams activity-feed notice for the rep (the manifest declares `activity_type`)."""
    body = ActivityNotification(
        topic=ActivityTopic(source="text", value=topic, web_url=web_url),
        activity_type=activity_type,
        preview_text=ItemText(content=preview_text),
        template_parameters=[
            KeyValue(name=name, value=value) for name, value in (template_parameters or {}).items()
        ],
    )
    client.post_json(
        f"/users/{user}/teamwork/sendActivityNotification",
        body,
        mailbox=user,
        permission=ACTIVITY_PERMISSION,
    )


CHAT_READ = "Chat.Read.All"
"""Application permission to read chats (``ChatMessage.Read.Chat`` as RSC suffices too)."""


class ChatMessageFrom(BaseModel):
    """`chatMessageFromIdentitySet`: who sent a message (a user or an application)."""

    application: dict[str, object] | None = None
    user: dict[str, object] | None = None


class ChatAttachment(BaseModel):
    """`chatMessageAttachment`: for a bot's card, the card as a JSON string in `content`."""

    id: str | None = None
    content_type: str | None = Field(default=None, alias="contentType")
    content: str | None = None


class ChatMessage(BaseModel):
    """`chatMessage` (chatmessage.md), the fields we read."""

    id: str
    sender: ChatMessageFrom | None = Field(default=None, alias="from")
    attachments: list[ChatAttachment] = Field(default_factory=list)

    @property
    def from_application(self) -> dict[str, object] | None:
        """The application (a bot) that sent it, if one did."""
        return self.sender.application if self.sender is not None else None


class _ChatMessages(BaseModel):
    value: list[ChatMessage] = Field(default_factory=list)
    next_link: str | None = Field(default=None, alias="@odata.nextLink")


def list_chat_messages(client: GraphClient, chat_id: str, *, pages: int = 1) -> list[ChatMessage]:
    """The chat's newest messages, newest first (`GET /chats/{id}/messages`, 50 a page, at
    most `pages` pages). Forbidden without Chat.Read.All (or the chat's RSC grant)."""
    url: str | None = f"/chats/{quote(chat_id, safe=':@')}/messages?$top=50"
    found: list[ChatMessage] = []
    for _ in range(pages):
        if url is None:
            break
        page = _ChatMessages.model_validate_json(client.get_bytes(url, permission=CHAT_READ))
        found.extend(page.value)
        url = page.next_link
    return found
