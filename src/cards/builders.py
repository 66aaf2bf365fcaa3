"""Card builders: a view model in, an Adaptive Card 1.5 (a JSON-ready dict) out.

Every button is an Action.Execute with an Action.Submit fallback (Teams docs, Universal Actions:
"Backward compatibility"); its data is a `ButtonData`. Cards that show a state Teams should keep
current carry a `refresh`. Long texts are clipped and lists capped, so every card stays far
below Teams' 40 KB message limit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from cards.actions import NOTE_INPUT, NOTE_MAX_LENGTH, OUTCOME_INPUT, STAGE_INPUT, ButtonData
from cards.elements import (
    Action,
    ActionSet,
    ActionStyle,
    AdaptiveCard,
    Choice,
    ChoiceSetInput,
    Column,
    ColumnSet,
    Container,
    ContainerStyle,
    Element,
    ExecuteAction,
    Fact,
    FactSet,
    OpenUrlAction,
    Refresh,
    ShowCardAction,
    SubCard,
    SubmitAction,
    TextBlock,
    TextColor,
    TextInput,
)
from cards.models import (
    AfterMeetingView,
    BriefView,
    CardKind,
    CardView,
    DealView,
    DigestReminder,
    DigestView,
    HealthView,
    HelpView,
    IdleDeal,
    LastInteraction,
    MeetingCancelled,
    MeetingLoggedByChoice,
    MeetingLoggedView,
    MeetingOutcomeChoice,
    MeetingWithdrawn,
    Money,
    MyDealsView,
    MyRemindersView,
    NoShowAsked,
    NoShowDecided,
    OutcomeNotNeeded,
    OutcomeRecorded,
    PickDealView,
    PickSettled,
    ReminderDone,
    ReminderSnoozed,
    ReminderSuperseded,
    ReminderView,
    SnoozeOption,
    Stage,
)

CardJson = dict[str, Any]

TITLE_MAX = 100
"""Longest deal title, account or subject shown."""
TEXT_MAX = 500
"""Longest free text (a rule's message, a note, an error) shown."""
LIST_MAX = 10
"""Most rows shown per list; the rest are counted ("and 4 more")."""
DEALS_MAX = 40
"""Most deals shown in "my deals" across all stages."""
REFRESH_USERS_MAX = 60
"""Teams refreshes a card automatically for at most 60 listed users."""

SNOOZE_CHOICES: tuple[tuple[SnoozeOption, str], ...] = (
    ("1d", "1 day"),
    ("3d", "3 days"),
    ("next_week", "Next week"),
)
OUTCOME_CHOICES: tuple[tuple[MeetingOutcomeChoice, str], ...] = (
    ("progressing", "Moving forward"),
    ("follow_up", "Needs a follow-up"),
    ("stalled", "Stalled"),
    ("lost", "Lost"),
)
_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}


# --- the cards -------------------------------------------------------------------------------


def reminder_card(view: ReminderView) -> CardJson:
    """A stage reminder: the deal at a glance, the rule's message, and what the rep can do."""
    data = ButtonData(
        view="reminder", card_stamp=view.stamp, reminder_id=view.reminder_id, deal_id=view.deal_id
    )
    facts = [Fact(title="Account", value=_clip(view.account, TITLE_MAX))]
    facts.append(Fact(title="Stage", value=f"{view.stage.name} · {_days(view.days_in_stage)}"))
    if view.amount is not None:
        facts.append(Fact(title="Amount", value=_money(view.amount)))
    facts.append(_last_contact(view.last_interaction))
    if view.due_at is not None:
        facts.append(Fact(title="Due", value=_when(view.due_at)))

    body: list[Element] = [
        _kicker("Stage reminder"),
        _heading(view.deal_title),
        TextBlock(text=_clip(view.rule_title, TITLE_MAX), weight="Bolder", spacing="Small"),
        TextBlock(text=_clip(view.rule_message, TEXT_MAX, single_line=False), spacing="Small"),
        FactSet(facts=facts),
    ]
    actions: list[Action] = []
    state = view.state
    if isinstance(state, ReminderDone):
        body.append(_banner(f"✔ Done by {_clip(state.by, 60)} · {_when(state.at)}", "good"))
    elif isinstance(state, ReminderSuperseded):
        body.append(_banner(f"No longer needed: {_clip(state.reason, 200)}", "emphasis"))
    else:
        if isinstance(state, ReminderSnoozed):
            who = f" by {_clip(state.by, 60)}" if state.by else ""
            body.append(_banner(f"Snoozed{who} until {_when(state.until)}", "warning"))
        actions.append(_button("Done", "done", data, style="positive", no_inputs=True))
        actions.append(_snooze_menu(data))
        later = _later_stages(view.stage, view.pipeline)
        if later:
            actions.append(_advance_menu(data, later))
        actions.append(_note_menu(data))
    actions.append(OpenUrlAction(title="Open in CRM", url=view.crm_url))
    return _card(view, body, actions, refresh_data=data, viewer_ids=view.viewer_ids)


def meeting_logged_card(view: MeetingLoggedView) -> CardJson:
    """What DealBridge logged on which deal and why, with "Wrong deal?" to pick another."""
    data = ButtonData(
        view="meeting_logged",
        card_stamp=view.stamp,
        interaction_id=view.interaction_id,
        deal_id=view.deal_id,
    )
    state = view.state
    if isinstance(state, MeetingCancelled):
        body: list[Element] = [
            _kicker("Meeting not logged"),
            _heading(view.meeting_subject),
            _banner("This meeting was cancelled, so nothing is logged.", "emphasis"),
        ]
        return _card(view, body, [], refresh_data=data, viewer_ids=view.viewer_ids)

    why = _clip(view.reason.rule, 200)
    if view.reason.address:
        why = f"{why} ({_clip(view.reason.address, 80)})"
    body = _meeting_header(
        "Meeting logged",
        view.meeting_subject,
        _meeting_facts(
            "When", view.meeting_start, view.deal_title, view.account, Fact(title="Why", value=why)
        ),
    )
    if isinstance(state, MeetingWithdrawn):
        return _withdrawn_card(view, state, data)
    if isinstance(state, MeetingLoggedByChoice):
        body.append(_banner(f"Chosen by {_clip(state.by, 60)} · {_when(state.at)}", "good"))
    actions: list[Action] = [
        _button("Wrong deal?", "wrong_deal", data, no_inputs=True),
        # the rep's own control: withdrawn, and kept out on later rounds
        _button("Don't log this meeting", "withdraw_meeting", data, no_inputs=True),
        OpenUrlAction(title="Open deal in CRM", url=view.crm_url),
    ]
    return _card(view, body, actions, refresh_data=data, viewer_ids=view.viewer_ids)


def _withdrawn_card(view: MeetingLoggedView, state: MeetingWithdrawn, data: ButtonData) -> CardJson:
    """A meeting the rep withdrew: said so, with Undo while it is possible."""
    body: list[Element] = [
        _kicker("Meeting not logged"),
        _heading(view.meeting_subject),
        TextBlock(text=_when(view.meeting_start), is_subtle=True, spacing="None"),
        _banner(
            f"Not logged at {_clip(state.by, 60)}'s request · {_when(state.at)}. DealBridge "
            "keeps this meeting (and its repeats) out from now on.",
            "emphasis",
        ),
    ]
    actions: list[Action] = []
    if state.undo_until is not None:
        body.append(
            TextBlock(
                text=f"You can undo this until {_when(state.undo_until)}.",
                is_subtle=True,
                size="Small",
            )
        )
        actions.append(_button("Undo", "undo_withdraw", data, style="positive", no_inputs=True))
    return _card(view, body, actions, refresh_data=data, viewer_ids=view.viewer_ids)


def pick_deal_card(view: PickDealView) -> CardJson:
    """A meeting that could belong to several deals: one tap on the right one."""
    data = ButtonData(view="pick_deal", card_stamp=view.stamp, interaction_id=view.interaction_id)
    body: list[Element] = [
        _kicker("Which deal was this meeting about?"),
        _heading(view.meeting_subject),
        TextBlock(text=_when(view.meeting_start), is_subtle=True, spacing="None"),
    ]
    state = view.state
    if isinstance(state, PickSettled):
        text = f"Logged on {_clip(state.deal_title, TITLE_MAX)} by {_clip(state.by, 60)}"
        body.append(_banner(f"✔ {text} · {_when(state.at)}", "good"))
    elif isinstance(state, MeetingCancelled):
        body.append(_banner("This meeting was cancelled, so nothing is logged.", "emphasis"))
    elif not view.candidates:
        body.append(TextBlock(text="No open deal matches this meeting's attendees."))
    else:
        for candidate in view.candidates[:LIST_MAX]:
            choose = _button(
                "Choose",
                "pick_deal",
                data.model_copy(update={"deal_id": candidate.deal_id}),
                style="positive",
                no_inputs=True,
            )
            details = f"{_clip(candidate.account, 60)} · {_clip(candidate.stage_name, 40)}"
            body.append(
                ColumnSet(
                    separator=True,
                    spacing="Medium",
                    columns=[
                        Column(
                            width="stretch",
                            items=[
                                TextBlock(text=_clip(candidate.title, TITLE_MAX), weight="Bolder"),
                                TextBlock(text=details, spacing="None"),
                                TextBlock(
                                    text=_clip(candidate.reason, 200),
                                    is_subtle=True,
                                    size="Small",
                                    spacing="None",
                                ),
                            ],
                        ),
                        Column(
                            width="auto",
                            vertical_content_alignment="Center",
                            items=[ActionSet(actions=[choose])],
                        ),
                    ],
                )
            )
        body.extend(_more(len(view.candidates), "deals"))
    return _card(view, body, [], refresh_data=data, viewer_ids=view.viewer_ids)


def after_meeting_card(view: AfterMeetingView) -> CardJson:
    """After a held meeting on an open deal: the outcome, a note and the next stage."""
    data = ButtonData(
        view="after_meeting",
        card_stamp=view.stamp,
        interaction_id=view.interaction_id,
        deal_id=view.deal_id,
    )
    body = _meeting_header(
        "How did the meeting go?",
        view.meeting_subject,
        _meeting_facts(
            "Ended",
            view.meeting_end,
            view.deal_title,
            view.account,
            Fact(title="Stage", value=_clip(view.stage.name, 60)),
        ),
    )
    body.extend(_attendance(view))
    actions: list[Action] = []
    state = view.state
    if isinstance(state, NoShowAsked | NoShowDecided):
        return _no_show_card(view, state, data)
    if isinstance(state, OutcomeRecorded):
        facts = [Fact(title="Outcome", value=dict(OUTCOME_CHOICES)[state.outcome])]
        if state.stage_name:
            facts.append(Fact(title="New stage", value=_clip(state.stage_name, 60)))
        if state.note:
            facts.append(Fact(title="Note", value=_clip(state.note, TEXT_MAX)))
        body.append(FactSet(facts=facts, separator=True))
        body.append(_banner(f"✔ Recorded by {_clip(state.by, 60)} · {_when(state.at)}", "good"))
    elif isinstance(state, OutcomeNotNeeded):
        body.append(_banner(f"No answer needed: {_clip(state.reason, 200)}", "emphasis"))
    else:
        body.append(
            ChoiceSetInput(
                id=OUTCOME_INPUT,
                label="Outcome",
                style="expanded",
                is_required=True,
                error_message="Choose how the meeting went.",
                choices=[Choice(title=title, value=value) for value, title in OUTCOME_CHOICES],
            )
        )
        body.append(_note_input(required=False))
        later = _later_stages(view.stage, view.pipeline)
        if later:
            body.append(
                ChoiceSetInput(
                    id=STAGE_INPUT,
                    label="Next stage",
                    style="compact",
                    placeholder=f"Keep it in {_clip(view.stage.name, 40)}",
                    choices=[Choice(title=_clip(s.name, 60), value=s.id) for s in later],
                )
            )
        actions.append(_button("Save", "meeting_outcome", data, style="positive"))
    actions.append(OpenUrlAction(title="Open in CRM", url=view.crm_url))
    return _card(view, body, actions, refresh_data=data, viewer_ids=view.viewer_ids)


def _no_show_card(
    view: AfterMeetingView, state: NoShowAsked | NoShowDecided, data: ButtonData
) -> CardJson:
    """Nobody from the customer joined the Teams meeting: reschedule, held anyway, or drop."""
    body = _meeting_header(
        "Nobody from the customer joined",
        view.meeting_subject,
        _meeting_facts("Ended", view.meeting_end, view.deal_title, view.account),
    )
    body.extend(_attendance(view))
    actions: list[Action] = []
    if isinstance(state, NoShowDecided):
        said = (
            "A reminder to reschedule is on the deal"
            if state.decision == "reschedule"
            else ("Dropped: it stays a no-show")
        )
        body.append(_banner(f"✔ {said} · {_clip(state.by, 60)}", "good"))
    else:
        body.append(
            TextBlock(
                text="It does not count as an interaction, so the deal's clock did not move.",
                wrap=True,
            )
        )
        for title, decision in (
            ("Reschedule", "reschedule"),
            ("It was held", "held"),
            ("Drop it", "drop"),
        ):
            answer = data.model_copy(update={"decision": decision})
            style: ActionStyle | None = "positive" if decision == "reschedule" else None
            actions.append(_button(title, "no_show", answer, style=style, no_inputs=True))
    actions.append(OpenUrlAction(title="Open in CRM", url=view.crm_url))
    return _card(view, body, actions, refresh_data=data, viewer_ids=view.viewer_ids)


def brief_card(view: BriefView) -> CardJson:
    """Before a customer meeting: the deal at a glance."""
    facts = _meeting_facts(
        "Starts",
        view.meeting_start,
        view.deal_title,
        view.account,
        Fact(title="Stage", value=f"{_clip(view.stage_name, 60)} · {_days(view.days_in_stage)}"),
        Fact(
            title="Accepted",
            value=_clip(", ".join(view.accepted), TEXT_MAX) if view.accepted else "nobody yet",
        ),
    )
    if view.not_answered:
        facts.append(Fact(title="No answer", value=_clip(", ".join(view.not_answered), TEXT_MAX)))
    body = _meeting_header("Before your meeting", view.meeting_subject, facts)
    for title, lines, empty in (
        ("Last interactions", view.last_interactions, "None logged yet."),
        ("Open reminders", view.open_reminders, "None."),
    ):
        body.append(TextBlock(text=title, weight="Bolder", separator=True))
        shown = lines[:LIST_MAX] or [empty]
        body.extend(TextBlock(text=_clip(line, 200), wrap=True, spacing="None") for line in shown)
        body.extend(_more(len(lines), "more"))
    actions: list[Action] = [OpenUrlAction(title="Open deal in CRM", url=view.crm_url)]
    return _card(view, body, actions)


def digest_card(view: DigestView) -> CardJson:
    """The daily digest: due today, overdue, and the deals idle longest."""
    body: list[Element] = [
        _kicker(f"Daily digest · {view.day:%A} {view.day.day} {view.day:%B}"),
        _heading(f"Good morning, {_clip(_first_name(view.rep_name), 40)}"),
    ]
    if not (view.due_today or view.overdue or view.idle_longest):
        body.append(_banner("Nothing due today, nothing overdue, no idle deals.", "good"))
    if view.overdue:
        body.append(_section(f"Overdue ({len(view.overdue)})", color="Attention"))
        body.extend(_digest_line(r, f"due {_date(r.due_at)}") for r in view.overdue[:LIST_MAX])
        body.extend(_more(len(view.overdue), "overdue"))
    if view.due_today:
        body.append(_section(f"Due today ({len(view.due_today)})"))
        body.extend(_digest_line(r, _time(r.due_at)) for r in view.due_today[:LIST_MAX])
        body.extend(_more(len(view.due_today), "due today"))
    if view.idle_longest:
        body.append(_section("Idle longest"))
        body.extend(_idle_line(d) for d in view.idle_longest[:LIST_MAX])
        body.extend(_more(len(view.idle_longest), "idle deals"))
    return _card(view, body, [])


def health_card(view: HealthView) -> CardJson:
    """For admins: mail sync failing, consent missing, secrets expiring."""
    body: list[Element] = [
        _kicker("DealBridge health"),
        _heading("Microsoft 365 connection"),
        TextBlock(text=f"Checked {_when(view.checked_at)}", is_subtle=True, spacing="None"),
    ]
    if not (view.failing_mailboxes or view.missing_consent or view.expiring_secrets):
        body.append(_banner("All good: mail sync, consent and credentials are fine.", "good"))
    if view.failing_mailboxes:
        body.append(_section(f"Mail sync failing ({len(view.failing_mailboxes)})", "Attention"))
        body.extend(
            _two_lines(
                _clip(m.mailbox, TITLE_MAX), f"{_clip(m.error, 200)} · since {_when(m.since)}"
            )
            for m in view.failing_mailboxes[:LIST_MAX]
        )
        body.extend(_more(len(view.failing_mailboxes), "mailboxes"))
    if view.missing_consent:
        body.append(_section(f"Consent missing ({len(view.missing_consent)})", "Attention"))
        for consent in view.missing_consent[:LIST_MAX]:
            grant = OpenUrlAction(title="Grant consent", url=consent.consent_url)
            body.append(
                ColumnSet(
                    columns=[
                        Column(
                            width="stretch",
                            vertical_content_alignment="Center",
                            items=[TextBlock(text=_clip(consent.permission, TITLE_MAX))],
                        ),
                        Column(width="auto", items=[ActionSet(actions=[grant])]),
                    ]
                )
            )
        body.extend(_more(len(view.missing_consent), "permissions"))
    if view.expiring_secrets:
        body.append(_section(f"Secrets expiring ({len(view.expiring_secrets)})"))
        body.extend(
            _two_lines(_clip(secret.name, TITLE_MAX), f"expires {_date(secret.expires_at)}")
            for secret in view.expiring_secrets[:LIST_MAX]
        )
        body.extend(_more(len(view.expiring_secrets), "secrets"))
    actions: list[Action] = [OpenUrlAction(title="Open admin page", url=view.admin_url)]
    return _card(view, body, actions)


def help_card(view: HelpView) -> CardJson:
    """What the rep can type, and what the cards are for."""
    body: list[Element] = []
    if view.unknown_text is not None:
        body.append(
            TextBlock(
                text=f"Sorry, I did not understand “{_clip(view.unknown_text, 60)}”.",
                color="Attention",
            )
        )
    body += [
        _heading("DealBridge in Teams"),
        TextBlock(
            text="When a deal needs you, a reminder card arrives here. "
            "Mark it done, snooze it, move the deal on or add a note, right on the card.",
            spacing="Small",
        ),
        FactSet(facts=[Fact(title=command, value=what) for command, what in HELP_COMMANDS]),
    ]
    if view.unknown_text is not None:
        body.append(TextBlock(text="Try “deal northwind” or “my day”.", is_subtle=True))
    return _card(view, body, [])


HELP_COMMANDS: tuple[tuple[str, str], ...] = (
    ("deal <text>", "Your deals matching the text, as cards (title, account, contact, CRM id)"),
    ("my day", "The deals that need you today, as cards"),
    ("reminders", "Your open reminders"),
    ("deals", "Your open deals by stage"),
    ("digest on|off", "Your daily digest at the start of your working day"),
    ("settings", "Your own settings: channels, quiet hours, digest time, pausing capture"),
    ("help", "This card"),
)
"""Every command the bot understands, as the help card lists it (the manifest's command list
names the same first words)."""


def my_reminders_card(view: MyRemindersView) -> CardJson:
    """The rep's open reminders, each with a Done button."""
    count = len(view.reminders)
    body: list[Element] = [_heading(f"Your open reminders ({count})")]
    if not view.reminders:
        body.append(_banner("No open reminders. Nice work.", "good"))
    for line in view.reminders[:LIST_MAX]:
        due = f"overdue since {_date(line.due_at)}" if line.overdue else f"due {_when(line.due_at)}"
        data = ButtonData(
            view="my_reminders",
            card_stamp=view.stamp,
            reminder_id=line.reminder_id,
            deal_id=line.deal_id,
        )
        body.append(
            ColumnSet(
                separator=True,
                spacing="Medium",
                columns=[
                    Column(
                        width="stretch",
                        items=[
                            TextBlock(text=_clip(line.deal_title, TITLE_MAX), weight="Bolder"),
                            TextBlock(
                                text=f"{_clip(line.rule_title, 80)} · {due}",
                                color="Attention" if line.overdue else None,
                                spacing="None",
                            ),
                        ],
                    ),
                    Column(
                        width="auto",
                        vertical_content_alignment="Center",
                        items=[ActionSet(actions=[_button("Done", "done", data, no_inputs=True)])],
                    ),
                ],
                select_action=OpenUrlAction(title="Open in CRM", url=line.crm_url),
            )
        )
    body.extend(_more(count, "reminders"))
    return _card(view, body, [])


def my_deals_card(view: MyDealsView) -> CardJson:
    """The rep's open deals grouped by stage."""
    total = sum(len(s.deals) for s in view.stages)
    body: list[Element] = [_heading(f"Your open deals ({total})")]
    if total == 0:
        body.append(TextBlock(text="You have no open deals."))
    shown = 0
    stages = [s for s in view.stages if s.deals]
    for number, stage in enumerate(stages):
        if shown >= DEALS_MAX:
            rest = stages[number:]
            count = sum(len(s.deals) for s in rest)
            stages_text = "1 more stage" if len(rest) == 1 else f"{len(rest)} more stages"
            body.append(_section(f"and {count} more deals in {stages_text}"))
            break
        body.append(_section(f"{_clip(stage.stage_name, 60)} ({len(stage.deals)})"))
        lines: list[Element] = []
        for deal in stage.deals[: min(LIST_MAX, DEALS_MAX - shown)]:
            parts = [_clip(deal.account, 40)]
            if deal.amount is not None:
                parts.append(_money(deal.amount))
            parts.append(_days(deal.days_in_stage))
            lines.append(_two_lines(_clip(deal.title, 80), " · ".join(parts), url=deal.crm_url))
        shown += len(lines)
        body.extend(lines)
        body.extend(_more(len(stage.deals), "deals", shown=len(lines)))
    return _card(view, body, [])


# --- a deal, searched, shared or unfurled (teamsext) ---------------------------------------


def deal_card(view: DealView, *, unfurl: bool = False) -> CardJson:
    """A deal at a glance: stage, amount, close date, next reminder, last interaction, and
    "Open in CRM". Shared (a message-extension result), its buttons work for whoever presses
    them, as themselves, if they may see the deal (`can_act`); a viewer who may not sees no
    buttons. `unfurl` gives the Adaptive Cards 1.3 card Teams renders for a pasted link: no
    Action.Execute or refresh there, so only "Open in CRM".
    """
    data = ButtonData(view="deal", card_stamp=view.stamp, deal_id=view.deal_id)
    facts = [Fact(title="Account", value=_clip(view.account, TITLE_MAX))]
    if view.contact:
        facts.append(Fact(title="Contact", value=_clip(view.contact, TITLE_MAX)))
    facts.append(Fact(title="Stage", value=_clip(view.stage.name, 60)))
    if view.amount is not None:
        facts.append(Fact(title="Amount", value=_money(view.amount)))
    if view.close_date is not None:
        facts.append(Fact(title="Close date", value=f"{view.close_date:%d %b %Y}"))
    if view.next_reminder is not None:
        due = _when(view.next_reminder.due_at)
        facts.append(
            Fact(title="Next reminder", value=f"{_clip(view.next_reminder.title, 80)} · {due}")
        )
    else:
        facts.append(Fact(title="Next reminder", value="None open"))
    facts.append(_last_contact(view.last_interaction))
    if view.owner:
        facts.append(Fact(title="Owner", value=_clip(view.owner, 80)))
    facts.append(Fact(title="CRM id", value=_clip(view.deal_id, 60)))
    heading = TextBlock(
        text=_clip(view.title, TITLE_MAX),
        style=None if unfurl else "heading",
        size="Large",
        weight="Bolder",
        spacing="None",
    )
    body: list[Element] = [_kicker("Deal"), heading, FactSet(facts=facts)]
    actions: list[Action] = []
    if view.status != "open":
        body.append(_banner(f"This deal is closed ({view.status}).", "emphasis"))
    elif not unfurl and view.can_act:
        later = _later_stages(view.stage, view.pipeline)
        if later:
            actions.append(_advance_menu(data, later))
        actions.append(_note_menu(data))
    elif not unfurl:
        body.append(
            _banner(
                "Shared with you. Only the deal's owner and reps on this account can act on it.",
                "emphasis",
            )
        )
    actions.append(OpenUrlAction(title="Open in CRM", url=view.crm_url))
    if unfurl:
        card = AdaptiveCard(
            version="1.3", body=body, actions=actions, fallback_text=card_summary(view)
        )
        return card.to_json()
    return _card(view, body, actions, refresh_data=data, viewer_ids=view.viewer_ids)


def build_card(view: CardView) -> CardJson:
    """The card for any view model."""
    match view:
        case DealView():
            return deal_card(view)
        case ReminderView():
            return reminder_card(view)
        case MeetingLoggedView():
            return meeting_logged_card(view)
        case PickDealView():
            return pick_deal_card(view)
        case AfterMeetingView():
            return after_meeting_card(view)
        case DigestView():
            return digest_card(view)
        case HealthView():
            return health_card(view)
        case HelpView():
            return help_card(view)
        case MyRemindersView():
            return my_reminders_card(view)
        case MyDealsView():
            return my_deals_card(view)
        case BriefView():
            return brief_card(view)


def card_kind(view: CardView) -> CardKind:
    """Which card a view model becomes (the `view` in its buttons' data)."""
    kinds: dict[type[CardView], CardKind] = {
        DealView: "deal",
        ReminderView: "reminder",
        MeetingLoggedView: "meeting_logged",
        PickDealView: "pick_deal",
        AfterMeetingView: "after_meeting",
        DigestView: "digest",
        HealthView: "health",
        HelpView: "help",
        MyRemindersView: "my_reminders",
        MyDealsView: "my_deals",
        BriefView: "brief",
    }
    return kinds[type(view)]


def card_summary(view: CardView) -> str:
    """One line for the activity's `summary` (notification preview) and the card's fallback."""
    match view:
        case DealView():
            return f"Deal: {_clip(view.title, 60)} · {_clip(view.account, 40)}"
        case ReminderView():
            if view.deal_title in view.rule_title:  # most rule titles already name the deal
                return f"Reminder: {_clip(view.rule_title, 100)}"
            return f"Reminder: {_clip(view.rule_title, 60)} · {_clip(view.deal_title, 60)}"
        case MeetingLoggedView():
            return f"Meeting logged on {_clip(view.deal_title, 60)}"
        case PickDealView():
            return f"Which deal was “{_clip(view.meeting_subject, 60)}” about?"
        case AfterMeetingView():
            return f"How did “{_clip(view.meeting_subject, 60)}” go?"
        case DigestView():
            return f"Your day: {len(view.due_today)} due today, {len(view.overdue)} overdue"
        case HealthView():
            return "DealBridge health"
        case HelpView():
            return "What DealBridge can do"
        case MyRemindersView():
            return f"Your open reminders ({len(view.reminders)})"
        case MyDealsView():
            return "Your open deals"
        case BriefView():
            return f"Before “{_clip(view.meeting_subject, 50)}”: {_clip(view.deal_title, 50)}"


# --- building blocks -------------------------------------------------------------------------


def _card(
    view: CardView,
    body: list[Element],
    actions: list[Action],
    *,
    refresh_data: ButtonData | None = None,
    viewer_ids: list[str] | None = None,
) -> CardJson:
    refresh = None
    if refresh_data is not None:
        refresh = Refresh(
            action=ExecuteAction(verb="refresh", data=refresh_data.to_data()),
            user_ids=viewer_ids[:REFRESH_USERS_MAX] if viewer_ids else None,
        )
    card = AdaptiveCard(
        body=body, actions=actions or None, refresh=refresh, fallback_text=card_summary(view)
    )
    return card.to_json()


def _button(
    title: str,
    verb: str,
    data: ButtonData,
    *,
    style: ActionStyle | None = None,
    no_inputs: bool = False,
) -> ExecuteAction:
    # `none` also skips validating inputs of other forms on the card (Snooze vs. a blank note).
    associated: Literal["none"] | None = "none" if no_inputs else None
    payload = data.to_data()
    return ExecuteAction(
        title=title,
        verb=verb,
        data=payload,
        style=style,
        associated_inputs=associated,
        fallback=SubmitAction(
            title=title, data={**payload, "verb": verb}, style=style, associated_inputs=associated
        ),
    )


def _snooze_menu(data: ButtonData) -> ShowCardAction:
    buttons: list[Action] = [
        _button(label, "snooze", data.model_copy(update={"snooze": option}), no_inputs=True)
        for option, label in SNOOZE_CHOICES
    ]
    return ShowCardAction(
        title="Snooze",
        card=SubCard(
            body=[TextBlock(text="Remind me again in (working time):", size="Small")],
            actions=buttons,
        ),
    )


def _advance_menu(data: ButtonData, later: list[Stage]) -> ShowCardAction:
    return ShowCardAction(
        title="Move stage",
        card=SubCard(
            body=[
                ChoiceSetInput(
                    id=STAGE_INPUT,
                    label="Move the deal to",
                    style="compact",
                    is_required=True,
                    error_message="Choose a stage.",
                    value=later[0].id,
                    choices=[Choice(title=_clip(s.name, 60), value=s.id) for s in later],
                )
            ],
            actions=[_button("Move", "advance", data, style="positive")],
        ),
    )


def _note_menu(data: ButtonData) -> ShowCardAction:
    return ShowCardAction(
        title="Add note",
        card=SubCard(
            body=[_note_input(required=True)],
            actions=[_button("Save note", "note", data, style="positive")],
        ),
    )


def _note_input(*, required: bool) -> TextInput:
    return TextInput(
        id=NOTE_INPUT,
        label="Note",
        placeholder="What happened, what is next",
        is_multiline=True,
        max_length=NOTE_MAX_LENGTH,
        is_required=required or None,
        error_message="Write a note first." if required else None,
    )


def _later_stages(current: Stage, pipeline: list[Stage]) -> list[Stage]:
    ids = [s.id for s in pipeline]
    if current.id not in ids:
        return [s for s in pipeline if s.id != current.id]
    return pipeline[ids.index(current.id) + 1 :]


def _last_contact(last: LastInteraction | None) -> Fact:
    if last is None:
        return Fact(title="Last contact", value="None logged")
    return Fact(title="Last contact", value=f"{_clip(last.summary, 80)} · {_date(last.at)}")


def _meeting_header(kicker: str, subject: str, facts: list[Fact]) -> list[Element]:
    """A meeting card's top: what the card is about, the meeting's subject, its facts."""
    return [_kicker(kicker), _heading(subject), FactSet(facts=facts)]


def _meeting_facts(
    when: str, moment: datetime, deal_title: str, account: str, *more: Fact
) -> list[Fact]:
    """When the meeting is (`when`: "When", "Starts", "Ended"), its deal, the account, then
    `more`."""
    return [
        Fact(title=when, value=_when(moment)),
        Fact(title="Deal", value=_clip(deal_title, TITLE_MAX)),
        Fact(title="Account", value=_clip(account, TITLE_MAX)),
        *more,
    ]


def _attendance(view: AfterMeetingView) -> list[Element]:
    """What Teams' attendance report says of the meeting, when it says anything."""
    if not view.attendance:
        return []
    return [TextBlock(text=_clip(view.attendance, 300), wrap=True, is_subtle=True)]


def _kicker(text: str) -> TextBlock:
    return TextBlock(text=text, size="Small", weight="Bolder", color="Accent")


def _heading(text: str) -> TextBlock:
    return TextBlock(
        text=_clip(text, TITLE_MAX), style="heading", size="Large", weight="Bolder", spacing="None"
    )


def _section(text: str, color: TextColor | None = None) -> TextBlock:
    return TextBlock(text=text, weight="Bolder", color=color, spacing="Medium", separator=True)


def _banner(text: str, style: ContainerStyle) -> Container:
    return Container(style=style, spacing="Medium", items=[TextBlock(text=text)])


def _more(total: int, noun: str, *, shown: int = LIST_MAX) -> list[Element]:
    if total <= shown:
        return []
    return [TextBlock(text=f"and {total - shown} more {noun}", is_subtle=True, spacing="Small")]


def _two_lines(title: str, detail: str, *, url: str | None = None) -> Container:
    return Container(
        spacing="Small",
        select_action=OpenUrlAction(title="Open in CRM", url=url) if url else None,
        items=[
            TextBlock(text=title, weight="Bolder"),
            TextBlock(text=detail, spacing="None", is_subtle=True),
        ],
    )


def _linked_line(url: str, headline: str, detail: str) -> ColumnSet:
    """A two-line entry that opens the deal in the CRM when tapped."""
    return ColumnSet(
        spacing="Small",
        select_action=OpenUrlAction(title="Open in CRM", url=url),
        columns=[
            Column(
                width="stretch",
                items=[
                    TextBlock(text=headline, weight="Bolder"),
                    TextBlock(text=detail, spacing="None", is_subtle=True),
                ],
            )
        ],
    )


def _digest_line(reminder: DigestReminder, when: str) -> ColumnSet:
    return _linked_line(
        reminder.crm_url,
        f"{_clip(reminder.deal_title, 60)} · {_clip(reminder.account, 40)}",
        f"{_clip(reminder.rule_title, 80)} · {when}",
    )


def _idle_line(deal: IdleDeal) -> ColumnSet:
    return _linked_line(
        deal.crm_url,
        f"{_clip(deal.title, 60)} · {_clip(deal.account, 40)}",
        f"{_clip(deal.stage_name, 40)} · idle {_days(deal.idle_days)}",
    )


def _clip(text: str, limit: int, *, single_line: bool = True) -> str:
    """At most `limit` characters, ending in "…" when cut."""
    if single_line:
        text = " ".join(text.split())
    else:
        text = "\n".join(" ".join(line.split()) for line in text.strip().splitlines())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _first_name(name: str) -> str:
    parts = name.split()
    return parts[0] if parts else name


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def _money(money: Money) -> str:
    amount = money.amount
    digits = f"{amount:,.0f}" if amount == amount.to_integral_value() else f"{amount:,.2f}"
    symbol = _CURRENCY_SYMBOLS.get(money.currency)
    return f"{symbol}{digits}" if symbol else f"{digits} {money.currency}"


def _rfc3339(moment: datetime) -> str:
    # DATE()/TIME() accept only RFC 3339 with Z or an offset, no fractions.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(moment: datetime) -> str:
    return "{{DATE(" + _rfc3339(moment) + ",SHORT)}}"


def _time(moment: datetime) -> str:
    return "{{TIME(" + _rfc3339(moment) + ")}}"


def _when(moment: datetime) -> str:
    return f"{_date(moment)} {_time(moment)}"


__all__ = [
    "CardJson",
    "after_meeting_card",
    "build_card",
    "card_kind",
    "card_summary",
    "deal_card",
    "digest_card",
    "health_card",
    "help_card",
    "meeting_logged_card",
    "my_deals_card",
    "my_reminders_card",
    "pick_deal_card",
    "reminder_card",
]
