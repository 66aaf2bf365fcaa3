"""The Teams side's state: which users have the bot, their 1:1 chats, and what was said in them.

Pure state (no Flask, no HTTP); callers hold the tenant's lock around every change.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_ACTIVITY_BYTES = 40 * 1024
"""Teams refuses bot messages over about 40 KB (Teams docs, "Format your bot messages")."""


def teams_user_id(entra_id: str) -> str:
    """A stable Teams user id (`29:...`) for a directory user, like the ones Teams assigns."""
    digest = hashlib.sha256(entra_id.lower().encode()).digest()[:33]
    return "29:1" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def personal_chat_id(bot_id: str, entra_id: str) -> str:
    """The 1:1 chat's id; the same form Graph gives for the app installation's chat."""
    return f"19:{bot_id}_{entra_id}@unq.gbl.spaces"


@dataclass
class ChatLine:
    """One thing in a chat: what the user sent, or a bot activity (all its versions)."""

    id: str
    sender: str
    """`user` or `bot`."""
    sent_at: datetime
    versions: list[dict[str, Any]]
    """The activity as posted, then as each PUT replaced it; the last one is what shows."""
    reply_to_id: str | None = None

    @property
    def latest(self) -> dict[str, Any]:
        """What the chat shows now."""
        return self.versions[-1]


@dataclass
class Chat:
    """A user's 1:1 chat with the bot."""

    id: str
    entra_id: str
    teams_id: str
    lines: dict[str, ChatLine] = field(default_factory=dict)


@dataclass
class TeamsUserState:
    """What the sandbox knows about one user and the bot."""

    entra_id: str
    installed: bool = False
    blocked: bool = False


@dataclass
class BotRegistration:
    """Where the bot is and who it is."""

    endpoint: str | None
    bot_id: str


class TeamsChats:
    """Every user's chat with the one bot of the tenant."""

    def __init__(self, bot: BotRegistration) -> None:
        self.bot = bot
        self.users: dict[str, TeamsUserState] = {}
        self.chats: dict[str, Chat] = {}
        self._counter = itertools.count(1)

    def user(self, entra_id: str) -> TeamsUserState:
        """The user's state, made on first use."""
        key = entra_id.lower()
        if key not in self.users:
            self.users[key] = TeamsUserState(key)
        return self.users[key]

    def chat_for(self, entra_id: str) -> Chat:
        """The user's 1:1 chat, opened on first use."""
        chat_id = personal_chat_id(self.bot.bot_id, entra_id.lower())
        if chat_id not in self.chats:
            self.chats[chat_id] = Chat(chat_id, entra_id.lower(), teams_user_id(entra_id))
        return self.chats[chat_id]

    def chat_of_teams_user(self, member_id: str) -> str | None:
        """The Entra id behind a `29:` id (or an Entra id given as is), if known."""
        for state in self.users.values():
            if member_id in (teams_user_id(state.entra_id), state.entra_id):
                return state.entra_id
        return None

    def new_activity_id(self) -> str:
        """An activity id like Teams' (a millisecond timestamp), unique in the sandbox."""
        return f"{int(time.time() * 1000)}{next(self._counter):04d}"

    def post(
        self,
        chat: Chat,
        sender: str,
        activity: dict[str, Any],
        now: datetime,
        reply_to_id: str | None = None,
    ) -> ChatLine:
        """Add an activity to a chat."""
        activity_id = self.new_activity_id()
        stored = {**activity, "id": activity_id, "conversation": {"id": chat.id}}
        line = ChatLine(activity_id, sender, now, [stored], reply_to_id)
        chat.lines[activity_id] = line
        return line

    def replace(self, chat: Chat, activity_id: str, activity: dict[str, Any]) -> ChatLine | None:
        """A new version of a bot activity; None when there is no such activity."""
        line = chat.lines.get(activity_id)
        if line is None or line.sender != "bot":
            return None
        line.versions.append({**activity, "id": activity_id, "conversation": {"id": chat.id}})
        return line


CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"


def graph_message(chat: Chat, line: ChatLine, bot: BotRegistration) -> dict[str, Any]:
    """A chat line as Graph's `chatMessage` (chatmessage.md): a bot's card is an attachment
    whose `content` is the card as a JSON string; the body only refers to it."""
    shown = line.latest
    sent = line.sent_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    attachments = [
        {
            "id": f"{line.id}-{n}",
            "contentType": item.get("contentType"),
            "contentUrl": item.get("contentUrl"),
            "content": json.dumps(item.get("content"))
            if item.get("contentType") == CARD_CONTENT_TYPE
            else item.get("content"),
            "name": item.get("name"),
            "thumbnailUrl": None,
            "teamsAppId": None,
        }
        for n, item in enumerate(shown.get("attachments") or [])
        if isinstance(item, dict)
    ]
    if line.sender == "bot":
        sender: dict[str, Any] = {
            "application": {
                "@odata.type": "#microsoft.graph.teamworkApplicationIdentity",
                "id": bot.bot_id,
                "displayName": None,
                "applicationIdentityType": "bot",
            },
            "device": None,
            "user": None,
        }
    else:
        sender = {
            "application": None,
            "device": None,
            "user": {
                "@odata.type": "#microsoft.graph.teamworkUserIdentity",
                "id": chat.entra_id,
                "displayName": None,
                "userIdentityType": "aadUser",
            },
        }
    if attachments:
        body = {
            "contentType": "html",
            "content": "".join(f'<attachment id="{a["id"]}"></attachment>' for a in attachments),
        }
    else:
        body = {"contentType": "text", "content": str(shown.get("text") or "")}
    return {
        "id": line.id,
        "replyToId": line.reply_to_id,
        "etag": str(len(line.versions)),
        "messageType": "message",
        "createdDateTime": sent,
        "lastModifiedDateTime": sent,
        "lastEditedDateTime": sent if len(line.versions) > 1 else None,
        "deletedDateTime": None,
        "subject": None,
        "summary": shown.get("summary"),
        "chatId": chat.id,
        "importance": "normal",
        "locale": "en-us",
        "webUrl": None,
        "channelIdentity": None,
        "policyViolation": None,
        "eventDetail": None,
        "from": sender,
        "body": body,
        "attachments": attachments,
        "mentions": [],
        "reactions": [],
    }


def activity_size(activity: dict[str, Any]) -> int:
    """Bytes of the activity as JSON (what Teams' size limit counts)."""
    return len(json.dumps(activity, separators=(",", ":"), ensure_ascii=False).encode())


def utc_now() -> datetime:
    """The sandbox's clock for chats."""
    return datetime.now(UTC)
