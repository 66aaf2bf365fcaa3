"""The Teams side's HTTP routes: the Bot Connector, its keys, the control API and the chats page."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import jwt
import requests
from flask import Blueprint, Response, render_template, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from sandbox.authority import BOT_AUDIENCE
from sandbox.directory import User
from sandbox.faults import FaultRule, drop_connection, loses_answer
from sandbox.graph.teams_apps import TeamsApp
from sandbox.request_log import LoggedRequest
from sandbox.teams import extensions
from sandbox.teams.channel import (
    CHANNEL_ID,
    KEYS_PATH,
    METADATA_PATH,
    BotAnswer,
    ChannelKeys,
    post_to_bot,
)
from sandbox.teams.chats import (
    MAX_ACTIVITY_BYTES,
    BotRegistration,
    Chat,
    TeamsChats,
    activity_size,
    graph_message,
    personal_chat_id,
    utc_now,
)
from sandbox.teams.preview import card_html

if TYPE_CHECKING:
    from sandbox.tenant import Tenant

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
_CARD_VERSIONS = {"1.0", "1.1", "1.2", "1.3", "1.4", "1.5"}


log = logging.getLogger(__name__)


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class BotSettingsInput(_Wire):
    """`POST /_sandbox/teams/bot`: where the bot listens and its app id."""

    endpoint: str | None = None
    bot_id: str | None = None


class MessageInput(_Wire):
    """`POST /_sandbox/teams/{user}/messages`."""

    text: str = Field(min_length=1, max_length=28_000)


class ActionInput(_Wire):
    """`POST /_sandbox/teams/{user}/activities/{id}/actions`: a button press."""

    verb: str
    data: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, Any] = Field(default_factory=dict)
    """Values of the card's inputs; Teams merges them into the action's data."""
    submit: bool = False
    """Send it as an old client does: an Action.Submit message, not an invoke."""
    trigger: Literal["manual", "automatic"] = "manual"


def _button_data(activity: dict[str, Any], verb: str) -> dict[str, Any] | None:
    """The data of the shown card's first Action.Execute with this verb (cards nest actions in
    action sets, show-cards and fallbacks)."""
    stack: list[Any] = [a.get("content") for a in activity.get("attachments") or []]
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            if node.get("type") == "Action.Execute" and node.get("verb") == verb:
                data = node.get("data")
                return dict(data) if isinstance(data, dict) else {}
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


class BlockInput(_Wire):
    """`POST /_sandbox/teams/{user}/block`: the user blocks (or unblocks) the bot."""

    blocked: bool = True


class ConnectorError(Exception):
    """A Bot Connector error answer (`{"error": {"code", "message"}}`)."""

    def __init__(
        self, status: int, code: str, message: str, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}


def _blocked() -> ConnectorError:
    # Teams docs ("Analyze bot usage"): a blocked or removed bot gets 403 MessageWritesBlocked.
    return ConnectorError(
        403,
        "ConversationBlockedByUser",
        "User blocked the conversation with the bot.",
        {"innerHttpError": {"statusCode": 403, "body": {"subCode": "MessageWritesBlocked"}}},
    )


class TeamsSide:
    """The state of the tenant's Teams side; forgotten when the tenant is reset."""

    def __init__(self, tenant: Tenant, bot_endpoint: str | None, bot_id: str | None) -> None:
        self.tenant = tenant
        self.keys = ChannelKeys()
        self._initial = BotRegistration(bot_endpoint, (bot_id or tenant.config.client_id).lower())
        self._generation: object = tenant.teams
        self._chats = TeamsChats(BotRegistration(self._initial.endpoint, self._initial.bot_id))
        self.http = requests.Session()

    @property
    def chats(self) -> TeamsChats:
        """The chats; call with the tenant's lock held."""
        # The tenant replaces its Teams state on reset: start over with it.
        if self._generation is not self.tenant.teams:
            self._generation = self.tenant.teams
            self._chats = TeamsChats(BotRegistration(self._initial.endpoint, self._initial.bot_id))
        return self._chats

    def installed(self, user: User) -> bool:
        """Installed by the user, or for them through Graph (an app of the bot's registration)."""
        state = self.chats.user(user.id)
        if state.installed:
            return True
        return any(
            app.azure_ad_app_id.lower() == self.chats.bot.bot_id
            for _, app in self.tenant.teams.installed(user.id)
        )


def create_blueprint(
    tenant: Tenant, *, bot_endpoint: str | None = None, bot_id: str | None = None
) -> Blueprint:
    """The Teams side of a tenant. `bot_endpoint` may also be set later through the control API."""
    side = TeamsSide(tenant, bot_endpoint, bot_id)
    blueprint = Blueprint("teams", __name__, template_folder="templates")
    blueprint.record_once(lambda state: state.app.extensions.__setitem__("sandbox.teams", side))

    @blueprint.errorhandler(ConnectorError)
    def refused(error: ConnectorError) -> Response:
        body = {"error": {"code": error.code, "message": error.message, **error.extra}}
        answer = _json(body, error.status)
        if error.status == 429 or "retryAfter" in error.extra:
            answer.headers["Retry-After"] = str(error.extra.get("retryAfter", 1))
        return answer

    # --- the Connector's keys ------------------------------------------------------------------

    @blueprint.get(METADATA_PATH)
    def openid_metadata() -> Response:
        return _json(side.keys.metadata(request.host_url))

    @blueprint.get(KEYS_PATH)
    def signing_keys() -> Response:
        return _json(side.keys.jwks())

    # --- the Bot Connector -----------------------------------------------------------------

    def connector_call(route: str) -> FaultRule | None:
        """Authenticate the bot, then apply faults; logged like Graph calls. A fault that
        loses the answer is returned: the route acts, then answers with ``lost``."""
        line = f"{request.method} {request.path}"
        with tenant.lock:
            fault = tenant.faults.draw(line)
        status = 504 if loses_answer(fault) else 200
        try:
            _check_bot_token(tenant, side, request.headers.get("Authorization"))
            if loses_answer(fault):
                return fault
            if fault is not None:
                raise _fault_error(fault)
            return None
        except ConnectorError as e:
            status = e.status
            raise
        finally:
            tenant.log.record(
                LoggedRequest(
                    time=datetime.now(UTC).isoformat(),
                    method=request.method,
                    path=request.path,
                    route=route,
                    status=status,
                    mailbox=None,
                    in_batch=False,
                )
            )

    def lost(fault: FaultRule) -> tuple[Response, int]:
        """The answer of a request that acted, lost on the way (a reset, or a proxy's 504)."""
        if fault.status == "lost_reset":
            drop_connection(request.environ)
        body = {"error": {"code": "GatewayTimeout", "message": "The upstream did not answer."}}
        return _json(body, 504), 504

    @blueprint.post("/teams/v3/conversations")
    def create_conversation() -> tuple[Response, int]:
        losing = connector_call("/teams/v3/conversations")
        body = _json_body()
        members = body.get("members")
        if not isinstance(members, list) or len(members) != 1 or not isinstance(members[0], dict):
            raise ConnectorError(400, "BadSyntax", "A 1:1 conversation needs exactly one member.")
        member = str(members[0].get("id", ""))
        with tenant.lock:
            entra_id = side.chats.chat_of_teams_user(member) or member
            user = tenant.directory.find(entra_id)
            if user is None:
                raise ConnectorError(404, "NotFound", "The member is not in this tenant.")
            if not side.installed(user):
                raise ConnectorError(
                    403, "BotNotInConversationRoster", "The bot is not installed for the user."
                )
            if side.chats.user(user.id).blocked:
                raise _blocked()
            chat = side.chats.chat_for(user.id)
        if losing is not None:
            return lost(losing)
        return _json({"id": chat.id}), 201

    def open_chat(conversation_id: str) -> tuple[Chat, User]:
        chat = side.chats.chats.get(conversation_id)
        if chat is None:
            # A chat Graph named for an installation exists before anyone wrote in it.
            owner = next(
                (
                    u
                    for u in tenant.directory.all()
                    if personal_chat_id(side.chats.bot.bot_id, u.id) == conversation_id
                    and side.installed(u)
                ),
                None,
            )
            if owner is None:
                raise ConnectorError(404, "ConversationNotFound", "Conversation not found.")
            chat = side.chats.chat_for(owner.id)
        user = tenant.directory.find(chat.entra_id)
        if user is None:
            raise ConnectorError(404, "ConversationNotFound", "Conversation not found.")
        if side.chats.user(user.id).blocked:
            raise _blocked()
        return chat, user

    @blueprint.post("/teams/v3/conversations/<conversation_id>/activities")
    @blueprint.post("/teams/v3/conversations/<conversation_id>/activities/<reply_to>")
    def send_activity(conversation_id: str, reply_to: str | None = None) -> tuple[Response, int]:
        losing = connector_call("/teams/v3/conversations/{id}/activities")
        activity = _checked_activity(_json_body())
        with tenant.lock:
            chat, _ = open_chat(conversation_id)
            line = side.chats.post(chat, "bot", activity, utc_now(), reply_to)
        if losing is not None:
            return lost(losing)
        return _json({"id": line.id}), 201

    @blueprint.put("/teams/v3/conversations/<conversation_id>/activities/<activity_id>")
    def update_activity(conversation_id: str, activity_id: str) -> Response | tuple[Response, int]:
        losing = connector_call("/teams/v3/conversations/{id}/activities/{activityId}")
        activity = _checked_activity(_json_body())
        with tenant.lock:
            chat, _ = open_chat(conversation_id)
            if side.chats.replace(chat, activity_id, activity) is None:
                raise ConnectorError(404, "ActivityNotFound", "Activity not found.")
        if losing is not None:
            return lost(losing)
        return _json({"id": activity_id})

    @blueprint.get("/teams/v3/conversations/<conversation_id>/members")
    def members(conversation_id: str) -> Response:
        connector_call("/teams/v3/conversations/{id}/members")
        with tenant.lock:
            chat, user = open_chat(conversation_id)
            member = _member(user, chat, tenant.tenant_id)
        return _json([member])

    # --- simulated Teams users (control) ---------------------------------------------------

    @blueprint.errorhandler(ValidationError)
    def bad_input(error: ValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        return _json({"error": {"code": "SandboxControlError", "message": problems}}, 400)

    @blueprint.get("/_sandbox/teams/bot")
    def bot_settings() -> Response:
        with tenant.lock:
            bot = side.chats.bot
            return _json(
                {
                    "endpoint": bot.endpoint,
                    "botId": bot.bot_id,
                    "openIdMetadata": request.host_url.rstrip("/") + METADATA_PATH,
                    "serviceUrl": _service_url(),
                }
            )

    @blueprint.post("/_sandbox/teams/bot")
    def set_bot() -> Response:
        given = BotSettingsInput.model_validate(request.get_json(force=True))
        with tenant.lock:
            bot = side.chats.bot
            if given.endpoint is not None:
                bot.endpoint = given.endpoint or None
            if given.bot_id:
                bot.bot_id = given.bot_id.lower()
        return bot_settings()

    def user_or_404(key: str) -> User:
        with tenant.lock:
            user = tenant.directory.find(key)
        if user is None:
            raise ConnectorError(404, "SandboxControlError", f"No user '{key}' in the tenant.")
        return user

    def to_bot(activity: dict[str, Any]) -> BotAnswer:
        with tenant.lock:
            bot = BotRegistration(side.chats.bot.endpoint, side.chats.bot.bot_id)
        if not bot.endpoint:
            raise ConnectorError(
                409, "SandboxControlError", "No bot endpoint: POST /_sandbox/teams/bot first."
            )
        token = side.keys.sign(bot.bot_id, activity["serviceUrl"])
        return post_to_bot(bot.endpoint, activity, token, side.http)

    def send_install(user: User, service_url: str) -> tuple[Chat, list[BotAnswer]]:
        """What Teams sends the bot when a user gets the app: installationUpdate, then the
        conversationUpdate that adds the user and the bot to their 1:1 chat."""
        with tenant.lock:
            if not side.chats.bot.endpoint:
                raise ConnectorError(
                    409, "SandboxControlError", "No bot endpoint: POST /_sandbox/teams/bot first."
                )
            side.chats.user(user.id).installed = True
            chat = side.chats.chat_for(user.id)
            bot_id = side.chats.bot.bot_id
        base = _activity_base(user, chat, tenant.tenant_id, bot_id, service_url)
        update = {**base, "type": "installationUpdate", "action": "add"}
        members_added = [
            {"id": chat.teams_id, "aadObjectId": user.id},
            {"id": f"28:{bot_id}"},
        ]
        joined = {**base, "type": "conversationUpdate", "membersAdded": members_added}
        return chat, [to_bot(update), to_bot(joined)]

    def installed_through_graph(user_id: str, app: TeamsApp, base_url: str) -> None:
        """Installing our bot's app through Graph makes Teams greet the bot, as a user's own
        install does; Teams sends that on its own time, so it goes from a thread."""
        with tenant.lock:
            ours = app.azure_ad_app_id.lower() == side.chats.bot.bot_id.lower()
            user = tenant.directory.find(user_id)
            ready = bool(side.chats.bot.endpoint)
        if not (ours and ready and user is not None):
            return

        def greet() -> None:
            try:
                send_install(user, base_url.rstrip("/") + "/teams/")
            except Exception:  # the bot being down must not break the Graph call that did it
                log.warning("install activity for %s was not delivered", user_id, exc_info=True)

        threading.Thread(target=greet, name="teams-install", daemon=True).start()

    tenant.teams.on_install.append(installed_through_graph)

    def read_chat(chat_id: str) -> list[dict[str, Any]] | None:
        """Graph's view of a chat (`GET /chats/{id}/messages`); the caller holds the lock."""
        chat = side.chats.chats.get(chat_id)
        if chat is None:
            return None
        bot = side.chats.bot
        return [graph_message(chat, line, bot) for line in chat.lines.values()]

    tenant.teams.chat_readers.append(read_chat)

    @blueprint.post("/_sandbox/teams/<key>/install")
    def install(key: str) -> Response:
        user = user_or_404(key)
        chat, answers = send_install(user, _service_url())
        return _json(
            {
                "conversationId": chat.id,
                "teamsUserId": chat.teams_id,
                "botAnswers": [a.to_json() for a in answers],
            }
        )

    @blueprint.post("/_sandbox/teams/<key>/block")
    def block(key: str) -> Response:
        user = user_or_404(key)
        given = BlockInput.model_validate(request.get_json(force=True))
        with tenant.lock:
            side.chats.user(user.id).blocked = given.blocked
        return _json({"user": user.id, "blocked": given.blocked})

    @blueprint.post("/_sandbox/teams/<key>/messages")
    def message(key: str) -> Response:
        user = user_or_404(key)
        given = MessageInput.model_validate(request.get_json(force=True))
        with tenant.lock:
            chat = side.chats.chat_for(user.id)
            bot_id = side.chats.bot.bot_id
            activity = {
                **_activity_base(user, chat, tenant.tenant_id, bot_id),
                "type": "message",
                "text": given.text,
                "textFormat": "plain",
            }
            side.chats.post(chat, "user", activity, utc_now())
        return _json(to_bot(activity).to_json())

    @blueprint.post("/_sandbox/teams/<key>/activities/<activity_id>/actions")
    def press(key: str, activity_id: str) -> Response:
        user = user_or_404(key)
        given = ActionInput.model_validate(request.get_json(force=True))
        with tenant.lock:
            chat = side.chats.chat_for(user.id)
            bot_id = side.chats.bot.bot_id
            if activity_id not in chat.lines:
                raise ConnectorError(404, "SandboxControlError", "No such activity in the chat.")
            shown = chat.lines[activity_id].latest
        base = _activity_base(user, chat, tenant.tenant_id, bot_id)
        # Like Teams, a press sends the button's own data (plus the inputs' values).
        button = _button_data(shown, given.verb) if not given.data else None
        data = {**(button or {}), **given.data, **given.inputs}
        if given.submit:
            activity = {
                **base,
                "type": "message",
                "replyToId": activity_id,
                "value": {**data, "verb": given.verb},
            }
        else:
            action = {"type": "Action.Execute", "verb": given.verb, "data": data}
            activity = {
                **base,
                "type": "invoke",
                "name": "adaptiveCard/action",
                "replyToId": activity_id,
                "value": {"action": action, "trigger": given.trigger},
            }
        answer = to_bot(activity)
        card = _card_from_invoke_answer(answer)
        if card is not None:
            # Teams shows the card the bot answered with in place of the one pressed.
            with tenant.lock:
                replaced = {"type": "message", "attachments": [card]}
                side.chats.replace(chat, activity_id, replaced)
        return _json(answer.to_json())

    @blueprint.get("/_sandbox/teams/<key>/activities")
    def sent(key: str) -> Response:
        user = user_or_404(key)
        with tenant.lock:
            chat = side.chats.chats.get(side.chats.chat_for(user.id).id)
            lines = list(chat.lines.values()) if chat else []
            value = [
                {
                    **line.latest,
                    "versions": len(line.versions),
                    "sentAt": line.sent_at.isoformat(),
                    "replyToId": line.reply_to_id,
                }
                for line in lines
                if line.sender == "bot"
            ]
        return _json({"value": value})

    @blueprint.get("/_sandbox/teams/<key>")
    def user_state(key: str) -> Response:
        user = user_or_404(key)
        with tenant.lock:
            state = side.chats.user(user.id)
            chat = side.chats.chat_for(user.id)
            installed = side.installed(user)
        return _json(
            {
                "user": user.id,
                "teamsUserId": chat.teams_id,
                "conversationId": chat.id,
                "installed": installed,
                "blocked": state.blocked,
            }
        )

    @blueprint.post("/_sandbox/teams/channel")
    def relay() -> Response:
        """A Teams client (the Agents Playground) posts here: signed and passed on to the bot."""
        activity = _json_body()
        service_url = activity.get("serviceUrl")
        if not isinstance(service_url, str) or not service_url:
            raise ConnectorError(400, "BadSyntax", "The activity has no serviceUrl.")
        answer = to_bot(activity)
        status = answer.status if answer.status else 502
        if answer.body is None:
            return Response(status=status)
        return _json(answer.body, status)

    # --- the message extension and group chats (sandbox.teams.extensions) ----------------
    extensions.register(
        blueprint,
        tenant,
        side,
        error=ConnectorError,
        user_or_404=user_or_404,
        to_bot=to_bot,
        activity_base=_activity_base,
        button_data=_button_data,
        json=_json,
    )

    # --- the chats page --------------------------------------------------------------------

    @blueprint.get("/teams")
    def chats_page() -> str:
        people: list[dict[str, Any]] = []
        with tenant.lock:
            for chat in side.chats.chats.values():
                user = tenant.directory.find(chat.entra_id)
                state = side.chats.user(chat.entra_id)
                lines = [
                    {
                        "sender": line.sender,
                        "when": line.sent_at.strftime("%d %b %H:%M:%S"),
                        "text": line.latest.get("text"),
                        "summary": line.latest.get("summary"),
                        "cards": [
                            {
                                "html": card_html(a.get("content")),
                                "json": json.dumps(a.get("content"), indent=2, ensure_ascii=False),
                            }
                            for a in line.latest.get("attachments") or []
                            if isinstance(a, dict)
                        ],
                        "versions": len(line.versions),
                        "value": json.dumps(line.latest.get("value"))
                        if line.latest.get("value")
                        else None,
                    }
                    for line in chat.lines.values()
                ]
                people.append(
                    {
                        "name": user.display_name if user else chat.entra_id,
                        "upn": user.user_principal_name if user else "",
                        "blocked": state.blocked,
                        "lines": lines,
                    }
                )
            bot = side.chats.bot
            feeds = [  # activity-feed notifications (sendActivityNotification), per user
                {
                    "name": user.display_name if user else user_id,
                    "upn": user.user_principal_name if user else "",
                    "notices": list(reversed(notices)),
                }
                for user_id, notices in tenant.teams.activities.items()
                for user in [tenant.directory.find(user_id)]
            ]
        return render_template(
            "chats.html", people=people, bot=bot, tenant=tenant.config, feeds=feeds
        )

    return blueprint


def _service_url() -> str:
    return request.host_url.rstrip("/") + "/teams/"


def _activity_base(
    user: User, chat: Chat, tenant_id: str, bot_id: str, service_url: str | None = None
) -> dict[str, Any]:
    now = utc_now()
    return {
        "id": f"f:{now.timestamp():.6f}",
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "serviceUrl": service_url or _service_url(),
        "channelId": CHANNEL_ID,
        "from": {"id": chat.teams_id, "name": user.display_name, "aadObjectId": user.id},
        "conversation": {"conversationType": "personal", "tenantId": tenant_id, "id": chat.id},
        "recipient": {"id": f"28:{bot_id}", "name": "DealBridge"},
        "channelData": {"tenant": {"id": tenant_id}},
        "locale": "en-US",
    }


def _member(user: User, chat: Chat, tenant_id: str) -> dict[str, Any]:
    return {
        "id": chat.teams_id,
        "name": user.display_name,
        "aadObjectId": user.id,
        "givenName": user.given_name,
        "surname": user.surname,
        "email": user.mail,
        "userPrincipalName": user.user_principal_name,
        "tenantId": tenant_id,
        "userRole": "user",
    }


def _check_bot_token(tenant: Tenant, side: TeamsSide, header: str | None) -> None:
    """Only bot tokens this tenant issued to the bot's app (Connector: 401 otherwise)."""
    denied = ConnectorError(401, "Unauthorized", "Authorization has been denied for this request.")
    if not header or not header.lower().startswith("bearer "):
        raise denied
    token = header[7:].strip()
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        keys = {k["kid"]: k for k in tenant.authority.jwks()["keys"]}
        if kid not in keys:
            raise denied
        claims = jwt.decode(
            token,
            jwt.PyJWK(keys[kid], algorithm="RS256"),
            algorithms=["RS256"],
            audience=BOT_AUDIENCE,
            issuer=f"https://sts.windows.net/{tenant.tenant_id}/",
            options={"require": ["exp", "aud", "iss"]},
        )
    except jwt.PyJWTError as e:
        raise denied from e
    with tenant.lock:
        bot_id = side.chats.bot.bot_id
    if str(claims.get("appid", "")).lower() != bot_id:
        raise denied


def _fault_error(fault: FaultRule) -> ConnectorError:
    instead = {"timeout": 504, "unreadable": 500, "incomplete": 500}
    status = instead.get(str(fault.status)) or int(fault.status)
    extra: dict[str, Any] = {}
    if fault.retry_after is not None:
        extra["retryAfter"] = fault.retry_after
    code = "TooManyRequests" if status == 429 else "ServiceError"
    return ConnectorError(status, code, "Injected by a sandbox fault.", extra)


def _json_body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ConnectorError(400, "BadSyntax", "The body must be a JSON object.")
    return body


def _checked_activity(activity: dict[str, Any]) -> dict[str, Any]:
    """What Teams refuses: too big, or an Adaptive Card newer than 1.5."""
    if activity_size(activity) > MAX_ACTIVITY_BYTES:
        raise ConnectorError(413, "MessageSizeTooBig", "Message size too large.")
    for attachment in activity.get("attachments") or []:
        if not isinstance(attachment, dict):
            raise ConnectorError(400, "BadSyntax", "An attachment must be an object.")
        if attachment.get("contentType") == CARD_CONTENT_TYPE:
            content = attachment.get("content")
            if not isinstance(content, dict) or content.get("type") != "AdaptiveCard":
                raise ConnectorError(400, "BadSyntax", "The card is not an AdaptiveCard.")
            if str(content.get("version")) not in _CARD_VERSIONS:
                raise ConnectorError(
                    400, "BadSyntax", "Bots may send Adaptive Cards up to version 1.5."
                )
    return activity


def _card_from_invoke_answer(answer: BotAnswer) -> dict[str, Any] | None:
    body = answer.body
    if answer.status != 200 or not isinstance(body, dict):
        return None
    if body.get("statusCode") == 200 and body.get("type") == CARD_CONTENT_TYPE:
        value = body.get("value")
        if isinstance(value, dict):
            return {"contentType": CARD_CONTENT_TYPE, "content": value}
    return None


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json; charset=utf-8")
