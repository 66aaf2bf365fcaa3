"""Realistic sample views: every card in every state (for `make cards`, tests and docs)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from cards.models import (
    AfterMeetingView,
    BriefView,
    CardView,
    ConsentMissing,
    DealCandidate,
    DealLine,
    DealView,
    DigestReminder,
    DigestView,
    HealthView,
    HelpView,
    IdleDeal,
    LastInteraction,
    MailboxSyncFailure,
    MatchReason,
    MeetingCancelled,
    MeetingLoggedByChoice,
    MeetingLoggedView,
    MeetingWithdrawn,
    Money,
    MyDealsView,
    MyRemindersView,
    NextReminder,
    NoShowAsked,
    NoShowDecided,
    OutcomeNotNeeded,
    OutcomeRecorded,
    PickDealView,
    PickSettled,
    ReminderDone,
    ReminderLine,
    ReminderSnoozed,
    ReminderSuperseded,
    ReminderView,
    SecretExpiring,
    Stage,
    StageDeals,
)

NOW = datetime(2025, 11, 18, 9, 0, tzinfo=UTC)
"""The moment the samples describe: a Tuesday morning."""
CRM = "https://crm.example.com"
REP = "Priya Raman"
REP_TEAMS_ID = "29:1GcS4EyB_oSI8A88XmWBN7NJFyMqe3QGnJdgLfFGkJnVelzRGos0bAvkSwwHGRB6V"
PIPELINE = [
    Stage(id="qualification", name="Qualification"),
    Stage(id="discovery", name="Discovery"),
    Stage(id="proposal", name="Proposal sent"),
    Stage(id="negotiation", name="Negotiation"),
    Stage(id="won", name="Closed won"),
    Stage(id="lost", name="Closed lost"),
]
PROPOSAL, NEGOTIATION, WON = PIPELINE[2], PIPELINE[3], PIPELINE[4]


def deal_url(deal_id: str) -> str:
    """The sample CRM's page for a deal."""
    return f"{CRM}/deals/{deal_id}"


def reminder(**changes: object) -> ReminderView:
    """The sample reminder: Northwind has had a proposal for two weeks without a reply."""
    view = ReminderView(
        reminder_id="rem-7f3a91",
        deal_id="D-10482",
        deal_title="Fleet telematics renewal 2026",
        account="Northwind Traders",
        stage=PROPOSAL,
        pipeline=PIPELINE,
        amount=Money(amount=Decimal("148500"), currency="USD"),
        days_in_stage=16,
        last_interaction=LastInteraction(
            at=NOW - timedelta(days=15, hours=2),
            summary="Meeting: Pricing review with Jordan Lee",
        ),
        rule_title="Proposal sent, no reply for 14 days",
        rule_message=(
            "Northwind has had the proposal for two weeks. Call Jordan Lee before their "
            "budget review on Friday and ask which option finance preferred."
        ),
        due_at=NOW - timedelta(hours=1),
        crm_url=deal_url("D-10482"),
        stamp="D-10482@r14",
        viewer_ids=[REP_TEAMS_ID],
    )
    return view.model_copy(update=changes)


def meeting_logged(**changes: object) -> MeetingLoggedView:
    """The sample logged meeting."""
    view = MeetingLoggedView(
        interaction_id="int-55c2e0",
        meeting_subject="Northwind / Contoso: rollout plan for 1,200 vehicles",
        meeting_start=NOW - timedelta(days=1, hours=2),
        deal_id="D-10482",
        deal_title="Fleet telematics renewal 2026",
        account="Northwind Traders",
        reason=MatchReason(
            rule="An attendee is a contact on this deal", address="jordan.lee@northwind.example"
        ),
        crm_url=deal_url("D-10482"),
        stamp="int-55c2e0@1",
        viewer_ids=[REP_TEAMS_ID],
    )
    return view.model_copy(update=changes)


CANDIDATES = [
    DealCandidate(
        deal_id="D-10482",
        title="Fleet telematics renewal 2026",
        account="Northwind Traders",
        stage_name="Proposal sent",
        reason="Jordan Lee (jordan.lee@northwind.example) is a contact",
    ),
    DealCandidate(
        deal_id="D-10517",
        title="Cold-chain sensors pilot",
        account="Northwind Traders",
        stage_name="Discovery",
        reason="Same account: northwind.example",
    ),
    DealCandidate(
        deal_id="D-10533",
        title="Driver safety analytics add-on",
        account="Northwind Traders",
        stage_name="Qualification",
        reason="Same account: northwind.example",
    ),
]


def pick_deal(**changes: object) -> PickDealView:
    """The sample meeting that matched three Northwind deals."""
    view = PickDealView(
        interaction_id="int-61d0aa",
        meeting_subject="Quarterly business review, Northwind",
        meeting_start=NOW - timedelta(hours=20),
        candidates=CANDIDATES,
        stamp="int-61d0aa@1",
        viewer_ids=[REP_TEAMS_ID],
    )
    return view.model_copy(update=changes)


def after_meeting(**changes: object) -> AfterMeetingView:
    """The sample held meeting asking for its outcome."""
    view = AfterMeetingView(
        interaction_id="int-55c2e0",
        deal_id="D-10482",
        deal_title="Fleet telematics renewal 2026",
        account="Northwind Traders",
        meeting_subject="Northwind / Contoso: rollout plan for 1,200 vehicles",
        meeting_end=NOW - timedelta(minutes=30),
        stage=PROPOSAL,
        pipeline=PIPELINE,
        crm_url=deal_url("D-10482"),
        stamp="D-10482@r14",
        viewer_ids=[REP_TEAMS_ID],
    )
    return view.model_copy(update=changes)


def digest(**changes: object) -> DigestView:
    """The sample daily digest."""
    view = DigestView(
        rep_name=REP,
        day=date(2025, 11, 18),
        due_today=[
            DigestReminder(
                reminder_id="rem-7f3a91",
                deal_title="Fleet telematics renewal 2026",
                account="Northwind Traders",
                rule_title="Proposal sent, no reply for 14 days",
                due_at=NOW + timedelta(hours=1),
                crm_url=deal_url("D-10482"),
            ),
            DigestReminder(
                reminder_id="rem-80b1c4",
                deal_title="Warehouse Wi-Fi refresh",
                account="Fabrikam Logistics",
                rule_title="Negotiation: confirm the signatory",
                due_at=NOW + timedelta(hours=5),
                crm_url=deal_url("D-10390"),
            ),
        ],
        overdue=[
            DigestReminder(
                reminder_id="rem-6e22d9",
                deal_title="Point-of-sale upgrade, 40 stores",
                account="Tailspin Toys",
                rule_title="Discovery: book the technical workshop",
                due_at=NOW - timedelta(days=3),
                crm_url=deal_url("D-10211"),
            )
        ],
        idle_longest=[
            IdleDeal(
                deal_id="D-10166",
                title="Data platform migration",
                account="Woodgrove Bank",
                stage_name="Negotiation",
                idle_days=23,
                crm_url=deal_url("D-10166"),
            ),
            IdleDeal(
                deal_id="D-10298",
                title="Contact centre licences",
                account="Litware Inc.",
                stage_name="Discovery",
                idle_days=17,
                crm_url=deal_url("D-10298"),
            ),
        ],
    )
    return view.model_copy(update=changes)


def health(**changes: object) -> HealthView:
    """The sample admin health report with one problem of each kind."""
    view = HealthView(
        checked_at=NOW,
        failing_mailboxes=[
            MailboxSyncFailure(
                mailbox="marco.bianchi@contoso.example",
                since=NOW - timedelta(hours=6),
                error="403 ErrorAccessDenied: the mailbox is outside the application access policy",
            )
        ],
        missing_consent=[
            ConsentMissing(
                permission="TeamsAppInstallation.ReadWriteSelfForUser.All",
                consent_url=(
                    "https://login.microsoftonline.com/contoso.example/v2.0/adminconsent"
                    "?client_id=6c1e7f52-8f0b-4f8e-9d7e-2a4b9f0c1d11"
                    "&scope=https://graph.microsoft.com/.default"
                ),
            )
        ],
        expiring_secrets=[
            SecretExpiring(name="DealBridge client secret", expires_at=NOW + timedelta(days=12))
        ],
        admin_url="https://dealbridge.contoso.example/admin",
    )
    return view.model_copy(update=changes)


def my_reminders(**changes: object) -> MyRemindersView:
    """The sample "reminders" answer."""
    view = MyRemindersView(
        rep_name=REP,
        stamp="rep-priya@r88",
        reminders=[
            ReminderLine(
                reminder_id="rem-6e22d9",
                deal_id="D-10211",
                deal_title="Point-of-sale upgrade, 40 stores",
                account="Tailspin Toys",
                rule_title="Discovery: book the technical workshop",
                due_at=NOW - timedelta(days=3),
                overdue=True,
                crm_url=deal_url("D-10211"),
            ),
            ReminderLine(
                reminder_id="rem-7f3a91",
                deal_id="D-10482",
                deal_title="Fleet telematics renewal 2026",
                account="Northwind Traders",
                rule_title="Proposal sent, no reply for 14 days",
                due_at=NOW + timedelta(hours=1),
                overdue=False,
                crm_url=deal_url("D-10482"),
            ),
        ],
    )
    return view.model_copy(update=changes)


def my_deals(**changes: object) -> MyDealsView:
    """The sample "deals" answer."""
    view = MyDealsView(
        rep_name=REP,
        stages=[
            StageDeals(
                stage_name="Discovery",
                deals=[
                    DealLine(
                        deal_id="D-10211",
                        title="Point-of-sale upgrade, 40 stores",
                        account="Tailspin Toys",
                        amount=Money(amount=Decimal("212000"), currency="USD"),
                        days_in_stage=9,
                        crm_url=deal_url("D-10211"),
                    ),
                    DealLine(
                        deal_id="D-10298",
                        title="Contact centre licences",
                        account="Litware Inc.",
                        amount=Money(amount=Decimal("56400"), currency="EUR"),
                        days_in_stage=17,
                        crm_url=deal_url("D-10298"),
                    ),
                ],
            ),
            StageDeals(
                stage_name="Proposal sent",
                deals=[
                    DealLine(
                        deal_id="D-10482",
                        title="Fleet telematics renewal 2026",
                        account="Northwind Traders",
                        amount=Money(amount=Decimal("148500"), currency="USD"),
                        days_in_stage=16,
                        crm_url=deal_url("D-10482"),
                    )
                ],
            ),
            StageDeals(
                stage_name="Negotiation",
                deals=[
                    DealLine(
                        deal_id="D-10166",
                        title="Data platform migration",
                        account="Woodgrove Bank",
                        amount=Money(amount=Decimal("487250.50"), currency="CHF"),
                        days_in_stage=23,
                        crm_url=deal_url("D-10166"),
                    )
                ],
            ),
        ],
    )
    return view.model_copy(update=changes)


def deal(**changes: object) -> DealView:
    """The sample deal card (a search result, a shared card, `deal <text>`)."""
    view = DealView(
        deal_id="D-10482",
        title="Fleet telematics renewal 2026",
        account="Northwind Traders",
        contact="Jordan Lee (jlee@northwind.example)",
        owner=REP,
        stage=PIPELINE[2],
        pipeline=PIPELINE,
        amount=Money(amount=Decimal("148500"), currency="USD"),
        close_date=date(2026, 1, 30),
        next_reminder=NextReminder(
            title="Follow up on the proposal", due_at=NOW + timedelta(days=2, hours=1)
        ),
        last_interaction=LastInteraction(
            at=NOW - timedelta(days=3), summary="Meeting: Pricing review with Northwind"
        ),
        crm_url=deal_url("D-10482"),
        stamp="d42.proposal.open.1763456400.1763197200",
        viewer_ids=[REP_TEAMS_ID],
    )
    return view.model_copy(update=changes)


def sample_views() -> dict[str, CardView]:
    """Every card in every state, by a file-friendly name."""
    yesterday = NOW - timedelta(days=1)
    return {
        "reminder": reminder(),
        "reminder-snoozed": reminder(
            state=ReminderSnoozed(until=NOW + timedelta(days=3), by=REP), stamp="D-10482@r15"
        ),
        "reminder-done": reminder(state=ReminderDone(by=REP, at=NOW + timedelta(minutes=4))),
        "reminder-superseded": reminder(
            state=ReminderSuperseded(reason=f"Moved to Negotiation by {REP}"), stamp="D-10482@r16"
        ),
        "reminder-last-stage": reminder(
            stage=WON, pipeline=PIPELINE[:5], amount=None, last_interaction=None, due_at=None
        ),
        "meeting-logged": meeting_logged(),
        "meeting-logged-chosen": meeting_logged(
            state=MeetingLoggedByChoice(by=REP, at=yesterday + timedelta(hours=3))
        ),
        "meeting-logged-cancelled": meeting_logged(state=MeetingCancelled()),
        "meeting-logged-withdrawn": meeting_logged(
            state=MeetingWithdrawn(by=REP, at=NOW, undo_until=NOW + timedelta(days=1))
        ),
        "meeting-logged-withdrawn-final": meeting_logged(
            state=MeetingWithdrawn(by=REP, at=yesterday)
        ),
        "pick-deal": pick_deal(),
        "pick-deal-settled": pick_deal(
            state=PickSettled(
                deal_title="Cold-chain sensors pilot", by=REP, at=NOW - timedelta(hours=1)
            )
        ),
        "pick-deal-cancelled": pick_deal(state=MeetingCancelled()),
        "pick-deal-no-candidates": pick_deal(candidates=[]),
        "after-meeting": after_meeting(),
        "after-meeting-recorded": after_meeting(
            state=OutcomeRecorded(
                outcome="progressing",
                note="Finance picked option B (36 months). Legal review starts Monday.",
                stage_name="Negotiation",
                by=REP,
                at=NOW,
            )
        ),
        "after-meeting-not-needed": after_meeting(
            state=OutcomeNotNeeded(reason="The deal was closed won by Marco Bianchi")
        ),
        "after-meeting-last-stage": after_meeting(stage=WON, pipeline=PIPELINE[:5]),
        "digest": digest(),
        "digest-empty": digest(due_today=[], overdue=[], idle_longest=[]),
        "health": health(),
        "health-all-good": health(failing_mailboxes=[], missing_consent=[], expiring_secrets=[]),
        "help": HelpView(),
        "help-unknown": HelpView(unknown_text="what's up with northwind"),
        "my-reminders": my_reminders(),
        "my-reminders-empty": my_reminders(reminders=[]),
        "my-deals": my_deals(),
        "my-deals-empty": my_deals(stages=[]),
        "deal": deal(),
        "deal-shared-read-only": deal(can_act=False, viewer_ids=[]),
        "deal-won": deal(status="won", next_reminder=None),
        "deal-bare": deal(
            contact=None, owner=None, amount=None, close_date=None, last_interaction=None
        ),
        # Teams attendance and the brief before a meeting
        "after-meeting-attended": after_meeting(
            attendance="Held (Teams attendance, 42 min): Dana Lee (40 min) joined."
        ),
        "after-meeting-no-show": after_meeting(
            state=NoShowAsked(),
            attendance="No-show: nobody from the customer joined. Priya Raman (12 min) waited.",
        ),
        "after-meeting-no-show-rescheduled": after_meeting(
            state=NoShowDecided(decision="reschedule", by=REP)
        ),
        "brief": BriefView(
            interaction_id="int-55c2e1",
            meeting_subject="Northwind / Contoso: pricing for 1,200 vehicles",
            meeting_start=NOW + timedelta(minutes=15),
            deal_id="D-10482",
            deal_title="Fleet telematics renewal 2026",
            account="Northwind Traders",
            stage_name="Proposal",
            days_in_stage=12,
            last_interactions=["Nov 11 · Meeting: rollout plan", "Nov 04 · Call: budget"],
            open_reminders=["Send the revised proposal (due Nov 19)"],
            accepted=["Dana Lee"],
            not_answered=["Sam Ortiz"],
            crm_url=deal_url("D-10482"),
            stamp="b202511180915",
        ),
    }
