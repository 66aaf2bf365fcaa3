"""View models: what each card shows. The connector fills them from its store.

Times are timezone-aware; cards show them with Adaptive Cards' `{{DATE()}}`/`{{TIME()}}`, so each
viewer sees their own time zone and locale. `stamp` is an opaque version of the state a card
shows (e.g. the deal's revision): it comes back as `card` in every action's data, so the
connector can recognise a stale card and answer with the current state.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

CardKind = Literal[
    "reminder",
    "meeting_logged",
    "pick_deal",
    "after_meeting",
    "digest",
    "health",
    "help",
    "my_reminders",
    "my_deals",
    "deal",
    "brief",
]
SnoozeOption = Literal["1d", "3d", "next_week"]
MeetingOutcomeChoice = Literal["progressing", "follow_up", "stalled", "lost"]


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value


WebUrl = Annotated[str, AfterValidator(_http_url)]
"""An http(s) URL (kept as the exact string given)."""


class View(BaseModel):
    """Base of every view model: immutable, no unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(View):
    """A pipeline stage."""

    id: str
    name: str


class Money(View):
    """An amount in a currency."""

    amount: Decimal
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    """ISO 4217 code."""


class LastInteraction(View):
    """The latest interaction logged on a deal."""

    at: AwareDatetime
    summary: str
    """E.g. "Meeting: Pricing review with Northwind"."""


# --- reminder --------------------------------------------------------------------------------


class ReminderOpen(View):
    """Due and waiting for the rep."""

    kind: Literal["open"] = "open"


class ReminderSnoozed(View):
    """Snoozed: it comes back at `until`; the rep can still act on it."""

    kind: Literal["snoozed"] = "snoozed"
    until: AwareDatetime
    by: str | None = None


class ReminderDone(View):
    """Settled: someone marked it done."""

    kind: Literal["done"] = "done"
    by: str
    at: AwareDatetime


class ReminderSuperseded(View):
    """Settled: the deal moved on (new stage, closed), so the reminder no longer applies."""

    kind: Literal["superseded"] = "superseded"
    reason: str
    """What happened, e.g. "Moved to Negotiation by Priya Raman"."""


ReminderState = Annotated[
    ReminderOpen | ReminderSnoozed | ReminderDone | ReminderSuperseded,
    Field(discriminator="kind"),
]


class ReminderView(View):
    """A stage reminder on one deal."""

    reminder_id: str
    deal_id: str
    deal_title: str
    account: str
    stage: Stage
    """The deal's current stage."""
    pipeline: list[Stage]
    """The pipeline's stages in order; the card offers the ones after `stage` to advance to."""
    amount: Money | None = None
    days_in_stage: int = Field(ge=0)
    last_interaction: LastInteraction | None = None
    rule_title: str
    rule_message: str
    due_at: AwareDatetime | None = None
    state: ReminderState = ReminderOpen()
    crm_url: WebUrl
    stamp: str
    viewer_ids: list[str] = []
    """Teams user ids (29:...) whose view refreshes automatically; capped at 60."""


# --- meetings --------------------------------------------------------------------------------


class MatchReason(View):
    """Why a meeting was logged on a deal."""

    rule: str
    """In the rep's words, e.g. "An attendee's domain matches the account"."""
    address: str | None = None
    """The attendee address that matched, if any."""


class MeetingLoggedAutomatically(View):
    """Logged by the matcher; the rep may correct it."""

    kind: Literal["logged"] = "logged"


class MeetingLoggedByChoice(View):
    """Logged on the deal someone picked."""

    kind: Literal["chosen"] = "chosen"
    by: str
    at: AwareDatetime


class MeetingCancelled(View):
    """Settled: the meeting was cancelled or deleted, so nothing is logged."""

    kind: Literal["cancelled"] = "cancelled"


class MeetingWithdrawn(View):
    """The rep said "Don't log this meeting": withdrawn, kept out on later rounds."""

    kind: Literal["withdrawn"] = "withdrawn"
    by: str
    at: AwareDatetime
    undo_until: AwareDatetime | None = None
    """Until when Undo is offered (None: no longer, or not to this viewer)."""


MeetingLoggedState = Annotated[
    MeetingLoggedAutomatically | MeetingLoggedByChoice | MeetingCancelled | MeetingWithdrawn,
    Field(discriminator="kind"),
]


class MeetingLoggedView(View):
    """A meeting DealBridge logged as an interaction on a deal."""

    interaction_id: str
    meeting_subject: str
    meeting_start: AwareDatetime
    deal_id: str
    deal_title: str
    account: str
    reason: MatchReason
    state: MeetingLoggedState = MeetingLoggedAutomatically()
    crm_url: WebUrl
    stamp: str
    viewer_ids: list[str] = []


class DealCandidate(View):
    """A deal a meeting could belong to."""

    deal_id: str
    title: str
    account: str
    stage_name: str
    reason: str
    """Why it is a candidate, e.g. "Jordan Lee (jlee@contoso.com) is its contact"."""


class PickPending(View):
    """Waiting for the rep's choice."""

    kind: Literal["pending"] = "pending"


class PickSettled(View):
    """Settled: the meeting is logged on `deal_title`."""

    kind: Literal["settled"] = "settled"
    deal_title: str
    by: str
    at: AwareDatetime


PickDealState = Annotated[PickPending | PickSettled | MeetingCancelled, Field(discriminator="kind")]


class PickDealView(View):
    """A meeting that matched several deals (or the rep said "wrong deal"): choose one."""

    interaction_id: str
    meeting_subject: str
    meeting_start: AwareDatetime
    candidates: list[DealCandidate]
    state: PickDealState = PickPending()
    stamp: str
    viewer_ids: list[str] = []


class OutcomeAsked(View):
    """Waiting for the rep's answer."""

    kind: Literal["asked"] = "asked"


class OutcomeRecorded(View):
    """Settled: the rep answered."""

    kind: Literal["recorded"] = "recorded"
    outcome: MeetingOutcomeChoice
    note: str | None = None
    stage_name: str | None = None
    """The stage the deal moved to, if it moved."""
    by: str
    at: AwareDatetime


class OutcomeNotNeeded(View):
    """Settled: the deal closed or moved on before the rep answered."""

    kind: Literal["not_needed"] = "not_needed"
    reason: str


class NoShowAsked(View):
    """Teams says nobody from the customer came: reschedule, held anyway, or drop it?"""

    kind: Literal["no_show"] = "no_show"


class NoShowDecided(View):
    """Settled: the rep answered the no-show card (rescheduled, or dropped it)."""

    kind: Literal["no_show_decided"] = "no_show_decided"
    decision: Literal["reschedule", "drop"]
    by: str


AfterMeetingState = Annotated[
    OutcomeAsked | OutcomeRecorded | OutcomeNotNeeded | NoShowAsked | NoShowDecided,
    Field(discriminator="kind"),
]


class AfterMeetingView(View):
    """A held meeting on an open deal: how did it go, a note, and the next stage."""

    interaction_id: str
    deal_id: str
    deal_title: str
    account: str
    meeting_subject: str
    meeting_end: AwareDatetime
    stage: Stage
    pipeline: list[Stage]
    state: AfterMeetingState = OutcomeAsked()
    crm_url: WebUrl
    stamp: str
    viewer_ids: list[str] = []
    attendance: str | None = None
    """Teams' attendance in words ("Held: Dana Lee joined for 25 min"), when known."""


# --- digest, health --------------------------------------------------------------------------


class DigestReminder(View):
    """A reminder in the daily digest."""

    reminder_id: str
    deal_title: str
    account: str
    rule_title: str
    due_at: AwareDatetime
    crm_url: WebUrl


class IdleDeal(View):
    """A deal with no interaction for a while."""

    deal_id: str
    title: str
    account: str
    stage_name: str
    idle_days: int = Field(ge=0)
    crm_url: WebUrl


class DigestView(View):
    """The rep's daily digest (opt-in), sent at the start of their working day."""

    rep_name: str
    day: date
    due_today: list[DigestReminder]
    overdue: list[DigestReminder]
    idle_longest: list[IdleDeal]


class MailboxSyncFailure(View):
    """A mailbox whose meeting sync keeps failing."""

    mailbox: str
    since: AwareDatetime
    error: str


class ConsentMissing(View):
    """A permission the app needs and the tenant has not granted."""

    permission: str
    consent_url: WebUrl


class SecretExpiring(View):
    """An app credential close to expiry."""

    name: str
    expires_at: AwareDatetime


class HealthView(View):
    """For admins: what needs fixing in the Microsoft 365 connection."""

    checked_at: AwareDatetime
    failing_mailboxes: list[MailboxSyncFailure]
    missing_consent: list[ConsentMissing]
    expiring_secrets: list[SecretExpiring]
    admin_url: WebUrl


# --- chat answers ----------------------------------------------------------------------------


class HelpView(View):
    """What the bot understands; `unknown_text` is what the rep typed when it did not."""

    unknown_text: str | None = None


class ReminderLine(View):
    """One open reminder in "my reminders"."""

    reminder_id: str
    deal_id: str
    deal_title: str
    account: str
    rule_title: str
    due_at: AwareDatetime
    overdue: bool
    crm_url: WebUrl


class MyRemindersView(View):
    """The rep's open reminders, soonest first."""

    rep_name: str
    reminders: list[ReminderLine]
    stamp: str


class DealLine(View):
    """One open deal in "my deals"."""

    deal_id: str
    title: str
    account: str
    amount: Money | None = None
    days_in_stage: int = Field(ge=0)
    crm_url: WebUrl


class StageDeals(View):
    """The rep's open deals in one stage."""

    stage_name: str
    deals: list[DealLine]


class MyDealsView(View):
    """The rep's open deals grouped by stage, in pipeline order."""

    rep_name: str
    stages: list[StageDeals]


# --- a deal, searched, shared or unfurled (teamsext) ---------------------------------------


class NextReminder(View):
    """The deal's soonest open reminder."""

    title: str
    due_at: AwareDatetime


class DealView(View):
    """One deal as a card: a message-extension result, a shared card, an unfurled CRM link, or
    the bot's answer to `deal <text>` / `my day`.

    `can_act` is the viewer's: the deal's owner or a rep with another open deal on the same
    account (connector.teams.deal_search.may_see); anyone else sees the card without buttons.
    """

    deal_id: str
    title: str
    account: str
    contact: str | None = None
    """The first contact, e.g. "Jordan Lee (jlee@contoso.com)"."""
    owner: str | None = None
    stage: Stage
    pipeline: list[Stage]
    status: Literal["open", "won", "lost"] = "open"
    amount: Money | None = None
    close_date: date | None = None
    next_reminder: NextReminder | None = None
    last_interaction: LastInteraction | None = None
    crm_url: WebUrl
    stamp: str
    can_act: bool = True
    viewer_ids: list[str] = []
    """Teams ids (29:… or 8:orgid:…) whose view refreshes automatically; capped at 60."""


class BriefView(View):
    """Before a customer meeting: the deal, its stage, what happened lately, who accepted."""

    interaction_id: str
    meeting_subject: str
    meeting_start: AwareDatetime
    deal_id: str
    deal_title: str
    account: str
    stage_name: str
    days_in_stage: int = Field(ge=0)
    last_interactions: list[str] = []
    open_reminders: list[str] = []
    accepted: list[str] = []
    """Customer attendees who accepted."""
    not_answered: list[str] = []
    crm_url: WebUrl
    stamp: str


CardView = (
    DealView
    | ReminderView
    | MeetingLoggedView
    | PickDealView
    | AfterMeetingView
    | DigestView
    | HealthView
    | HelpView
    | MyRemindersView
    | MyDealsView
    | BriefView
)
