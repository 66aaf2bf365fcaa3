"""The org app catalog and personal installs the tenant keeps, and the permissions they need."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sandbox.graph.permissions import Permission


def _teams_denied(needed: tuple[str, ...]) -> Permission:
    return Permission(
        needed,
        "Forbidden",
        f"Missing role permissions on the request. API requires one of '{', '.join(needed)}'.",
    )


INSTALL = _teams_denied(
    ("TeamsAppInstallation.ReadWriteSelfForUser.All", "TeamsAppInstallation.ReadWriteForUser.All")
)
READ_INSTALLS = _teams_denied(
    (
        "TeamsAppInstallation.ReadForUser.All",
        "TeamsAppInstallation.ReadWriteSelfForUser.All",
        "TeamsAppInstallation.ReadWriteForUser.All",
    )
)
SEND_ACTIVITY = _teams_denied(("TeamsActivity.Send",))
READ_CHAT_MESSAGES = Permission(
    ("ChatMessage.Read.Chat", "Chat.Read.All", "Chat.ReadWrite.All"),
    "Forbidden",
    "Missing role permissions on the request. API requires one of "
    "'ChatMessage.Read.Chat, Chat.Read.All, Chat.ReadWrite.All'.",
)
"""chat-list-messages.md. ``ChatMessage.Read.Chat`` is resource-specific consent, granted per
chat when the app is installed; the sandbox takes it from the token's roles like the others."""
ChatReader = Callable[[str], "list[dict[str, Any]] | None"]
"""A chat's messages as Graph's ``chatMessage`` objects, oldest first; None: no such chat."""
READ_CATALOG = Permission(
    ("AppCatalog.Read.All", "AppCatalog.ReadWrite.All", "Directory.Read.All"),
    "Forbidden",
    "Missing role permissions on the request. API requires one of "
    "'AppCatalog.Read.All, AppCatalog.ReadWrite.All, Directory.Read.All'.",
)


class TeamsAppInput(BaseModel):
    """`POST /_sandbox/teamsApps`: an app published to the org catalog (from its manifest)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    external_id: str = Field(alias="externalId")
    """The manifest's `id`."""
    display_name: str = Field(alias="displayName")
    azure_ad_app_id: str | None = Field(default=None, alias="azureADAppId")
    """The manifest's `webApplicationInfo.id` (the app registration); default: the tenant's app."""
    activity_types: list[str] = Field(default_factory=list, alias="activityTypes")
    """`activities.activityTypes[].type` of the manifest; empty accepts any."""
    version: str = "1.0.0"


@dataclass
class TeamsApp:
    """An app in the organization's catalog."""

    id: str
    external_id: str
    display_name: str
    azure_ad_app_id: str
    activity_types: tuple[str, ...]
    version: str

    def to_graph(self) -> dict[str, Any]:
        """`teamsApp`."""
        return {
            "id": self.id,
            "externalId": self.external_id,
            "displayName": self.display_name,
            "distributionMethod": "organization",
        }

    def definition(self) -> dict[str, Any]:
        """`teamsAppDefinition` of its one published version."""
        raw = f"{self.id}##{self.version}".encode()
        return {
            "id": base64.b64encode(raw).decode(),
            "teamsAppId": self.id,
            "displayName": self.display_name,
            "version": self.version,
            "publishingState": "published",
            "shortDescription": None,
            "description": None,
            "lastModifiedDateTime": None,
            "createdBy": None,
        }


@dataclass
class TeamsWork:
    """The catalog, who has which app installed, and the activity notices each user got."""

    apps: dict[str, TeamsApp] = field(default_factory=dict)
    installations: dict[str, tuple[str, str]] = field(default_factory=dict)
    activities: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    on_install: list[Callable[[str, TeamsApp, str], None]] = field(default_factory=list)
    """Told (user id, app, the tenant's base URL) after an install through Graph."""
    chat_readers: list[ChatReader] = field(default_factory=list)
    """Where Graph reads chats (the Teams side registers its own); outlives a reset too."""

    def chat_messages(self, chat_id: str) -> list[dict[str, Any]] | None:
        """A chat's messages from the first reader that knows the chat."""
        for reader in self.chat_readers:
            found = reader(chat_id)
            if found is not None:
                return found
        return None

    def publish(self, given: TeamsAppInput, default_app_id: str) -> TeamsApp:
        """Add an app to the catalog (control API; Graph's own publish needs a delegated admin)."""
        app = TeamsApp(
            str(uuid.uuid4()),
            given.external_id,
            given.display_name,
            given.azure_ad_app_id or default_app_id,
            tuple(given.activity_types),
            given.version,
        )
        self.apps[app.id] = app
        return app

    def installed(self, user_id: str) -> list[tuple[str, TeamsApp]]:
        """(installation id, app) pairs for a user."""
        return [
            (inst, self.apps[app])
            for inst, (user, app) in self.installations.items()
            if user == user_id and app in self.apps
        ]
