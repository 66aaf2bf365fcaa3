"""The Bot Connector client: proactive 1:1 conversations, sending cards and updating them.

Bot Framework REST API (bot-docs, rest-api-reference; Teams docs "Send proactive messages"):
`POST {serviceUrl}/v3/conversations` → conversation id, `POST .../{id}/activities` → activity
id, `PUT .../{id}/activities/{activityId}` replaces a sent card. The bot token comes from
Entra (scope `https://api.botframework.com/.default`); the caller passes a function that
returns a current one (MSAL caches it). Errors become `BotConnectorError`: a user who blocked
or removed the bot is `MessageWritesBlocked` (403), throttling carries its Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import requests
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from cards.actions import CARD_CONTENT_TYPE
from cards.builders import build_card, card_summary
from cards.models import CardView

log = logging.getLogger(__name__)

BOT_SCOPE = "https://api.botframework.com/.default"
# Teams' answers for a bot the user blocked or removed (Teams docs, "Analyze bot usage":
# 403 with subCode MessageWritesBlocked; the Connector's code is ConversationBlockedByUser).
BLOCKED_CODES = frozenset(
    {"messagewritesblocked", "conversationblockedbyuser", "botnotinconversationroster"}
)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class BotConnectorError(Exception):
    """The Bot Connector refused or failed a call.

    `status` is the HTTP status (0 when it could not be reached), `code` the error code it
    gave, `retry_after` its Retry-After in seconds when it said one (429, 503).
    """

    def __init__(
        self, status: int, code: str, message: str = "", *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}" if message else f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Worth retrying later: unreachable, throttled, or a server error."""
        return self.status in (0, 408, 412, 429) or self.status >= 500


class MessageWritesBlocked(BotConnectorError):
    """403: the user blocked the bot or removed the app; retrying cannot help."""


class _Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="allow"
    )


class ResourceResponse(_Wire):
    """`{"id": ...}`, the answer to a send."""

    id: str = ""


class ConversationResourceResponse(_Wire):
    """The answer to a create-conversation."""

    id: str
    """The conversation id, e.g. `a:1Xy...` in Teams."""
    activity_id: str | None = None
    service_url: str | None = None


class ChannelAccount(_Wire):
    """A member of a conversation."""

    id: str
    name: str | None = None
    aad_object_id: str | None = None
    user_principal_name: str | None = None
    email: str | None = None


class _ErrorDetail(_Wire):
    code: str = ""
    message: str = ""
    inner_http_error: dict[str, Any] | None = None


class _ErrorBody(_Wire):
    error: _ErrorDetail = Field(default_factory=_ErrorDetail)
    sub_code: str | None = None


class _Outbound(BaseModel):
    """A body we send to the Bot Connector: camelCase, absent fields left out."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Attachment(_Outbound):
    """An attachment of an activity: here, always an Adaptive Card."""

    content_type: str = CARD_CONTENT_TYPE
    """The card's MIME type."""
    content: dict[str, Any]
    """The card itself."""


class MessageActivity(_Outbound):
    """A message activity (Bot Framework `Activity` of type `message`)."""

    type: Literal["message"] = "message"
    """Always a message."""
    summary: str
    """What Teams shows in notifications and the chat list."""
    attachments: list[Attachment]
    """The card (no `text`: Teams would show both)."""


class TenantInfo(_Outbound):
    """`{"id": tenant}`."""

    id: str
    """The Entra tenant id."""


class TeamsChannelData(_Outbound):
    """Teams' channel data on a new conversation."""

    tenant: TenantInfo
    """The tenant the chat belongs to."""


class Account(_Outbound):
    """A bot or a user, by id."""

    id: str
    """`28:{bot id}` for the bot, `29:...` or an Entra id for a user."""


class ConversationParameters(_Outbound):
    """`POST v3/conversations`: open (or find) the bot's 1:1 chat with a user."""

    is_group: bool = False
    """Always 1:1."""
    bot: Account
    """The bot."""
    members: list[Account]
    """The one user."""
    tenant_id: str | None = None
    """The tenant (Teams requires it for a proactive chat)."""
    channel_data: TeamsChannelData | None = None
    """The tenant again, where Teams reads it."""


def card_activity(view: CardView, *, card: dict[str, Any] | None = None) -> dict[str, Any]:
    """A message activity carrying the card for `view` (no `text`: Teams would show both)."""
    return MessageActivity(
        summary=card_summary(view),
        attachments=[Attachment(content=card if card else build_card(view))],
    ).wire()


class BotConnector:
    """Typed calls to the Bot Connector of one service URL at a time (the one Teams gave us).

    `token` returns a current bot token (e.g. graph_sync's TokenProvider with the bot scope).
    Tokens are sent only to https service URLs, or to loopback ones (the sandbox, a local
    Teams client), never to anything else.
    """

    def __init__(
        self, session: requests.Session, token: Callable[[], str], *, timeout: float = 15.0
    ) -> None:
        self._session = session
        self._token = token
        self._timeout = timeout

    def create_conversation(
        self, service_url: str, bot_id: str, user_id: str, tenant_id: str | None
    ) -> str:
        """Open (or find) the 1:1 chat of the bot with a Teams user (`29:...` or Entra id)."""
        body = ConversationParameters(
            bot=Account(id=bot_id if bot_id.startswith("28:") else f"28:{bot_id}"),
            members=[Account(id=user_id)],
            tenant_id=tenant_id or None,
            channel_data=TeamsChannelData(tenant=TenantInfo(id=tenant_id)) if tenant_id else None,
        )
        answer = self._call("POST", service_url, "v3/conversations", body.wire())
        try:
            return ConversationResourceResponse.model_validate(answer).id
        except ValidationError as e:
            raise BotConnectorError(502, "BadResponse", "no conversation id in the answer") from e

    def send(self, service_url: str, conversation_id: str, activity: dict[str, Any]) -> str:
        """Post an activity to a conversation; the new activity's id."""
        path = f"v3/conversations/{quote(conversation_id, safe='')}/activities"
        answer = self._call("POST", service_url, path, activity)
        return ResourceResponse.model_validate(answer).id

    def reply(
        self, service_url: str, conversation_id: str, reply_to_id: str, activity: dict[str, Any]
    ) -> str:
        """Answer an activity in its conversation; the new activity's id."""
        path = (
            f"v3/conversations/{quote(conversation_id, safe='')}"
            f"/activities/{quote(reply_to_id, safe='')}"
        )
        answer = self._call("POST", service_url, path, {**activity, "replyToId": reply_to_id})
        return ResourceResponse.model_validate(answer).id

    def update(
        self,
        service_url: str,
        conversation_id: str,
        activity_id: str,
        activity: dict[str, Any],
    ) -> None:
        """Replace a sent activity (a card whose subject changed) in place."""
        path = (
            f"v3/conversations/{quote(conversation_id, safe='')}"
            f"/activities/{quote(activity_id, safe='')}"
        )
        self._call("PUT", service_url, path, {**activity, "id": activity_id})

    def members(self, service_url: str, conversation_id: str) -> list[ChannelAccount]:
        """The members of a conversation."""
        path = f"v3/conversations/{quote(conversation_id, safe='')}/members"
        answer = self._call("GET", service_url, path, None)
        items = answer if isinstance(answer, list) else []
        return [ChannelAccount.model_validate(item) for item in items]

    def _call(self, method: str, service_url: str, path: str, body: dict[str, Any] | None) -> Any:
        url = f"{_checked(service_url).rstrip('/')}/{path}"
        headers = {"Authorization": f"Bearer {self._token()}"}
        try:
            response = self._session.request(
                method, url, json=body, headers=headers, timeout=self._timeout
            )
        except requests.RequestException as e:
            raise BotConnectorError(0, "Unreachable", type(e).__name__) from e
        if response.status_code >= 400:
            raise _error(response)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError as e:
            raise BotConnectorError(502, "BadResponse", "the answer is not JSON") from e


def _checked(service_url: str) -> str:
    parts = urlsplit(service_url)
    if parts.scheme == "https" and parts.hostname:
        return service_url
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return service_url
    raise BotConnectorError(400, "UntrustedServiceUrl", "service URLs must be https")


def _error(response: requests.Response) -> BotConnectorError:
    try:
        parsed = _ErrorBody.model_validate(response.json())
    except (ValueError, ValidationError):
        parsed = _ErrorBody()
    codes = {parsed.error.code.lower(), (parsed.sub_code or "").lower()}
    inner = parsed.error.inner_http_error or {}
    inner_body = inner.get("body") if isinstance(inner.get("body"), dict) else {}
    if isinstance(inner_body, dict) and isinstance(inner_body.get("subCode"), str):
        codes.add(inner_body["subCode"].lower())
    code = parsed.error.code or f"Http{response.status_code}"
    message = parsed.error.message[:300]
    if response.status_code == 403 and codes & BLOCKED_CODES:
        return MessageWritesBlocked(403, code, message)
    return BotConnectorError(
        response.status_code, code, message, retry_after=_retry_after(response)
    )


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None
