"""Reminder rules, part of each pipeline stage's definition.

A rule says when a reminder is wanted while a deal sits in a stage. Rules travel as JSON
(``rule.model_dump(mode="json")``) and read back with :func:`parse_stage_rules`; durations are
written the way people say them (``"24h"``, ``"2 business days"``) and message templates name
deal fields (``"{deal.title} has been in {deal.stage} for {days_in_stage} days"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from string import Formatter
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    TypeAdapter,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# --------------------------------------------------------------------------- durations

DurationUnit = Literal["minutes", "hours", "days", "weeks", "business_days", "business_hours"]

#: Units counted in the rep's working time (working days and hours, holidays skipped).
BUSINESS_UNITS: frozenset[str] = frozenset({"business_days", "business_hours"})
#: Units that are whole days: the only ones that make sense before a close *date*.
DAY_UNITS: frozenset[str] = frozenset({"days", "weeks", "business_days"})

# A reminder more than about a year away is not a reminder; the cap also keeps the
# working-time arithmetic bounded.
MAX_AMOUNT: Mapping[str, int] = {
    "minutes": 525_600,
    "hours": 8_760,
    "days": 365,
    "weeks": 52,
    "business_days": 260,
    "business_hours": 2_080,
}

_ACCEPTED_FORMS = "90m, 24h, 3d, 1w, 2 business days, 4 business hours"
_SHORT_UNITS: Mapping[str, DurationUnit] = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_WORD_UNITS: Mapping[str, DurationUnit] = {
    "minute": "minutes",
    "hour": "hours",
    "day": "days",
    "week": "weeks",
    "business day": "business_days",
    "business hour": "business_hours",
}
_SHORT_FORM = re.compile(r"(\d{1,9})\s*([mhdw])", re.IGNORECASE)
_WORD_FORM = re.compile(
    r"(\d{1,9})\s+(minute|hour|day|week|business\s+day|business\s+hour)s?", re.IGNORECASE
)
_DECIMAL = re.compile(r"\d*[.,]\d+\s*\D.*")


class Duration(BaseModel):
    """A positive whole amount of time, written as text on the wire (``"2 business days"``).

    Calendar units: ``minutes`` and ``hours`` are elapsed time; ``days`` and ``weeks`` keep the
    wall-clock time in the rep's zone (3d after 10:00 is 10:00, across a DST change).
    Business units count only the rep's working time.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: int = Field(ge=1)
    """How many units; a whole number, at least 1."""
    unit: DurationUnit
    """The unit the amount is counted in."""

    @model_validator(mode="before")
    @classmethod
    def _read_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            amount, unit = _parse_parts(data)
            return {"amount": amount, "unit": unit}
        return data

    @model_validator(mode="after")
    def _within_a_year(self) -> Self:
        _check_limit(str(self), self.amount, self.unit)
        return self

    @model_serializer(mode="plain")
    def _as_text(self) -> str:
        return str(self)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "title": "Duration",
            "description": f"A whole number and a unit: {_ACCEPTED_FORMS}.",
            "examples": ["24h", "3d", "2 business days"],
        }

    def __str__(self) -> str:
        match self.unit:
            case "minutes":
                return f"{self.amount}m"
            case "hours":
                return f"{self.amount}h"
            case "days":
                return f"{self.amount}d"
            case "weeks":
                return f"{self.amount}w"
            case "business_days":
                return f"{self.amount} business day{'' if self.amount == 1 else 's'}"
            case "business_hours":
                return f"{self.amount} business hour{'' if self.amount == 1 else 's'}"

    @property
    def is_business_time(self) -> bool:
        """True when the amount counts only the rep's working time."""
        return self.unit in BUSINESS_UNITS


def parse_duration(text: str) -> Duration:
    """Read a duration written like ``24h``, ``90m``, ``3d``, ``1w`` or ``2 business days``.

    Whole numbers only (write ``36h`` rather than ``1.5d``); at least 1 and at most about a
    year. Raises ``ValueError`` naming the text and the accepted forms.
    """
    amount, unit = _parse_parts(text)
    return Duration(amount=amount, unit=unit)


def _parse_parts(text: str) -> tuple[int, DurationUnit]:
    cleaned = text.strip()
    shown = text if len(text) <= 40 else text[:40] + "…"
    if match := _SHORT_FORM.fullmatch(cleaned):
        amount, unit = int(match[1]), _SHORT_UNITS[match[2].lower()]
    elif match := _WORD_FORM.fullmatch(cleaned):
        amount, unit = int(match[1]), _WORD_UNITS[" ".join(match[2].lower().split())]
    elif _DECIMAL.fullmatch(cleaned):
        msg = f"{shown!r} is not a duration: use a whole number (36h, not 1.5d); {_ACCEPTED_FORMS}"
        raise ValueError(msg)
    else:
        msg = (
            f"{shown!r} is not a duration: write a whole number and a unit, e.g. {_ACCEPTED_FORMS}"
        )
        raise ValueError(msg)
    _check_limit(text, amount, unit)
    return amount, unit


def _check_limit(text: str, amount: int, unit: str) -> None:
    if amount < 1:
        raise ValueError(f"{text!r} is not a duration: it must be at least 1 ({_ACCEPTED_FORMS})")
    if amount > MAX_AMOUNT[unit]:
        limit = MAX_AMOUNT[unit]
        raise ValueError(f"{text!r} is too long: at most {limit} {unit.replace('_', ' ')}")


# --------------------------------------------------------------------------- templates

#: The fields a message or title may name, and what each one shows.
TEMPLATE_FIELDS: Mapping[str, str] = {
    "deal.id": "the deal's id in the CRM",
    "deal.title": "the deal's title",
    "deal.account": "the client's account name",
    "deal.amount": "the amount with its currency, e.g. 12,500 EUR",
    "deal.currency": "the currency code",
    "deal.pipeline": "the pipeline's name",
    "deal.stage": "the stage's name",
    "deal.close_date": "the expected close date (YYYY-MM-DD)",
    "deal.entered_stage": "the date the deal entered the stage, in the rep's time zone",
    "deal.last_interaction": (
        "the date of the last held interaction the rule reacts to (others: a meeting, call or "
        "email), in the rep's time zone"
    ),
    "deal.url": "the link to the deal in the CRM",
    "rep.name": "the rep's display name",
    "rep.first_name": "the first word of the rep's display name",
    "rep.email": "the rep's email address",
    "days_in_stage": "whole days in the stage when the reminder is due",
    "days_since_interaction": (
        "whole days since that interaction (see deal.last_interaction) when the reminder is due"
    ),
    "days_idle": "whole days without a held interaction in the stage when the reminder is due",
    "days_to_close": "days from the reminder's due date to the expected close date",
    "due": "when the reminder is due, in the rep's time zone (e.g. Mon 16 Mar 09:00)",
}

#: What a field shows when the deal has no value for it: rendering never fails.
MISSING_VALUE = "—"

TemplatePart = tuple[str, str | None]


def validate_template(text: str) -> None:
    """Raise ``ValueError`` naming unknown fields or the syntax error; return None if usable.

    Fields are written ``{deal.title}``; ``{{`` and ``}}`` are literal braces. Format specs and
    conversions (``{deal.amount:,.2f}``, ``{deal.title!r}``) are not supported.
    """
    try:
        parsed = list(Formatter().parse(text))
    except ValueError as e:
        raise ValueError(f"template syntax error in {text!r}: {e} (use {{{{ for a brace)") from e
    unknown: list[str] = []
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if spec or conversion:
            shown = (
                f"{{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
            )
            raise ValueError(f"template field {shown} has a format; write {{{field}}} instead")
        if field not in TEMPLATE_FIELDS and field not in unknown:
            unknown.append(field or "{}")
    if unknown:
        names = ", ".join(f"{{{name}}}" if name != "{}" else "{}" for name in unknown)
        known = ", ".join(f"{{{name}}}" for name in TEMPLATE_FIELDS)
        raise ValueError(f"unknown template field(s) {names}; known fields: {known}")


@lru_cache(maxsize=4096)
def template_parts(text: str) -> tuple[TemplatePart, ...]:
    """The template as (literal, field) pairs; a template that does not parse is all literal."""
    try:
        return tuple((literal, field) for literal, field, _s, _c in Formatter().parse(text))
    except ValueError:
        return ((text, None),)


def render_template(text: str, values: Mapping[str, str]) -> str:
    """Fill a template; a field without a value shows as an em dash. Never raises."""
    out: list[str] = []
    for literal, field in template_parts(text):
        out.append(literal)
        if field is not None:
            out.append(values.get(field) or MISSING_VALUE)
    return "".join(out)


def _checked_template(text: str) -> str:
    validate_template(text)
    return text


MessageTemplate = Annotated[
    str, Field(min_length=1, max_length=1000), AfterValidator(_checked_template)
]
TitleTemplate = Annotated[
    str, Field(min_length=1, max_length=200), AfterValidator(_checked_template)
]

# --------------------------------------------------------------------------- rules

InteractionKind = Literal["meeting", "call", "email", "note"]
INTERACTION_KINDS: tuple[InteractionKind, ...] = ("meeting", "call", "email", "note")
#: Contact with the customer: what ``idle`` and ``after_interaction`` react to unless told.
#: A note is the rep's own record (e.g. "recap sent"), not the customer's reply.
WITH_THE_CUSTOMER: tuple[InteractionKind, ...] = ("meeting", "call", "email")


def _distinct_kinds(kinds: tuple[InteractionKind, ...]) -> tuple[InteractionKind, ...]:
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"each interaction kind once: {', '.join(kinds)}")
    return kinds


ReactsTo = Annotated[
    tuple[InteractionKind, ...], Field(min_length=1), AfterValidator(_distinct_kinds)
]

RuleKind = Literal["on_enter", "idle", "sla", "before_close", "repeat", "after_interaction"]
RULE_KINDS: tuple[RuleKind, ...] = (
    "on_enter",
    "idle",
    "sla",
    "before_close",
    "repeat",
    "after_interaction",
)
RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
MAX_RULES_PER_STAGE = 10


class _Rule(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )

    message: MessageTemplate
    """The reminder's text, a template over :data:`TEMPLATE_FIELDS`."""
    title: TitleTemplate | None = None
    """The reminder's subject line, a template; a sensible one per kind when absent."""


class OnEnterRule(_Rule):
    """A reminder a fixed time after the deal enters the stage."""

    kind: Literal["on_enter"] = "on_enter"
    id: RuleId = "on-enter"
    """Stable within the stage; part of each reminder's key."""
    after: Duration
    """How long after entering the stage."""


class IdleRule(_Rule):
    """A reminder when the deal has had no held interaction for a while in the stage.

    The clock starts when the deal enters the stage and restarts at each held interaction of
    a kind in ``reacts_to`` (by default a meeting, call or email with the customer; a note is
    not contact), so such an interaction cancels the pending reminder and plans a new one.
    """

    kind: Literal["idle"] = "idle"
    id: RuleId = "idle"
    after: Duration
    """How long without a held interaction."""
    reacts_to: ReactsTo = WITH_THE_CUSTOMER
    """The interaction kinds that restart the clock (default: meeting, call, email)."""


class SlaRule(_Rule):
    """The stage must be left within a time: a warning part way, and an overdue reminder."""

    kind: Literal["sla"] = "sla"
    id: RuleId = "sla"
    within: Duration
    """How long the deal may stay in the stage."""
    warn_at: float | None = Field(default=0.75, gt=0, lt=1)
    """When to warn, as a fraction of ``within``; None for the overdue reminder only."""


class BeforeCloseRule(_Rule):
    """A reminder a number of days before the expected close date (at the start of work)."""

    kind: Literal["before_close"] = "before_close"
    id: RuleId = "before-close"
    before: Duration
    """How long before the close date: days, weeks or business days."""

    @field_validator("before")
    @classmethod
    def _whole_days(cls, before: Duration) -> Duration:
        if before.unit not in DAY_UNITS:
            msg = f"{before} before a close date: use days, weeks or business days (e.g. 3d)"
            raise ValueError(msg)
        return before


class RepeatRule(_Rule):
    """A reminder every so often while the deal stays in the stage, at most a few times."""

    kind: Literal["repeat"] = "repeat"
    id: RuleId = "repeat"
    every: Duration
    """The time between reminders, counted from entering the stage."""
    max_times: int = Field(ge=1, le=52)
    """How many reminders at most."""


class AfterInteractionRule(_Rule):
    """A task due a time after each held interaction in the stage of a kind in ``reacts_to``.

    The sources' example: a client who answered a commercial proposal (an interaction logged
    in that stage) is a task for the rep within 24 hours. A newer interaction of those kinds
    replaces the task. By default a meeting, call or email with the customer: a note (the
    rep's "recap sent") is not the customer's reply and leaves the task as it is.
    """

    kind: Literal["after_interaction"] = "after_interaction"
    id: RuleId = "after-interaction"
    within: Duration
    """How soon after the interaction the rep should act."""
    reacts_to: ReactsTo = WITH_THE_CUSTOMER
    """The interaction kinds that call for the task (default: meeting, call, email)."""


ReminderRule = Annotated[
    OnEnterRule | IdleRule | SlaRule | BeforeCloseRule | RepeatRule | AfterInteractionRule,
    Field(discriminator="kind"),
]


def _unique_ids(rules: list[ReminderRule]) -> list[ReminderRule]:
    seen: set[str] = set()
    repeated: set[str] = set()
    for rule in rules:
        (repeated if rule.id in seen else seen).add(rule.id)
    if repeated:
        msg = f"rule ids must be unique within a stage; repeated: {', '.join(sorted(repeated))}"
        raise ValueError(msg)
    return rules


StageRules = Annotated[
    list[ReminderRule], Field(max_length=MAX_RULES_PER_STAGE), AfterValidator(_unique_ids)
]
"""A stage's rules: at most ten, ids unique. Use as a field type in the pipeline's models."""

_RULE = TypeAdapter[ReminderRule](ReminderRule)
_STAGE_RULES = TypeAdapter[list[ReminderRule]](StageRules)


def parse_rule(data: object) -> ReminderRule:
    """Read one rule from JSON-like data; raises pydantic ``ValidationError`` naming the field."""
    return _RULE.validate_python(data)


def parse_stage_rules(data: object) -> list[ReminderRule]:
    """Read a stage's list of rules; raises pydantic ``ValidationError`` naming the field."""
    return _STAGE_RULES.validate_python(data)


def dump_stage_rules(rules: list[ReminderRule]) -> list[dict[str, Any]]:
    """The JSON form of a stage's rules (what :func:`parse_stage_rules` reads back)."""
    return [rule.model_dump(mode="json") for rule in rules]
