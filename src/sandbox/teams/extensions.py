"""The message extension as Teams drives it: search invokes, link unfurls, and the cards a
user shares into a group chat, whose buttons every member may press.

Shapes (Teams docs, "Respond to search command", "Link unfurling", "Universal Actions for
search based message extensions"):

- search: `invoke` `composeExtension/query`, `value` = `{commandId, parameters: [{name,
  value}], queryOptions: {skip, count}}`; the default query when the extension opens has
  the parameter `initialRun` = `"true"`. The bot answers within 5 s with HTTP 200 and
  `{"composeExtension": {"type": "result", "attachmentLayout": "list", "attachments"}}` (or
  `type: message` with `text`). An Adaptive Card result without a `preview` (hero or
  thumbnail) shows no preview: the sandbox refuses it, as a person would see nothing.
- unfurl: `invoke` `composeExtension/queryLink`, `value` = `{url}`; only the first attachment
  is used, it needs a `preview`, and an Adaptive Card must be 1.3 or earlier. No attachment:
  the link stays a link.
- a chosen result is posted by the user into the chat (the bot gets no activity for it);
  with Action.Execute in it Teams adds the bot to the chat (just-in-time install). A press
  is an `adaptiveCard/action` invoke from the member who pressed, in that conversation
  (`conversationType: groupChat`); the card the bot answers with replaces the card *for that
  member only*. Opening the chat runs `refresh` for the members it lists in `userIds`
  (`29:` ids or `8:orgid:{Entra id}`), or for every member of a chat of at most 60 without a
  list, each getting their own view.

Control routes (under `/_sandbox/teams/`): `{user}/extension/query`,
`{user}/extension/queryLink`, `chats` (a group chat of users), `{user}/chats/{id}/messages`
(share a card), `{user}/chats/{id}/activities/{activity}/actions` (press),
`{user}/chats/{id}/open` (refresh as Teams does when the chat is shown), `{user}/chats/{id}`
(what that member sees).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, Response, request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from sandbox.directory import User
from sandbox.teams.channel import BotAnswer
from sandbox.teams.chats import CARD_CONTENT_TYPE, teams_user_id, utc_now

QUERY = "composeExtension/query"
QUERY_LINK = "composeExtension/queryLink"
PREVIEW_TYPES = {"application/vnd.microsoft.card.thumbnail", "application/vnd.microsoft.card.hero"}
RESULT_TYPES = PREVIEW_TYPES | {
    CARD_CONTENT_TYPE,
    "application/vnd.microsoft.teams.card.o365connector",
}
UNFURL_VERSIONS = {"1.0", "1.1", "1.2", "1.3"}
CARD_VERSIONS = UNFURL_VERSIONS | {"1.4", "1.5"}
AUTO_REFRESH_MEMBERS = 60


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class QueryInput(_Wire):
    """`POST /_sandbox/teams/{user}/extension/query`: what the user typed (none: the default
    query Teams sends when the extension opens)."""

    text: str | None = Field(default=None, max_length=500)
    command_id: str = "searchDeals"
    parameter: str = "searchText"
    skip: int = Field(default=0, ge=0)
    count: int = Field(default=25, ge=1, le=100)
    chat_id: str | None = None
    """A group chat the compose box is in; the user's 1:1 chat with the bot otherwise."""


class LinkInput(_Wire):
    """`POST /_sandbox/teams/{user}/extension/queryLink`: a link pasted in the compose box."""

    url: str = Field(min_length=1, max_length=2048)
    chat_id: str | None = None


class GroupChatInput(_Wire):
    """`POST /_sandbox/teams/chats`: a group chat of these users (keys: UPN, mail or id)."""

    members: list[str] = Field(min_length=2, max_length=250)
    topic: str | None = None


class ShareInput(_Wire):
    """`POST /_sandbox/teams/{user}/chats/{id}/messages`: the user sends a chosen result."""

    attachment: dict[str, Any]
    """One result of a search answer (`contentType`, `content`; its preview is dropped)."""


class PressInput(_Wire):
    """`POST .../chats/{id}/activities/{activity}/actions`: a member presses a button."""

    verb: str
    data: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, Any] = Field(default_factory=dict)
    trigger: Literal["manual", "automatic"] = "manual"


@dataclass
class SharedCard:
    """A card a member posted; `views` holds each member's own version after a press or a
    refresh (Universal Actions: the invoke's answer replaces the card for that user only)."""

    id: str
    sender: str
    sent_at: datetime
    attachment: dict[str, Any]
    views: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class GroupChat:
    """A group chat; the bot joins when a card with Action.Execute is shared (JIT install)."""

    id: str
    topic: str | None
    members: list[str]
    """Entra ids."""
    cards: dict[str, SharedCard] = field(default_factory=dict)
    bot_added: bool = False


class BadAnswer(Exception):
    """The bot's answer is not what Teams takes: Teams would show an error."""


def _problem(message: str) -> BadAnswer:
    return BadAnswer(message)


def check_answer(answer: BotAnswer, *, unfurl: bool) -> list[dict[str, Any]]:
    """The attachments Teams would show for a message-extension answer; raises on what Teams
    would show as an error instead (not 200, not the prescribed envelope)."""
    if answer.status != 200 or not isinstance(answer.body, dict):
        raise _problem(f"the bot answered {answer.status}: Teams shows an error")
    envelope = answer.body.get("composeExtension")
    if not isinstance(envelope, dict):
        raise _problem("no composeExtension in the answer")
    kind = envelope.get("type")
    if kind == "message":
        if not isinstance(envelope.get("text"), str):
            raise _problem("a message answer needs text")
        return []
    if kind != "result":
        raise _problem(f"composeExtension.type {kind!r} is not result or message")
    if envelope.get("attachmentLayout") not in ("list", "grid"):
        raise _problem("composeExtension.attachmentLayout must be list or grid")
    attachments = envelope.get("attachments")
    if not isinstance(attachments, list):
        raise _problem("composeExtension.attachments must be a list")
    for item in attachments:
        _check_attachment(item, unfurl=unfurl)
    return attachments[:1] if unfurl else attachments


def _check_attachment(item: Any, *, unfurl: bool) -> None:
    if not isinstance(item, dict) or item.get("contentType") not in RESULT_TYPES:
        raise _problem("an attachment has no supported contentType")
    preview = item.get("preview")
    if item["contentType"] not in PREVIEW_TYPES and not isinstance(preview, dict):
        raise _problem("an Adaptive Card result needs a preview (hero or thumbnail)")
    if isinstance(preview, dict):
        if preview.get("contentType") not in PREVIEW_TYPES | (
            {CARD_CONTENT_TYPE} if unfurl else set()
        ):
            raise _problem("a preview must be a hero or thumbnail card")
        if not isinstance(preview.get("content"), dict):
            raise _problem("a preview has no content")
    if item["contentType"] == CARD_CONTENT_TYPE:
        content = item.get("content")
        if not isinstance(content, dict) or content.get("type") != "AdaptiveCard":
            raise _problem("an Adaptive Card attachment's content is not an AdaptiveCard")
        allowed = UNFURL_VERSIONS if unfurl else CARD_VERSIONS
        if str(content.get("version")) not in allowed:
            where = "link unfurling" if unfurl else "message extensions"
            raise _problem(f"Adaptive Card {content.get('version')} is not rendered in {where}")


def _refresh_of(card: dict[str, Any]) -> dict[str, Any] | None:
    refresh = card.get("refresh")
    return refresh if isinstance(refresh, dict) else None


def _has_execute(node: Any) -> bool:
    if isinstance(node, dict):
        if node.get("type") == "Action.Execute":
            return True
        return any(_has_execute(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_execute(v) for v in node)
    return False


def register(
    blueprint: Blueprint,
    tenant: Any,
    side: Any,
    *,
    error: Callable[[int, str, str], Exception],
    user_or_404: Callable[[str], User],
    to_bot: Callable[[dict[str, Any]], BotAnswer],
    activity_base: Callable[..., dict[str, Any]],
    button_data: Callable[[dict[str, Any], str], dict[str, Any] | None],
    json: Callable[..., Response],
) -> None:
    """Add the message-extension and group-chat routes to the Teams blueprint (`tenant` and
    `side` are the blueprint's Tenant and TeamsSide; `error` its ConnectorError)."""
    ConnectorError = error  # noqa: N806 - raised like the blueprint's own errors

    @blueprint.errorhandler(BadAnswer)
    def bad_answer(problem: BadAnswer) -> Response:
        body = {"error": {"code": "BadBotResponse", "message": str(problem)}}
        return json(body, 502)

    groups: dict[int, dict[str, GroupChat]] = {}

    def chats() -> dict[str, GroupChat]:
        # forgotten with the rest of the Teams state when the tenant is reset
        return groups.setdefault(id(side.chats), {})

    def group_or_404(chat_id: str, user: User) -> GroupChat:
        chat = chats().get(chat_id)
        if chat is None:
            raise ConnectorError(404, "SandboxControlError", "No such group chat.")
        if user.id not in chat.members:
            raise ConnectorError(403, "SandboxControlError", "The user is not in that chat.")
        return chat

    def base_for(user: User, chat_id: str | None) -> dict[str, Any]:
        with tenant.lock:
            personal = side.chats.chat_for(user.id)
            bot_id = side.chats.bot.bot_id
            group = chats().get(chat_id) if chat_id else None
        if chat_id and (group is None or user.id not in group.members):
            raise ConnectorError(404, "SandboxControlError", "No such group chat for the user.")
        base = activity_base(user, personal, tenant.tenant_id, bot_id)
        if group is not None:
            base["conversation"] = {
                "conversationType": "groupChat",
                "isGroup": True,
                "tenantId": tenant.tenant_id,
                "id": group.id,
                "name": group.topic,
            }
        return base

    @blueprint.post("/_sandbox/teams/<key>/extension/query")
    def extension_query(key: str) -> Response:
        user = user_or_404(key)
        given = QueryInput.model_validate(request.get_json(force=True))
        if given.text is None:
            parameters = [{"name": "initialRun", "value": "true"}]
        else:
            parameters = [{"name": given.parameter, "value": given.text}]
        activity = {
            **base_for(user, given.chat_id),
            "type": "invoke",
            "name": QUERY,
            "value": {
                "commandId": given.command_id,
                "parameters": parameters,
                "queryOptions": {"skip": given.skip, "count": given.count},
            },
        }
        activity["channelData"]["source"] = {"name": "compose"}
        answer = to_bot(activity)
        shown = check_answer(answer, unfurl=False)
        return json({**answer.to_json(), "results": shown})

    @blueprint.post("/_sandbox/teams/<key>/extension/queryLink")
    def extension_query_link(key: str) -> Response:
        user = user_or_404(key)
        given = LinkInput.model_validate(request.get_json(force=True))
        activity = {
            **base_for(user, given.chat_id),
            "type": "invoke",
            "name": QUERY_LINK,
            "value": {"url": given.url},
        }
        activity["channelData"]["source"] = {"name": "compose"}
        answer = to_bot(activity)
        shown = check_answer(answer, unfurl=True)
        return json({**answer.to_json(), "unfurled": shown[0] if shown else None})

    @blueprint.post("/_sandbox/teams/chats")
    def new_group_chat() -> Response:
        given = GroupChatInput.model_validate(request.get_json(force=True))
        members = [user_or_404(k).id for k in given.members]
        chat = GroupChat(f"19:{secrets.token_hex(16)}@thread.v2", given.topic, members)
        with tenant.lock:
            chats()[chat.id] = chat
        return json({"id": chat.id, "members": members}, 201)

    @blueprint.post("/_sandbox/teams/<key>/chats/<chat_id>/messages")
    def share(key: str, chat_id: str) -> Response:
        user = user_or_404(key)
        given = ShareInput.model_validate(request.get_json(force=True))
        sent = {k: v for k, v in given.attachment.items() if k != "preview"}
        with tenant.lock:
            chat = group_or_404(chat_id, user)
            line = SharedCard(side.chats.new_activity_id(), user.id, utc_now(), sent)
            chat.cards[line.id] = line
            if _has_execute(sent.get("content")):
                chat.bot_added = True  # just-in-time install
        return json({"id": line.id, "botAdded": chat.bot_added}, 201)

    def shown_to(chat: GroupChat, line: SharedCard, entra_id: str) -> dict[str, Any]:
        return line.views.get(entra_id, line.attachment)

    def press_as(user: User, chat: GroupChat, line: SharedCard, given: PressInput) -> BotAnswer:
        card = shown_to(chat, line, user.id)
        button = button_data({"attachments": [card]}, given.verb) if not given.data else None
        data = {**(button or {}), **given.data, **given.inputs}
        activity = {
            **base_for(user, chat.id),
            "type": "invoke",
            "name": "adaptiveCard/action",
            "replyToId": line.id,
            "value": {
                "action": {"type": "Action.Execute", "verb": given.verb, "data": data},
                "trigger": given.trigger,
            },
        }
        answer = to_bot(activity)
        body = answer.body
        if (
            answer.status == 200
            and isinstance(body, dict)
            and body.get("statusCode") == 200
            and body.get("type") == CARD_CONTENT_TYPE
            and isinstance(body.get("value"), dict)
        ):
            with tenant.lock:
                line.views[user.id] = {"contentType": CARD_CONTENT_TYPE, "content": body["value"]}
        return answer

    @blueprint.post("/_sandbox/teams/<key>/chats/<chat_id>/activities/<activity_id>/actions")
    def press_in_group(key: str, chat_id: str, activity_id: str) -> Response:
        user = user_or_404(key)
        given = PressInput.model_validate(request.get_json(force=True))
        with tenant.lock:
            chat = group_or_404(chat_id, user)
            line = chat.cards.get(activity_id)
        if line is None:
            raise ConnectorError(404, "SandboxControlError", "No such card in the chat.")
        if not chat.bot_added:
            raise ConnectorError(409, "SandboxControlError", "The bot is not in this chat.")
        return json(press_as(user, chat, line, given).to_json())

    @blueprint.post("/_sandbox/teams/<key>/chats/<chat_id>/open")
    def open_group_chat(key: str, chat_id: str) -> Response:
        """The member looks at the chat: Teams refreshes each card listed for them."""
        user = user_or_404(key)
        with tenant.lock:
            chat = group_or_404(chat_id, user)
            lines = list(chat.cards.values())
        ids = {teams_user_id(user.id), f"8:orgid:{user.id}"}
        refreshed = []
        for line in lines:
            content = shown_to(chat, line, user.id).get("content")
            refresh = _refresh_of(content) if isinstance(content, dict) else None
            if refresh is None or not chat.bot_added:
                continue
            listed = refresh.get("userIds")
            if listed is None and len(chat.members) > AUTO_REFRESH_MEMBERS:
                continue
            if listed is not None and not ids & set(listed):
                continue
            answer = press_as(user, chat, line, PressInput(verb="refresh", trigger="automatic"))
            refreshed.append({"id": line.id, **answer.to_json()})
        return json({"refreshed": refreshed})

    @blueprint.get("/_sandbox/teams/<key>/chats/<chat_id>")
    def group_chat_view(key: str, chat_id: str) -> Response:
        user = user_or_404(key)
        with tenant.lock:
            chat = group_or_404(chat_id, user)
            cards = [
                {
                    "id": line.id,
                    "sender": line.sender,
                    "ownView": user.id in line.views,
                    "attachment": shown_to(chat, line, user.id),
                }
                for line in chat.cards.values()
            ]
        return json({"id": chat.id, "members": chat.members, "cards": cards})
