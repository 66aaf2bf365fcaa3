"""The planner: a deal's state + its stage's rules + the rep's working calendar → its reminders.

Pure and deterministic: the same input gives the same list, in the same order. The connector
calls :func:`plan_reminders` in the transaction of every deal change and reconciles its stored
reminders by key: it adds new keys, cancels stored keys that are no longer planned (unless done
or snoozed), and updates a stored reminder whose due time or text changed.

Keys are ``{deal}:{stage}:{entered}:{rule}:{occurrence}``, where ``entered`` is the instant the
deal entered the stage (compact UTC). A new visit to a stage — even the same stage again —
therefore gives new keys, and nothing in a key depends on ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from reminders.rules import (
    WITH_THE_CUSTOMER,
    AfterInteractionRule,
    BeforeCloseRule,
    Duration,
    IdleRule,
    InteractionKind,
    OnEnterRule,
    ReminderRule,
    RepeatRule,
    RuleKind,
    SlaRule,
    render_template,
)
from reminders.worktime import (
    ONE_DAY,
    WorkingCalendar,
    add_duration,
    add_working_time,
    business_time_between,
    local_instant,
    place_in_working_time,
    working_hours_on,
)

DealStatus = Literal["open", "won", "lost"]

#: The subject line of a reminder whose rule has no title.
DEFAULT_TITLES: dict[RuleKind, str] = {
    "on_enter": "{deal.title}: next step in {deal.stage}",
    "idle": "Quiet for {days_idle} days: {deal.title}",
    "sla": "Leave {deal.stage} soon: {deal.title}",
    "before_close": "Closes in {days_to_close} days: {deal.title}",
    "repeat": "Check in: {deal.title}",
    "after_interaction": "Follow up: {deal.title}",
}
#: The subject line of an sla's overdue reminder whose rule has no title.
DEFAULT_OVERDUE_TITLE = "Overdue in {deal.stage}: {deal.title}"
#: Put before a rule's own title on an sla's overdue reminder.
OVERDUE_TITLE_PREFIX = "Overdue: "


def _plausible_year(value: datetime) -> datetime:
    # Guards the arithmetic against sentinels like 9999-12-31 that some CRMs use for "none".
    if not 1970 <= value.year <= 2200:
        raise ValueError(f"{value.isoformat()} is outside 1970..2200")
    return value.astimezone(UTC)


def _plausible_date(value: date) -> date:
    if not 1970 <= value.year <= 2200:
        raise ValueError(f"{value.isoformat()} is outside 1970..2200; leave it empty instead")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_plausible_year)]


class DealState(BaseModel):
    """What the planner needs to know about a deal, built by the connector from its store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deal_id: str = Field(min_length=1)
    """The deal's id in the CRM."""
    title: str
    pipeline: str
    """The pipeline's display name."""
    stage_key: str = Field(min_length=1)
    """The stage's key within its pipeline, e.g. ``negotiation``."""
    stage_name: str
    """The stage's display name, e.g. ``Negotiation``."""
    status: DealStatus = "open"
    entered_stage_at: Instant
    """When the deal entered its current stage (normalised to UTC)."""
    last_held_interaction_at: Instant | None = None
    """When the last interaction with the customer that took place happened, its kind not
    said: read as a meeting, a call and an email (see ``last_held``)."""
    last_held: Mapping[InteractionKind, Instant] = Field(default_factory=dict)
    """When the last interaction of each kind that took place happened (a rule reacts only to
    the kinds it names: a note is not contact with the customer)."""
    expected_close_date: Annotated[date, AfterValidator(_plausible_date)] | None = None
    amount: Decimal | None = None
    currency: str = ""
    account_name: str = ""
    owner_email: str = ""
    owner_name: str = ""
    crm_url: str = ""


class PlannedReminder(BaseModel):
    """A reminder that should exist for a deal, and when it is due."""

    model_config = ConfigDict(
        frozen=True, alias_generator=to_camel, validate_by_name=True, validate_by_alias=True
    )

    key: str
    """Stable identity: the same deal, stage visit, rule and occurrence give the same key."""
    deal_id: str
    stage_key: str
    rule_id: str
    kind: RuleKind
    occurrence: str
    """Which reminder of its rule: ``1``.. for repeat, ``warn``/``overdue`` for sla, the close
    date for before_close, ``since-<instant>`` / ``after-<instant>`` for idle /
    after_interaction, ``1`` for on_enter."""
    due_at: AwareDatetime
    """When to remind, in UTC, always inside the rep's working hours."""
    title: str
    message: str
    stage_deadline: bool = False
    """True for an sla's reminder at its limit, the stage's deadline: the deal should have left
    the stage by then (the occurrence ``overdue``). Whether a reminder is past due is the
    connector's to say, at the time it asks."""


def plan_reminders(
    deal: DealState,
    rules: Sequence[ReminderRule],
    calendar: WorkingCalendar,
    now: datetime,
) -> list[PlannedReminder]:
    """The reminders that should exist for ``deal`` now, sorted by due time then key.

    An ``idle`` or ``after_interaction`` rule reacts only to the interaction kinds it names
    (``reacts_to``). Reminders already past due are included (the connector keeps done and
    snoozed ones itself). Won and lost deals have none. ``now`` only decides which
    interactions count as held: one recorded after ``now`` is not held yet. Messages are
    rendered as of each reminder's due time, so re-planning later does not change them.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if deal.status != "open":
        return []
    ids = [rule.id for rule in rules]
    if len(set(ids)) != len(ids):
        raise ValueError(f"rule ids must be unique within a stage: {ids}")
    visit = _StageVisit(deal, calendar, now)
    planned = [reminder for rule in rules for reminder in visit.reminders(rule)]
    planned.sort(key=lambda r: (r.due_at, r.key))
    return planned


def compact_instant(t: datetime) -> str:
    """An instant as a short UTC token for keys, e.g. ``20260310T140000Z``."""
    u = t.astimezone(UTC)
    return u.strftime("%Y%m%dT%H%M%S") + (f".{u.microsecond:06d}" if u.microsecond else "") + "Z"


def _key_part(text: str) -> str:
    # Keys are colon-separated, so a colon inside a CRM id must not read as a separator.
    return text.replace("%", "%25").replace(":", "%3A")


class _StageVisit:
    """One deal's stay in one stage: turns each rule into its reminders."""

    def __init__(self, deal: DealState, calendar: WorkingCalendar, now: datetime) -> None:
        self.deal = deal
        self.calendar = calendar
        self.now = now
        self.entered = deal.entered_stage_at
        self.key_prefix = ":".join(
            (_key_part(deal.deal_id), _key_part(deal.stage_key), compact_instant(self.entered))
        )

    def held(self, kinds: Sequence[InteractionKind]) -> datetime | None:
        """The last interaction of these kinds that has taken place (one recorded after
        ``now`` has not)."""
        deal = self.deal
        times = [deal.last_held[k] for k in kinds if k in deal.last_held]
        if deal.last_held_interaction_at is not None and set(kinds) & set(WITH_THE_CUSTOMER):
            times.append(deal.last_held_interaction_at)
        past = [t for t in times if t <= self.now]
        return max(past) if past else None

    def interaction(self, kinds: Sequence[InteractionKind]) -> datetime | None:
        """That interaction if it happened during this stay in the stage."""
        held = self.held(kinds)
        return held if held is not None and held >= self.entered else None

    def idle_since(self, kinds: Sequence[InteractionKind]) -> datetime:
        """Since when the deal has had no held interaction of these kinds in this stage."""
        return self.interaction(kinds) or self.entered

    def reminders(self, rule: ReminderRule) -> Iterator[PlannedReminder]:
        for occurrence, due, stage_deadline in self._occurrences(rule):
            yield self._reminder(rule, occurrence, due, stage_deadline)

    def _place(self, t: datetime) -> datetime:
        return place_in_working_time(self.calendar, t)

    def _occurrences(self, rule: ReminderRule) -> list[tuple[str, datetime, bool]]:
        """Each occurrence of the rule as (occurrence, due time in working hours, whether it
        is the stage's deadline)."""
        calendar, entered = self.calendar, self.entered
        match rule:
            case OnEnterRule(after=after):
                return [("1", self._place(add_duration(calendar, entered, after)), False)]
            case IdleRule(after=after, reacts_to=kinds):
                since = self.idle_since(kinds)
                due = self._place(add_duration(calendar, since, after))
                return [(f"since-{compact_instant(since)}", due, False)]
            case AfterInteractionRule(within=within, reacts_to=kinds):
                interaction = self.interaction(kinds)
                if interaction is None:
                    return []
                due = self._place(add_duration(calendar, interaction, within))
                return [(f"after-{compact_instant(interaction)}", due, False)]
            case SlaRule(within=within, warn_at=warn_at):
                return self._sla(within, warn_at)
            case BeforeCloseRule(before=before):
                return self._before_close(before)
            case RepeatRule(every=every, max_times=max_times):
                return self._repeat(every, max_times)
        raise AssertionError(f"unplanned rule kind {rule.kind}")

    def _sla(self, within: Duration, warn_at: float | None) -> list[tuple[str, datetime, bool]]:
        calendar, entered = self.calendar, self.entered
        limit = add_duration(calendar, entered, within)
        overdue = self._place(limit)
        if warn_at is None:
            return [("overdue", overdue, True)]
        if within.is_business_time:
            span = business_time_between(calendar, entered, limit)
            warn = self._place(add_working_time(calendar, entered, _fraction(span, warn_at)))
        else:
            warn = self._place(entered + _fraction(limit - entered, warn_at))
        if warn == overdue:
            return [("overdue", overdue, True)]  # the warning would say nothing more
        return [("warn", warn, False), ("overdue", overdue, True)]

    def _before_close(self, before: Duration) -> list[tuple[str, datetime, bool]]:
        close = self.deal.expected_close_date
        if close is None or close < self.entered.astimezone(self.calendar.zone).date():
            return []  # no date, or it had already passed when the deal entered the stage
        day = close
        if before.unit == "business_days":
            for _ in range(before.amount):
                day -= ONE_DAY
                while working_hours_on(self.calendar, day) is None:
                    day -= ONE_DAY
        else:
            day -= ONE_DAY * before.amount * (7 if before.unit == "weeks" else 1)
        start_of_day = local_instant(self.calendar, datetime.combine(day, time.min))
        due = self._place(max(start_of_day, self.entered))
        return [(f"close-{close.isoformat()}", due, False)]

    def _repeat(self, every: Duration, times: int) -> list[tuple[str, datetime, bool]]:
        occurrences: list[tuple[str, datetime, bool]] = []
        raw = self.entered
        for n in range(1, times + 1):
            raw = add_duration(self.calendar, raw, every)
            due = self._place(raw)
            # Hourly repeats over a weekend would all land on Monday 09:00: keep one.
            if not occurrences or due != occurrences[-1][1]:
                occurrences.append((str(n), due, False))
        return occurrences

    def _reminder(
        self, rule: ReminderRule, occurrence: str, due: datetime, stage_deadline: bool
    ) -> PlannedReminder:
        values = _FieldValues(self, due, getattr(rule, "reacts_to", WITH_THE_CUSTOMER))
        if rule.title is not None:
            title = OVERDUE_TITLE_PREFIX + rule.title if stage_deadline else rule.title
        else:
            title = DEFAULT_OVERDUE_TITLE if stage_deadline else DEFAULT_TITLES[rule.kind]
        return PlannedReminder(
            key=f"{self.key_prefix}:{rule.id}:{occurrence}",
            deal_id=self.deal.deal_id,
            stage_key=self.deal.stage_key,
            rule_id=rule.id,
            kind=rule.kind,
            occurrence=occurrence,
            due_at=due,
            title=render_template(title, values),
            message=render_template(rule.message, values),
            stage_deadline=stage_deadline,
        )


def _fraction(span: timedelta, fraction: float) -> timedelta:
    return timedelta(seconds=round(span.total_seconds() * fraction))


class _FieldValues(Mapping[str, str]):
    """The template fields of one reminder, each computed only when a template names it."""

    def __init__(self, visit: _StageVisit, due: datetime, kinds: Sequence[InteractionKind]) -> None:
        self.visit = visit
        self.deal = visit.deal
        self.zone = visit.calendar.zone
        self.due = due
        self.held = visit.held(kinds)
        """The last interaction the rule reacts to (a meeting, call or email for the others)."""
        self.idle_since = visit.idle_since(kinds)

    def __getitem__(self, name: str) -> str:
        return _FIELD_VALUES[name](self)

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELD_VALUES)

    def __len__(self) -> int:
        return len(_FIELD_VALUES)

    def local_date(self, t: datetime) -> date:
        return t.astimezone(self.zone).date()

    def days_since(self, t: datetime | None) -> str:
        return "" if t is None else str((self.local_date(self.due) - self.local_date(t)).days)


def _amount(deal: DealState) -> str:
    if deal.amount is None:
        return ""
    shown = f"{deal.amount:,.2f}".removesuffix(".00")
    return f"{shown} {deal.currency}".strip()


def _days_to_close(v: _FieldValues) -> str:
    close = v.deal.expected_close_date
    return "" if close is None else str((close - v.local_date(v.due)).days)


def _due(v: _FieldValues) -> str:
    return v.due.astimezone(v.zone).strftime("%a %d %b %H:%M")


_FIELD_VALUES: dict[str, Callable[[_FieldValues], str]] = {
    "deal.id": lambda v: v.deal.deal_id,
    "deal.title": lambda v: v.deal.title,
    "deal.account": lambda v: v.deal.account_name,
    "deal.amount": lambda v: _amount(v.deal),
    "deal.currency": lambda v: v.deal.currency,
    "deal.pipeline": lambda v: v.deal.pipeline,
    "deal.stage": lambda v: v.deal.stage_name,
    "deal.close_date": lambda v: (
        "" if v.deal.expected_close_date is None else v.deal.expected_close_date.isoformat()
    ),
    "deal.entered_stage": lambda v: v.local_date(v.deal.entered_stage_at).isoformat(),
    "deal.last_interaction": lambda v: "" if v.held is None else v.local_date(v.held).isoformat(),
    "deal.url": lambda v: v.deal.crm_url,
    "rep.name": lambda v: v.deal.owner_name,
    "rep.first_name": lambda v: (v.deal.owner_name.split() or [""])[0],
    "rep.email": lambda v: v.deal.owner_email,
    "days_in_stage": lambda v: v.days_since(v.deal.entered_stage_at),
    "days_since_interaction": lambda v: v.days_since(v.held),
    "days_idle": lambda v: v.days_since(v.idle_since),
    "days_to_close": _days_to_close,
    "due": _due,
}
