"""Keeping reminders true: re-plan a deal in the same transaction as every change to it.

The planner (``reminders``, pure) says which reminders should exist; here we compare with the
stored ones and apply the difference: new keys are added, keys no longer planned are
cancelled (their deliveries withdrawn), done ones stay done, snoozed ones keep their snooze.
Every change to a reminder queues its deliveries in the outbox under a stable key per
channel, with a version in the payload, so the newest state is what gets delivered.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from connector.deals.changes import NEW_DEALS, NewDeal
from connector.deals.reps import channels_for
from connector.errors import Conflict, from_validation_error
from connector.outbox import enqueue, enqueue_new, new_rows
from connector.settings import Settings
from connector.signals import reminders_changed, settings_of
from connector.store.db import chunks, insert_numbered
from connector.store.models import Deal, Interaction, Pipeline, Reminder, Rep, utcnow
from connector.store.types import InteractionStatus, ReminderKind, ReminderStatus
from reminders.planner import DealState, PlannedReminder, plan_reminders
from reminders.rules import INTERACTION_KINDS, InteractionKind, ReminderRule, parse_stage_rules
from reminders.worktime import WorkingCalendar

log = logging.getLogger(__name__)
ACTIVE = ("open", "snoozed")
DEFERRED = "dealbridge.deferred_reminders"
DEFERRED_ROWS = "dealbridge.deferred_reminder_rows"  # session.info: new deals' reminders
PRELOADED = "dealbridge.preloaded_reminders"  # session.info: deal id → its reminders, once
HELD = "dealbridge.preloaded_held"  # session.info: deal id → its last held interactions, once
CHANGED = "dealbridge.changed_reminders"  # session.info: id → reminder, told at the end
CHANNELS = ("calendar", "teams")
AnyDeal = Deal | NewDeal  # a stored deal, or one just written as a row (its first plan)


class ReminderDelivery(BaseModel):
    """The outbox payload of a reminder on one channel (kinds ``calendar`` and ``teams``): which
    reminder, at which version, and where its Outlook event was when it was queued."""

    reminder_id: int
    version: int
    key: str
    mailbox: str | None = None
    event_id: str | None = None


@dataclass
class ReplanReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.cancelled)


def check_rules(raw: list[dict[str, Any]], field_prefix: str) -> list[dict[str, Any]]:
    """Validate a stage's rules (durations, templates); 422 naming the field otherwise."""
    try:
        rules = parse_stage_rules(raw)
    except ValidationError as exc:
        raise from_validation_error(exc, "body", prefix=f"{field_prefix}.") from exc
    return [rule.model_dump(mode="json") for rule in rules]


def working_calendar(rep: Rep | None, settings: Settings) -> WorkingCalendar:
    """The rep's working time from their mailbox (stored on the rep), else the defaults."""
    if rep is None:
        return WorkingCalendar(
            time_zone=settings.default_time_zone,
            working_days=frozenset(settings.default_working_days),
            start=dt.time.fromisoformat(settings.default_work_start),
            end=dt.time.fromisoformat(settings.default_work_end),
            holiday_country=settings.default_holiday_country,
        )
    return WorkingCalendar(
        time_zone=rep.time_zone or settings.default_time_zone,
        working_days=frozenset(rep.working_days or settings.default_working_days),
        start=dt.time.fromisoformat(rep.work_start or settings.default_work_start),
        end=dt.time.fromisoformat(rep.work_end or settings.default_work_end),
        holiday_country=rep.holiday_country or settings.default_holiday_country,
    )


def _cached(session: Session, kind: str, key: str, load: Any) -> Any:
    cache: dict[tuple[str, str], Any] = session.info.setdefault("dealbridge.cache", {})
    if (kind, key) not in cache:
        cache[(kind, key)] = load()
    return cache[(kind, key)]


def last_held(
    session: Session, deal: AnyDeal, now: dt.datetime
) -> dict[InteractionKind, dt.datetime]:
    """When the deal's last held interaction of each kind happened (a rule reacts only to
    the kinds it names: a note is not the customer's reply)."""
    preloaded: dict[int, dict[str, dt.datetime]] = session.info.get(HELD, {})
    found = preloaded.pop(deal.id, None) if deal.id is not None else None  # read once
    if deal.id is None or deal.last_interaction_at is None:
        return {}  # nothing held yet: no query (a new deal, most of an import)
    if found is None:
        rows = session.execute(
            select(Interaction.kind, func.max(Interaction.started_at))
            .where(
                Interaction.deal_id == deal.id,
                Interaction.status == InteractionStatus.HELD,
                Interaction.started_at <= now,
            )
            .group_by(Interaction.kind)
        )
        found = {kind.value: at for kind, at in rows if at is not None}
    kinds = {kind: kind for kind in INTERACTION_KINDS}  # the store's enum to the rules' words
    return {
        kinds[kind]: at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
        for kind, at in found.items()
        if kind in kinds
    }


def preload_last_held(
    session: Session, deal_ids: Iterable[int], now: dt.datetime
) -> dict[int, dict[str, dt.datetime]]:
    """The last held interaction of each kind of many deals in one query, for :func:`last_held`
    of each (inside :func:`deferred_deliveries`, which forgets them at its end; each is read
    once): a round's 500 deals were 500 queries. Returned too, by deal id: store kind → when
    (aware UTC)."""
    ids = sorted(set(deal_ids))
    held: dict[int, dict[str, dt.datetime]] = {i: {} for i in ids}
    for part in chunks(ids):
        rows = session.execute(
            select(Interaction.deal_id, Interaction.kind, func.max(Interaction.started_at))
            .where(
                Interaction.deal_id.in_(part),
                Interaction.status == InteractionStatus.HELD,
                Interaction.started_at <= now,
            )
            .group_by(Interaction.deal_id, Interaction.kind)
        )
        for deal_id, kind, at in rows:
            if deal_id is not None and at is not None:
                aware = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
                held[deal_id][kind.value] = aware
    session.info.setdefault(HELD, {}).update(held)  # last_held takes entries out, not held's
    return held


def deal_state(
    deal: AnyDeal,
    pipeline: Pipeline,
    rep: Rep | None,
    held: dict[InteractionKind, dt.datetime] | None = None,
) -> DealState:
    """The planner's view of a deal; ``held``: its last held interaction of each kind (without
    it, the deal's last interaction counts as contact with the customer)."""
    stage = pipeline.stage(deal.stage_key)
    return DealState(
        deal_id=deal.crm_id,
        title=deal.title,
        pipeline=pipeline.name,
        stage_key=deal.stage_key,
        stage_name=stage.name if stage else deal.stage_key,
        status=deal.status,
        entered_stage_at=deal.stage_entered_at,
        last_held_interaction_at=deal.last_interaction_at if held is None else None,
        last_held=held or {},
        expected_close_date=deal.expected_close_date,
        amount=deal.amount,
        currency=deal.currency or "",
        account_name=deal.account_name or "",
        owner_email=deal.owner_email or "",
        owner_name=rep.display_name if rep else "",
        crm_url=deal.crm_url or "",
    )


def planned_for(
    session: Session, deal: AnyDeal, settings: Settings, now: dt.datetime
) -> tuple[list[PlannedReminder], WorkingCalendar]:
    pipeline: Pipeline = _cached(
        session, "pipeline", deal.pipeline_id, lambda: session.get(Pipeline, deal.pipeline_id)
    )
    rep: Rep | None = None
    if deal.owner_email:
        rep = _cached(
            session,
            "rep",
            deal.owner_email,
            lambda: session.scalar(select(Rep).where(Rep.email == deal.owner_email)),
        )
    stage = pipeline.stage(deal.stage_key)
    rules: list[ReminderRule] = _cached(
        session,
        "rules",
        f"{pipeline.id}:{deal.stage_key}",
        lambda: parse_stage_rules(stage.rules if stage else []),
    )
    calendar = _cached(
        session, "calendar", deal.owner_email or "", lambda: working_calendar(rep, settings)
    )
    state = deal_state(deal, pipeline, rep, last_held(session, deal, now))
    return plan_reminders(state, rules, calendar, now), calendar


def replan(
    session: Session, deal: Deal, settings: Settings, now: dt.datetime, *, revive: bool = False
) -> ReplanReport:
    """Plan, then apply the difference to the stored reminders of this deal. A deal whose
    owner is an inactive rep plans nothing for her. With ``revive`` (the owner is active
    again), a cancelled reminder the plan wants again is open again."""
    try:
        planned, _ = planned_for(session, deal, settings, now)
        if not _owner_active(session, deal):
            planned = []
    except (ValidationError, ValueError) as exc:
        # The API validates what it stores; this guards older rows or odd imports: a deal the
        # planner cannot read keeps its reminders rather than failing the whole change.
        log.warning("cannot plan reminders of deal %s: %s", deal.crm_id, exc)
        return ReplanReport()
    wanted = {p.key: p for p in planned}
    fresh = session.info.get(NEW_DEALS)
    new_rows_of_deals: list[dict[str, Any]] | None = session.info.get(DEFERRED_ROWS)
    if fresh is not None and deal in fresh:
        fresh.discard(deal)  # a deal created in this transaction has no reminders yet
        if new_rows_of_deals is not None:  # inside deferred_deliveries: rows at its end
            stamp = utcnow()
            new_rows_of_deals.extend(_new_row(deal, plan, stamp) for plan in wanted.values())
            return ReplanReport(added=list(wanted))
        stored: dict[str, Reminder] = {}
    else:
        preloaded: dict[int, list[Reminder]] = session.info.get(PRELOADED, {})
        rows = preloaded.pop(deal.id, None)
        if rows is None:
            rows = list(session.scalars(select(Reminder).where(Reminder.deal_id == deal.id)))
        stored = {r.key: r for r in rows}
    report = ReplanReport()
    added: list[Reminder] = []
    for key, plan in wanted.items():
        reminder = stored.get(key)
        if reminder is None:
            added.append(_new_reminder(deal, plan))
            report.added.append(key)
        elif revive and reminder.status == "cancelled":
            _copy_plan(reminder, plan, deal)
            reminder.status, reminder.snoozed_until = ReminderStatus.OPEN, None
            reminder.version += 1
            report.updated.append(key)
            queue_deliveries(session, reminder, settings, now)
        elif reminder.status in ACTIVE and _differs(reminder, plan, deal):
            _copy_plan(reminder, plan, deal)
            reminder.version += 1
            report.updated.append(key)
            queue_deliveries(session, reminder, settings, now)
    if added:
        session.add_all(added)
        deferred: list[Reminder] | None = session.info.get(DEFERRED)
        if deferred is not None:
            deferred.extend(added)  # queued by deferred_deliveries after one flush
        else:
            session.flush()  # the deliveries name the reminders' ids
            for reminder in added:
                queue_deliveries(session, reminder, settings, now, new=True)
    for key, reminder in stored.items():
        if key not in wanted and reminder.status in ACTIVE and not key.startswith(BY_HAND):
            reminder.status = ReminderStatus.CANCELLED
            reminder.version += 1
            report.cancelled.append(key)
            queue_deliveries(session, reminder, settings, now)
    return report


BY_HAND = "by_hand:"
"""Keys of reminders a rep asked for (a no-show's "reschedule"): no rule plans them, so no
re-plan withdraws them; done or snoozed like any other."""


def remind_by_hand(
    session: Session,
    deal: Deal,
    key: str,
    title: str,
    message: str,
    due: dt.datetime,
    settings: Settings,
    now: dt.datetime,
) -> Reminder:
    """A reminder on the deal for its owner, once per ``key``; delivered like the planned ones."""
    full_key = f"{BY_HAND}{key}"
    found = session.scalar(select(Reminder).where(Reminder.key == full_key))
    if found is not None:
        return found
    reminder = Reminder(
        key=full_key,
        deal_id=deal.id,
        rep_email=deal.owner_email,
        stage_key=deal.stage_key,
        rule_id="by_hand",
        kind=ReminderKind.AFTER_INTERACTION,
        occurrence=key[:64],
        title=title[:500],
        message=message,
        due_at=due,
        status=ReminderStatus.OPEN,
        version=1,
    )
    session.add(reminder)
    session.flush()
    queue_deliveries(session, reminder, settings, now, new=True)
    return reminder


def _owner_active(session: Session, deal: AnyDeal) -> bool:
    if not deal.owner_email:
        return True
    rep: Rep | None = _cached(
        session,
        "rep",
        deal.owner_email,
        lambda: session.scalar(select(Rep).where(Rep.email == deal.owner_email)),
    )
    return rep is None or rep.active


def on_rep_changed(
    session: Session, *, rep: Rep, active: bool, deleted: bool, now: dt.datetime
) -> None:
    """``rep_changed``: withdraw every open reminder of a rep who left (their events and cards
    go through the outbox), or plan her deals again when she is back."""
    settings = settings_of(session)
    session.info.pop("dealbridge.cache", None)  # the rep's `active` just changed
    owned = select(Deal).where(Deal.owner_email == rep.email, Deal.status == "open")
    for deal in session.scalars(owned).all():
        replan(session, deal, settings, now, revive=active)
    if active:
        return
    left = select(Reminder).where(Reminder.rep_email == rep.email, Reminder.status.in_(ACTIVE))
    for reminder in session.scalars(left).all():  # reminders of deals she no longer owns
        reminder.status = ReminderStatus.CANCELLED
        reminder.version += 1
        queue_deliveries(session, reminder, settings, now)


def on_deal_changed(session: Session, *, deal: Deal, now: dt.datetime) -> None:
    """The ``deal_changed`` receiver: re-plan in the change's transaction."""
    replan(session, deal, settings_of(session), now)


def on_deals_created(session: Session, *, deals: Sequence[NewDeal], now: dt.datetime) -> None:
    """The ``deals_created`` receiver: the first reminders of deals just written as rows, as
    rows too (inside :func:`deferred_deliveries`, its own if the sender opened none)."""
    settings = settings_of(session)
    if DEFERRED_ROWS not in session.info:
        with deferred_deliveries(session, settings, now):
            on_deals_created(session, deals=deals, now=now)
        return
    rows: list[dict[str, Any]] = session.info[DEFERRED_ROWS]
    stamp = utcnow()
    for deal in deals:
        try:
            planned, _ = planned_for(session, deal, settings, now)
        except (ValidationError, ValueError) as exc:  # as replan: the deal keeps no plan
            log.warning("cannot plan reminders of deal %s: %s", deal.crm_id, exc)
            continue
        if _owner_active(session, deal):
            rows.extend(
                _new_row(deal, plan, stamp) for plan in {p.key: p for p in planned}.values()
            )


@contextmanager
def deferred_deliveries(session: Session, settings: Settings, now: dt.datetime) -> Iterator[None]:
    """Re-plan many deals with one flush: new reminders' deliveries are queued at the end. The
    reminders of deals created in this transaction are written as rows, one Core ``INSERT``
    for them all, not an ORM object each (a bulk call's 1,000 new deals plan 2,250). The
    reminders it changed are told at its end (``reminders_changed``), each once. One inside
    another joins it."""
    if DEFERRED in session.info:
        yield
        return
    session.info[DEFERRED] = []
    session.info[DEFERRED_ROWS] = []
    session.info[CHANGED] = {}
    try:
        yield
        added: list[Reminder] = session.info[DEFERRED]
        rows: list[dict[str, Any]] = session.info[DEFERRED_ROWS]
        changed: dict[int, Reminder | NewReminder] = session.info[CHANGED]
        _written_alike(changed.values())
        session.flush()
        if changed:
            reminders_changed.send(session, reminders=list(changed.values()), now=now)
        with new_rows(session):  # their deliveries' rows in one INSERT, no ORM object each
            for reminder in added:
                queue_deliveries(session, reminder, settings, now, new=True)
            for new in _insert_reminders(session, rows):
                queue_deliveries(session, new, settings, now, new=True)
    finally:
        session.info.pop(DEFERRED, None)
        session.info.pop(DEFERRED_ROWS, None)
        session.info.pop(CHANGED, None)
        session.info.pop(PRELOADED, None)
        session.info.pop(HELD, None)


def _written_alike(reminders: Iterable[Reminder | NewReminder]) -> None:
    """Every changed reminder's UPDATE sets the same columns (those a re-plan sets), so the
    flush writes them in one ``executemany``: the ORM writes only the columns that changed,
    and sends rows together only while those are the same, so a deal's cancelled reminder
    and its moved one (ids in turn) took a statement each (245 statements for 380 rows in a
    five-mailbox first round)."""
    for reminder in reminders:
        if not isinstance(reminder, Reminder):
            continue
        state = inspect(reminder)
        if not state.persistent or not state.modified:
            continue
        for name in REPLANNED:
            if name in state.dict:
                flag_modified(reminder, name)


@dataclass(frozen=True, slots=True)
class NewReminder:
    """What :func:`queue_deliveries` reads of a reminder just written as a row: open, at its
    first version, on no calendar yet."""

    id: int
    key: str
    rep_email: str | None
    due_at: dt.datetime
    version: int = 1
    status: ReminderStatus = ReminderStatus.OPEN
    calendar_mailbox: str | None = None
    calendar_event_id: str | None = None

    @property
    def effective_due_at(self) -> dt.datetime:
        return self.due_at


def _insert_reminders(session: Session, rows: list[dict[str, Any]]) -> list[NewReminder]:
    ids = insert_numbered(session, Reminder, rows)
    return [
        NewReminder(id=i, key=row["key"], rep_email=row["rep_email"], due_at=row["due_at"])
        for row, i in zip(rows, ids, strict=True)
    ]


def preload_reminders(session: Session, deal_ids: Iterable[int]) -> None:
    """Load the reminders of many deals in one query for the :func:`replan` of each (inside
    :func:`deferred_deliveries`, which forgets them at its end); a deal re-planned a second
    time loads its own again."""
    ids = sorted(set(deal_ids))
    by_deal: dict[int, list[Reminder]] = {i: [] for i in ids}
    for part in chunks(ids):
        query = select(Reminder).where(Reminder.deal_id.in_(part))
        for reminder in session.scalars(query):
            by_deal[reminder.deal_id].append(reminder)
    session.info.setdefault(PRELOADED, {}).update(by_deal)


def _new_reminder(deal: Deal, plan: PlannedReminder) -> Reminder:
    return Reminder(**_new_values(deal, plan))


def _new_row(deal: AnyDeal, plan: PlannedReminder, now: dt.datetime) -> dict[str, Any]:
    """The row :func:`_new_reminder` would write (its timestamps given, not a default each)."""
    return {"created_at": now, "updated_at": now, **_new_values(deal, plan)}


def _new_values(deal: AnyDeal, plan: PlannedReminder) -> dict[str, Any]:
    return {
        "key": plan.key,
        "deal_id": deal.id,
        "status": ReminderStatus.OPEN,
        "version": 1,
        **_plan_values(plan, deal),
    }


_PLAN_COLUMNS = (
    "rep_email",
    "stage_key",
    "rule_id",
    "kind",
    "occurrence",
    "title",
    "message",
    "due_at",
    "stage_deadline",
)
REPLANNED = (*_PLAN_COLUMNS, "status", "snoozed_until", "version")
"""What a re-plan sets on a stored reminder (:func:`_written_alike`)."""


def _plan_values(plan: PlannedReminder, deal: AnyDeal) -> dict[str, Any]:
    return {
        "rep_email": deal.owner_email,
        "stage_key": plan.stage_key,
        "rule_id": plan.rule_id,
        "kind": ReminderKind(plan.kind),
        "occurrence": plan.occurrence,
        "title": plan.title[:500],
        "message": plan.message,
        "due_at": plan.due_at,
        "stage_deadline": plan.stage_deadline,
    }


def _copy_plan(reminder: Reminder, plan: PlannedReminder, deal: Deal) -> None:
    for name, value in _plan_values(plan, deal).items():
        setattr(reminder, name, value)


def _differs(reminder: Reminder, plan: PlannedReminder, deal: Deal) -> bool:
    return (
        reminder.due_at != plan.due_at
        or reminder.title != plan.title[:500]
        or reminder.message != plan.message
        or reminder.rep_email != deal.owner_email
    )


def queue_deliveries(
    session: Session,
    reminder: Reminder | NewReminder,
    settings: Settings,
    now: dt.datetime,
    *,
    new: bool = False,
) -> None:
    """Queue (or refresh) this reminder's delivery on each channel that is on.

    The calendar event appears ``calendar_lead_hours`` before it is due, and an event already
    on the calendar is moved at once; the Teams card comes at the due time. Withdrawals (done,
    cancelled) go at once.
    """
    active = reminder.status in ACTIVE
    due = reminder.effective_due_at
    if not new:  # e.g. its card, refreshed; inside deferred_deliveries, at its end
        changed: dict[int, Reminder | NewReminder] | None = session.info.get(CHANGED)
        if changed is None:
            reminders_changed.send(session, reminders=[reminder], now=now)
        else:
            changed[reminder.id] = reminder
    # The rep's own choice of channels narrows the admin's; an Outlook event already made is
    # still kept current (withdrawn when done) after she turns Outlook off.
    channels = channels_for(session, reminder.rep_email, list(settings.reminder_channels))
    if reminder.calendar_event_id and "calendar" in settings.reminder_channels:
        channels = sorted({*channels, "calendar"})
    payload = ReminderDelivery(  # the same on every channel
        reminder_id=reminder.id,
        version=reminder.version,
        key=reminder.key,
        mailbox=reminder.calendar_mailbox or reminder.rep_email,
        event_id=reminder.calendar_event_id,
    )
    for channel in channels:
        if channel == "calendar":  # an event already made moves now: Outlook would remind
            ahead = active and reminder.calendar_event_id is None  # the rep at the old time
            send_at = due - dt.timedelta(hours=settings.calendar_lead_hours) if ahead else now
        else:
            send_at = due if active else now
        key, due_at = f"{channel}:{reminder.key}", max(send_at, now) if active else now
        if new:
            enqueue_new(session, channel, key, payload, due=due_at)
        else:
            enqueue(session, channel, key, payload, due=due_at, replace=True)


def is_overdue(reminder: Reminder, now: dt.datetime) -> bool:
    """Past due: still open (or snoozed) and its due time (a snooze's end) has passed. What
    ``overdue`` means in the API and "overdue since" on the rep's Teams cards."""
    return reminder.status in ACTIVE and reminder.effective_due_at < now


def snooze(
    session: Session,
    reminder: Reminder,
    until: dt.datetime,
    settings: Settings,
    now: dt.datetime,
) -> None:
    if reminder.status not in ACTIVE:
        raise Conflict(
            f"reminder {reminder.id} is {reminder.status}; only open reminders can be snoozed",
            reminder=reminder.id,
        )
    reminder.status = ReminderStatus.SNOOZED
    reminder.snoozed_until = until
    reminder.version += 1
    queue_deliveries(session, reminder, settings, now)


def complete(
    session: Session, reminder: Reminder, by: str, settings: Settings, now: dt.datetime
) -> bool:
    """Mark done; False when it already was (done twice is not an error)."""
    if reminder.status == "done":
        return False
    if reminder.status == "cancelled":
        raise Conflict(
            f"reminder {reminder.id} was cancelled (the deal moved on); nothing to do",
            reminder=reminder.id,
        )
    reminder.status = ReminderStatus.DONE
    reminder.done_at = now
    reminder.done_by = by
    reminder.version += 1
    queue_deliveries(session, reminder, settings, now)
    return True


def withdraw_all(session: Session, deal: Deal, settings: Settings, now: dt.datetime) -> None:
    """Before a deal is deleted: cancel its reminders so their events and cards go too."""
    for reminder in session.scalars(select(Reminder).where(Reminder.deal_id == deal.id)):
        if reminder.status in ACTIVE:
            reminder.status = ReminderStatus.CANCELLED
            reminder.version += 1
            queue_deliveries(session, reminder, settings, now)
