"""Inbound activities, card actions and the answers to them.

A rep presses a card button: Teams sends an `invoke` activity named `adaptiveCard/action`
(Action.Execute) or, in clients without Universal Actions, a `message` whose `value` is the
Action.Submit fallback's data (it carries `verb`). `parse_card_action` turns either into one
typed action; the invoke answer is built with `card_response`, `message_response` or
`error_response` (Teams docs: Universal Actions, "adaptiveCard/action invoke response").
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from cards.models import CardKind, MeetingOutcomeChoice, SnoozeOption

ADAPTIVE_CARD_ACTION = "adaptiveCard/action"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MESSAGE_CONTENT_TYPE = "application/vnd.microsoft.activity.message"
ERROR_CONTENT_TYPE = "application/vnd.microsoft.error"

STAGE_INPUT = "stage"
"""Id of the Input.ChoiceSet holding the stage to move a deal to."""
NOTE_INPUT = "note"
"""Id of the Input.Text holding a note."""
OUTCOME_INPUT = "outcome"
"""Id of the Input.ChoiceSet holding a meeting's outcome."""
NOTE_MAX_LENGTH = 1000
"""Longest note a card accepts."""

Verb = Literal[
    "done",
    "snooze",
    "advance",
    "note",
    "pick_deal",
    "wrong_deal",
    "meeting_outcome",
    "refresh",
    # the rep's own controls
    "withdraw_meeting",
    "undo_withdraw",
    "no_show",
]


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


# --- inbound activity ------------------------------------------------------------------------


class ChannelAccount(WireModel):
    """A user or bot in a conversation."""

    model_config = ConfigDict(extra="allow")

    id: str
    """Channel user id, e.g. `29:1a2b...` in Teams."""
    name: str | None = None
    aad_object_id: str | None = None
    """The Entra object id of a Teams user."""
    role: str | None = None


class ConversationAccount(WireModel):
    """The conversation an activity belongs to."""

    model_config = ConfigDict(extra="allow")

    id: str
    tenant_id: str | None = None
    conversation_type: str | None = None
    """`personal`, `groupChat` or `channel` in Teams."""
    is_group: bool | None = None
    name: str | None = None


class TenantInfo(WireModel):
    """The Entra tenant."""

    model_config = ConfigDict(extra="allow")

    id: str


class ChannelData(WireModel):
    """Teams' channel data; only the tenant is read, the rest is kept."""

    model_config = ConfigDict(extra="allow")

    tenant: TenantInfo | None = None


class Activity(WireModel):
    """A Bot Framework activity as Teams posts it to `/api/messages` (unknown fields kept)."""

    model_config = ConfigDict(extra="allow")

    type: str
    """`message`, `invoke`, `conversationUpdate`, `installationUpdate`..."""
    id: str | None = None
    timestamp: datetime | None = None
    service_url: str | None = None
    """Where to answer; keep it for proactive messages."""
    channel_id: str | None = None
    """`msteams` from Teams."""
    from_: ChannelAccount | None = Field(default=None, alias="from")
    conversation: ConversationAccount | None = None
    recipient: ChannelAccount | None = None
    text: str | None = None
    value: Any = None
    """Invoke payload, or an Action.Submit's data."""
    name: str | None = None
    """Invoke name, e.g. `adaptiveCard/action`."""
    members_added: list[ChannelAccount] | None = None
    reply_to_id: str | None = None
    locale: str | None = None
    channel_data: ChannelData | None = None

    @property
    def tenant_id(self) -> str | None:
        """The tenant, from `channelData.tenant` or else the conversation."""
        if self.channel_data is not None and self.channel_data.tenant is not None:
            return self.channel_data.tenant.id
        return self.conversation.tenant_id if self.conversation is not None else None


# --- card actions ----------------------------------------------------------------------------


class ButtonData(WireModel):
    """What a card button carries back (builders write it, `parse_card_action` reads it)."""

    model_config = ConfigDict(extra="forbid")

    view: CardKind
    """Which card the button is on, so the answer can be the same card refreshed."""
    card_stamp: str | None = Field(default=None, alias="card")
    """The version of the state the card showed."""
    reminder_id: str | None = None
    deal_id: str | None = None
    interaction_id: str | None = None
    snooze: SnoozeOption | None = None
    decision: Literal["reschedule", "held", "drop"] | None = None
    """A no-show card's answer."""

    def to_data(self) -> dict[str, Any]:
        """The `data` object of an Action.Execute."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _blank_to_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


OptionalNote = (
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=NOTE_MAX_LENGTH)] | None
)


class CardAction(WireModel):
    """Common to every action: the card it came from and how it was triggered."""

    # Input values of other forms on the card and Teams' own keys are merged into the data.
    model_config = ConfigDict(extra="ignore", frozen=True)

    view: CardKind | None = None
    card_stamp: str | None = Field(default=None, alias="card")
    """The version of the state the card showed; compare it to spot a stale card."""
    trigger: Literal["manual", "automatic"] | None = None
    """`automatic` for a refresh Teams ran by itself."""


class Done(CardAction):
    """Mark a reminder done."""

    verb: Literal["done"]
    reminder_id: NonEmpty


class Snooze(CardAction):
    """Snooze a reminder: one day, three days or to next week, in the rep's working time."""

    verb: Literal["snooze"]
    reminder_id: NonEmpty
    option: SnoozeOption = Field(alias="snooze")


class Advance(CardAction):
    """Move a deal to a later stage."""

    verb: Literal["advance"]
    deal_id: NonEmpty
    stage: NonEmpty
    """The chosen stage's id."""


class Note(CardAction):
    """Log a note on a deal as an interaction."""

    verb: Literal["note"]
    deal_id: NonEmpty
    text: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NOTE_MAX_LENGTH)
    ] = Field(alias=NOTE_INPUT)


class PickDeal(CardAction):
    """Log a meeting (interaction) on the deal the rep chose."""

    verb: Literal["pick_deal"]
    interaction_id: NonEmpty
    deal_id: NonEmpty


class WrongDeal(CardAction):
    """The rep says a logged meeting is on the wrong deal: answer with the pick-a-deal card."""

    verb: Literal["wrong_deal"]
    interaction_id: NonEmpty


class MeetingOutcome(CardAction):
    """How a held meeting went, an optional note and an optional next stage."""

    verb: Literal["meeting_outcome"]
    interaction_id: NonEmpty
    deal_id: NonEmpty
    outcome: MeetingOutcomeChoice
    note: Annotated[OptionalNote, BeforeValidator(_blank_to_none)] = Field(
        default=None, alias=NOTE_INPUT
    )
    stage: Annotated[str | None, BeforeValidator(_blank_to_none)] = Field(
        default=None, alias=STAGE_INPUT
    )
    """The stage to move to; None keeps the current one."""


class WithdrawMeeting(CardAction):
    """The rep's "Don't log this meeting": withdraw it and keep it out on later rounds."""

    verb: Literal["withdraw_meeting"]
    interaction_id: NonEmpty


class UndoWithdraw(CardAction):
    """Undo "Don't log this meeting" (within a day): the meeting is logged again."""

    verb: Literal["undo_withdraw"]
    interaction_id: NonEmpty


class NoShow(CardAction):
    """The rep's answer on a no-show card: reschedule (a reminder), held anyway, or drop it."""

    verb: Literal["no_show"]
    interaction_id: NonEmpty
    decision: Literal["reschedule", "held", "drop"]


class Refresh(CardAction):
    """Teams asks for the current version of a card (automatically, or the rep pressed refresh)."""

    verb: Literal["refresh"]
    view: CardKind
    reminder_id: str | None = None
    deal_id: str | None = None
    interaction_id: str | None = None


CardActionRequest = Annotated[
    Done
    | Snooze
    | Advance
    | Note
    | PickDeal
    | WrongDeal
    | MeetingOutcome
    | Refresh
    | WithdrawMeeting
    | UndoWithdraw
    | NoShow,
    Field(discriminator="verb"),
]
_REQUEST: TypeAdapter[CardActionRequest] = TypeAdapter(CardActionRequest)

# What to tell the rep when a field is missing or wrong; keys are wire names.
_FIELD_PROBLEMS = {
    "reminderId": "This card does not say which reminder it is about.",
    "dealId": "This card does not say which deal it is about.",
    "interactionId": "This card does not say which meeting it is about.",
    "snooze": "Choose how long to snooze: 1 day, 3 days or next week.",
    STAGE_INPUT: "Choose the stage to move the deal to.",
    NOTE_INPUT: f"Write a note of 1 to {NOTE_MAX_LENGTH} characters.",
    OUTCOME_INPUT: "Choose how the meeting went.",
    "view": "This card does not say what it shows.",
}


class CardActionError(Exception):
    """A card action we cannot apply; `message` is fit to show the rep in Teams."""

    def __init__(self, message: str, *, status: int = 400, code: str = "BadRequest") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def is_card_action(activity: Activity) -> bool:
    """True for an Action.Execute invoke, or an Action.Submit message (its value has a verb)."""
    if activity.type == "invoke":
        return activity.name == ADAPTIVE_CARD_ACTION
    return (
        activity.type == "message"
        and isinstance(activity.value, dict)
        and isinstance(activity.value.get("verb"), str)
    )


def parse_card_action(activity: Activity) -> CardActionRequest:
    """The typed action of an Action.Execute invoke or an Action.Submit message.

    Raises CardActionError (with a message for the rep) for anything else or bad data.
    """
    verb, data, trigger = _verb_and_data(activity)
    if verb not in get_args(Verb):
        raise CardActionError(f"DealBridge does not know the action “{verb[:40]}”.")
    try:
        return _REQUEST.validate_python({**data, "verb": verb, "trigger": trigger})
    except ValidationError as e:
        raise CardActionError(_problem(e)) from e


def _verb_and_data(activity: Activity) -> tuple[str, dict[str, Any], str | None]:
    value = activity.value
    if activity.type == "invoke" and activity.name == ADAPTIVE_CARD_ACTION:
        action = value.get("action") if isinstance(value, dict) else None
        if not isinstance(action, dict) or action.get("type") != "Action.Execute":
            raise CardActionError("This card action is not an Action.Execute.")
        verb, data = action.get("verb"), action.get("data", {})
        trigger = value.get("trigger") if value.get("trigger") in ("manual", "automatic") else None
    elif activity.type == "message" and isinstance(value, dict):
        verb, data, trigger = value.get("verb"), value, "manual"
    else:
        raise CardActionError("This is not a card action.")
    if not isinstance(verb, str) or not verb:
        raise CardActionError("This button has no action.")
    if not isinstance(data, dict):
        raise CardActionError("This button's data is not readable.")
    return verb, {k: v for k, v in data.items() if k != "verb"}, trigger


def _problem(error: ValidationError) -> str:
    for detail in error.errors():
        for part in detail["loc"]:
            if isinstance(part, str) and part in _FIELD_PROBLEMS:
                return _FIELD_PROBLEMS[part]
    return "This card's data could not be read. Open the latest card and try again."


# --- invoke answers --------------------------------------------------------------------------


def card_response(card: dict[str, Any]) -> dict[str, Any]:
    """Invoke answer that replaces the card the rep acted on."""
    return {"statusCode": 200, "type": CARD_CONTENT_TYPE, "value": card}


def message_response(text: str) -> dict[str, Any]:
    """Invoke answer that shows a short message and leaves the card as it is."""
    return {"statusCode": 200, "type": MESSAGE_CONTENT_TYPE, "value": text}


def error_response(status: int, code: str, message: str) -> dict[str, Any]:
    """Invoke answer that Teams shows as an error; send it with HTTP 200."""
    return {
        "statusCode": status,
        "type": ERROR_CONTENT_TYPE,
        "value": {"code": code, "message": message},
    }


def error_response_for(error: CardActionError) -> dict[str, Any]:
    """`error_response` for a CardActionError."""
    return error_response(error.status, error.code, error.message)
