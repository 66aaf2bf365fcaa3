"""Default reminder rules for the five preset pipelines.

A few reminders per stage, the ones a sales manager asks reps for: touch a new lead within a
day, recap after each conversation, notice a deal gone quiet, keep an eye on the close date.
Every preset ends in ``won`` and ``lost`` stages, which have no rules. The documents' example —
a client who answered a commercial proposal is a task for the rep within 24 hours — is
measure5's ``commercial_proposal`` stage.
"""

from __future__ import annotations

from reminders.rules import (
    AfterInteractionRule,
    BeforeCloseRule,
    Duration,
    IdleRule,
    OnEnterRule,
    ReminderRule,
    RepeatRule,
    SlaRule,
    parse_duration,
)


def _d(text: str) -> Duration:
    return parse_duration(text)


def _first_contact() -> OnEnterRule:
    return OnEnterRule(
        id="first-contact",
        after=_d("1 business day"),
        title="Contact the new lead: {deal.title}",
        message=(
            "{deal.title} is a new lead from {deal.account}. Get in touch today, while the "
            "interest is fresh, and agree on a first conversation."
        ),
    )


def _qualify_or_drop(stage_words: str) -> SlaRule:
    return SlaRule(
        id="qualify-or-drop",
        within=_d("10 business days"),
        title="Qualify or drop: {deal.title}",
        message=(
            f"{{deal.title}} has been {stage_words} for {{days_in_stage}} days. Check budget, "
            "decision-maker, need and timing with {deal.account}, then move it on or mark it lost."
        ),
    )


def _recap(within: str, next_step: str) -> AfterInteractionRule:
    return AfterInteractionRule(
        id="recap",
        within=_d(within),
        title="Send the recap: {deal.title}",
        message=(
            "You spoke with {deal.account} on {deal.last_interaction}. Send them a short recap "
            f"and {next_step}."
        ),
    )


def _gone_quiet(after: str) -> IdleRule:
    return IdleRule(
        id="gone-quiet",
        after=_d(after),
        title="Gone quiet for {days_idle} days: {deal.title}",
        message=(
            "No meeting or call with {deal.account} on {deal.title} for {days_idle} days "
            "({days_in_stage} days in {deal.stage}). Reach out before the deal goes cold."
        ),
    )


def _negotiation_stalls() -> SlaRule:
    return SlaRule(
        id="negotiation-stalls",
        within=_d("20 business days"),
        warn_at=0.75,
        title="Negotiation dragging on: {deal.title}",
        message=(
            "{deal.title} ({deal.amount}) has been in negotiation for {days_in_stage} days. "
            "Settle the open terms with {deal.account}, move the close date, or ask your "
            "manager for help."
        ),
    )


def _prepare_close() -> BeforeCloseRule:
    return BeforeCloseRule(
        id="prepare-close",
        before=_d("3 business days"),
        title="Closing on {deal.close_date}: {deal.title}",
        message=(
            "{deal.title} ({deal.amount}) is expected to close on {deal.close_date}. Confirm the "
            "signer, the paperwork and the start date with {deal.account}."
        ),
    )


def _send_contract() -> OnEnterRule:
    return OnEnterRule(
        id="send-contract",
        after=_d("1 business day"),
        title="Send the contract: {deal.title}",
        message=(
            "Send {deal.account} the contract for {deal.title} ({deal.amount}) and agree on "
            "the signing date."
        ),
    )


def _close_date_check() -> BeforeCloseRule:
    return BeforeCloseRule(
        id="close-date",
        before=_d("1 business day"),
        title="Closes on {deal.close_date}: {deal.title}",
        message=(
            "{deal.title} should close on {deal.close_date}. Check that the contract is signed, "
            "or move the close date in the CRM so the forecast stays true."
        ),
    )


def _waiting_for_signature() -> SlaRule:
    return SlaRule(
        id="waiting-for-signature",
        within=_d("10 business days"),
        title="Still not signed: {deal.title}",
        message=(
            "{deal.title} has waited {days_in_stage} days for a signature. Call {deal.account} "
            "and find out what stands in the way."
        ),
    )


def _after_sale() -> list[ReminderRule]:
    return [
        OnEnterRule(
            id="first-week",
            after=_d("1w"),
            title="How is it going? {deal.title}",
            message=(
                "{deal.account} has had {deal.title} for a week. Call to check it works as "
                "promised and that they know whom to ask for help."
            ),
        ),
        RepeatRule(
            id="check-in",
            every=_d("4w"),
            max_times=3,
            title="Customer check-in: {deal.account}",
            message=(
                "Check in with {deal.account}: how is {deal.title} going, and is there anything "
                "more they need? Happy clients refer and renew."
            ),
        ),
    ]


def _classic5() -> dict[str, list[ReminderRule]]:
    return {
        "lead_generation": [_first_contact(), _qualify_or_drop("a lead")],
        "first_interaction": [
            _recap("1 business day", "propose a date for presenting the solution"),
            _gone_quiet("5 business days"),
        ],
        "solution_presentation": [
            _recap("1 business day", "answer the questions they raised in the presentation"),
            _gone_quiet("5 business days"),
        ],
        "negotiation": [_gone_quiet("3 business days"), _negotiation_stalls(), _prepare_close()],
        "deal_closing": [_send_contract(), _close_date_check(), _waiting_for_signature()],
    }


def _journey7() -> dict[str, list[ReminderRule]]:
    return {
        "identification": [_qualify_or_drop("in identification")],
        "qualification": [
            OnEnterRule(
                id="qualify",
                after=_d("2 business days"),
                title="Qualify: {deal.title}",
                message=(
                    "Confirm with {deal.account} who decides, the budget, the need and the "
                    "timing for {deal.title}."
                ),
            ),
            _qualify_or_drop("in qualification"),
        ],
        "initial_contact": [
            _first_contact(),
            _recap("1 business day", "agree on the next conversation"),
            _gone_quiet("5 business days"),
        ],
        "solution": [
            _recap("2 business days", "send the solution you discussed, shaped to their need"),
            _gone_quiet("5 business days"),
        ],
        "negotiation": [_gone_quiet("3 business days"), _negotiation_stalls(), _prepare_close()],
        "closing": [_send_contract(), _close_date_check(), _waiting_for_signature()],
        "after_sales": _after_sale(),
    }


def _b2b6() -> dict[str, list[ReminderRule]]:
    return {
        "need_identification": [
            OnEnterRule(
                id="discovery-call",
                after=_d("1 business day"),
                title="Book a discovery call: {deal.title}",
                message=(
                    "Book a call with {deal.account} to understand the need behind "
                    "{deal.title}: the problem, who feels it, and what it costs them."
                ),
            ),
            _gone_quiet("5 business days"),
        ],
        "solution_search": [
            _recap("2 business days", "share the options that fit their need"),
            _gone_quiet("5 business days"),
        ],
        "evaluation_of_options": [
            IdleRule(
                id="gone-quiet",
                after=_d("5 business days"),
                title="Comparing options: {deal.title}",
                message=(
                    "{deal.account} has been weighing options for {days_in_stage} days, "
                    "{days_idle} of them without a call. Ask which criteria matter and who "
                    "will decide."
                ),
            ),
        ],
        "agreement": [_gone_quiet("3 business days"), _negotiation_stalls(), _prepare_close()],
        "deal": [_send_contract(), _close_date_check(), _waiting_for_signature()],
        "post_sale_support": _after_sale(),
    }


def _aida4() -> dict[str, list[ReminderRule]]:
    return {
        "attention": [_first_contact(), _qualify_or_drop("at the attention stage")],
        "interest": [
            _recap("1 business day", "send the material that answers what they asked"),
            _gone_quiet("5 business days"),
        ],
        "desire": [
            OnEnterRule(
                id="send-offer",
                after=_d("2 business days"),
                title="Send the offer: {deal.title}",
                message=(
                    "{deal.account} wants what you showed them. Send the offer for "
                    "{deal.title} and book a call to walk them through it."
                ),
            ),
            _gone_quiet("3 business days"),
            _prepare_close(),
        ],
        "action": [_send_contract(), _close_date_check(), _waiting_for_signature()],
    }


def _measure5() -> dict[str, list[ReminderRule]]:
    return {
        "lead": [_first_contact(), _qualify_or_drop("a lead")],
        "qualified_lead": [
            OnEnterRule(
                id="book-presentation",
                after=_d("2 business days"),
                title="Book the presentation: {deal.title}",
                message=(
                    "{deal.account} is qualified. Book the presentation of {deal.title} "
                    "with them while they are keen."
                ),
            ),
            _gone_quiet("5 business days"),
        ],
        "presentation": [
            _recap("1 business day", "answer the questions they raised in the presentation"),
            _gone_quiet("5 business days"),
        ],
        "commercial_proposal": [
            # The sources' example: a client who answered the proposal is a task within 24 hours.
            AfterInteractionRule(
                id="answer-client",
                within=_d("24h"),
                title="The client answered the proposal: {deal.title}",
                message=(
                    "{deal.account} got back to you on the proposal for {deal.title} "
                    "({deal.amount}) on {deal.last_interaction}. Answer them within 24 hours."
                ),
            ),
            IdleRule(
                id="no-answer",
                after=_d("3 business days"),
                title="Proposal gone quiet: {deal.title}",
                message=(
                    "{days_idle} days without a conversation with {deal.account} about the "
                    "proposal for {deal.title}. Call to hear what they think and what is missing."
                ),
            ),
            _prepare_close(),
        ],
        "deal": [_send_contract(), _close_date_check(), _waiting_for_signature()],
    }


def _with_outcomes(stages: dict[str, list[ReminderRule]]) -> dict[str, list[ReminderRule]]:
    return {**stages, "won": [], "lost": []}


#: preset key → stage key → that stage's default rules (``won`` and ``lost`` have none).
PRESET_RULES: dict[str, dict[str, list[ReminderRule]]] = {
    "classic5": _with_outcomes(_classic5()),
    "journey7": _with_outcomes(_journey7()),
    "b2b6": _with_outcomes(_b2b6()),
    "aida4": _with_outcomes(_aida4()),
    "measure5": _with_outcomes(_measure5()),
}


def preset_rules(preset: str, stage_key: str) -> list[ReminderRule]:
    """A stage's default rules, as a new list; KeyError for an unknown preset or stage."""
    return list(PRESET_RULES[preset][stage_key])
