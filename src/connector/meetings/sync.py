"""Meetings log themselves: a delta round of a rep's calendar becomes interactions on deals.

For each mailbox: read the calendarView delta (graph_sync) over the rolling window, load what
the store holds for it, plan the round (``meetings.plan``: privacy, matching, one interaction
per meeting across every mailbox), then apply the plan in one transaction. A change that
fails is recorded and the others go on; a mailbox's errors are recorded on it and never stop
the others; a round that would take away too many logged meetings is refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector import metrics
from connector.crm import webhooks as crm_webhooks
from connector.crm.events import InteractionLogged, InteractionUpdated, ReminderCompleted
from connector.deals.changes import announce
from connector.deals.reps import capture_paused
from connector.meetings.attendance import first_attendance
from connector.meetings.exclusions import excluded_series
from connector.meetings.interactions import refresh_last_interaction, set_last_interaction
from connector.meetings.matching import DealCandidate, is_consumer_domain
from connector.meetings.plan import (
    CANCELLED,
    MEETING_WRITES,
    NEEDS_CHOICE,
    REMINDER_CATEGORY,
    SOURCE,
    ChangeKind,
    PlannedChange,
    RoundPlan,
    RoundPolicy,
    StoredDeal,
    StoredInteraction,
    StoredRound,
    describe,
    facts_of,
    meeting_key,
    plan_round,
)
from connector.meetings.privacy import PrivacyPolicy, is_internal, normalize_address
from connector.microsoft365 import Failure, graph_client
from connector.outbox import batched
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.signals import meeting_logged, meeting_needs_choice
from connector.stage_reminders.replan import (
    ACTIVE,
    complete,
    deferred_deliveries,
    preload_last_held,
    preload_reminders,
)
from connector.store import locks
from connector.store.db import chunks, get_store, insert_numbered, insert_rows, write_lock
from connector.store.models import (
    Deal,
    DealContact,
    DealDomain,
    Interaction,
    Mailbox,
    MailboxEvent,
    PrivacyExclusion,
    Reminder,
    Rep,
    utcnow,
)
from connector.store.types import InteractionKind, InteractionStatus, MeetingDetails
from graph_sync.directory import get_mailbox_settings, get_user, get_verified_domains
from graph_sync.errors import GraphSyncError
from graph_sync.meetings import CalendarWindow, DeltaRound, read_delta
from graph_sync.models import MailboxSettings, series_uid

__all__ = ["REMINDER_CATEGORY", "SOURCE", "SyncReport", "facts_of", "sync_due", "sync_mailbox"]

log = logging.getLogger(__name__)
_DOMAINS_TTL = 3600.0


@dataclass
class SyncReport:
    mailbox: str
    pages: int = 0
    meetings: int = 0
    logged: int = 0
    updated: int = 0
    cancelled: int = 0
    needs_choice: int = 0
    removed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    restarted: bool = False
    new_round: bool = False
    error: str | None = None
    busy: bool = False
    """A round of this mailbox was running here already; this one did not start."""
    paused_until: dt.datetime | None = None
    """The rep paused meeting capture until then: the mailbox was not read."""
    failed: list[str] = field(default_factory=list)
    """Changes of the round that could not be applied (the others were)."""

    def count(self, plan: RoundPlan) -> None:
        self.meetings, self.logged, self.updated = plan.meetings, plan.logged, plan.updated
        self.cancelled, self.needs_choice = plan.cancelled, plan.needs_choice
        self.removed, self.skipped = plan.removed, plan.skipped


# ---- policy --------------------------------------------------------------------------


def verified_domains(app: Flask) -> list[str]:
    """The tenant's verified domains from Graph ``organization`` (cached for an hour)."""

    cached: tuple[float, list[str]] | None = app.extensions.get("dealbridge.verified_domains")
    if cached and time.monotonic() - cached[0] < _DOMAINS_TTL:
        return cached[1]
    domains = get_verified_domains(graph_client(app))
    app.extensions["dealbridge.verified_domains"] = (time.monotonic(), domains)
    return domains


def stored_exclusions(session: Session) -> dict[str, list[str]]:
    """The exclusions admins added in the console, by kind (address, domain, category)."""
    found: dict[str, list[str]] = {"address": [], "domain": [], "category": []}
    for row in session.scalars(select(PrivacyExclusion)):
        found.setdefault(row.kind, []).append(row.value)
    return found


def privacy_policy(
    settings: Settings,
    tenant_domains: Iterable[str],
    stored: Mapping[str, list[str]] | None = None,
) -> PrivacyPolicy:
    sensitivities = ["normal", "personal"] if settings.log_personal_meetings else ["normal"]
    stored = stored or {}
    return PrivacyPolicy(
        internal_domains=[*tenant_domains, *settings.internal_domains],
        excluded_addresses=[*settings.excluded_addresses, *stored.get("address", [])],
        excluded_domains=[*settings.excluded_domains, *stored.get("domain", [])],
        excluded_categories=[*settings.excluded_categories, *stored.get("category", [])],
        log_all_day=settings.log_all_day_meetings,
        log_sensitivities=sensitivities,
    )


def round_policy(
    settings: Settings,
    tenant_domains: Iterable[str],
    now: dt.datetime,
    stored: Mapping[str, list[str]] | None = None,
) -> RoundPolicy:
    return RoundPolicy(
        privacy=privacy_policy(settings, tenant_domains, stored),
        now=now,
        max_removal_share=settings.sync_max_removal_share,
    )


def window_for(settings: Settings, now: dt.datetime, mailbox: str = "") -> CalendarWindow:
    """The rolling window, whole days, so it slides once a day (a new delta round).

    A mailbox's day starts at its own minute after UTC midnight (from a hash of its name),
    so the daily re-read of every mailbox is spread over the day instead of all at midnight.
    Without a mailbox: UTC days."""
    offset = dt.timedelta(seconds=_day_offset(mailbox))
    shifted = (now.astimezone(dt.UTC) - offset).replace(hour=0, minute=0, second=0, microsecond=0)
    today = shifted + offset
    return CalendarWindow(
        start=today - dt.timedelta(days=settings.sync_days_back),
        end=today + dt.timedelta(days=settings.sync_days_ahead + 1),
    )


def _day_offset(mailbox: str) -> int:
    """Seconds after UTC midnight at which the mailbox's window slides (whole minutes)."""
    if not mailbox:
        return 0
    digest = hashlib.sha256(mailbox.lower().encode()).digest()
    return int.from_bytes(digest[:4], "big") % 1440 * 60


# ---- the round -----------------------------------------------------------------------


def mailbox_for(session: Session, rep_email: str) -> Mailbox:
    mailbox = session.scalar(select(Mailbox).where(Mailbox.rep_email == rep_email))
    if mailbox is None:
        mailbox = Mailbox(rep_email=rep_email, needs_sync=True)
        session.add(mailbox)
        session.flush()
    return mailbox


ROUND_ATTEMPTS = 3  # a round that met another mailbox's round on a meeting plans again
RETRY_FIRST = dt.timedelta(seconds=30)  # after a failed round; doubled after each further one
RETRY_MOST = dt.timedelta(hours=1)


def retry_after(failures: int) -> dt.timedelta:
    """How long a mailbox waits after ``failures`` failed rounds in a row: 30 s, doubling, at
    most an hour (none before the first failure)."""
    if failures <= 0:
        return dt.timedelta(0)
    doublings: int = min(failures - 1, 16)
    return min(RETRY_FIRST * (1 << doublings), RETRY_MOST)


def next_round_at(mailbox: Mailbox, settings: Settings, now: dt.datetime) -> dt.datetime:
    """When the mailbox's next round is due (``now`` or earlier: at once).

    Never read: at once. Waiting for a round (``needs_sync``) after a failed one: when its
    backoff ends (:func:`retry_after`). Notified since its last round started: when the
    notifications have paused for ``sync_debounce_seconds``, but never later than
    ``sync_max_wait_seconds`` after that round started (the ceiling): a mailbox that keeps
    changing is still read that often, and a quiet one at once (its last round is long past).
    Otherwise the poll, every ``sync_poll_minutes`` (a failing mailbox not before its backoff
    ends). :func:`notified` adds the leading edge for the notifications endpoint."""
    last = mailbox.last_round_at
    if last is None:
        return now
    debounce = dt.timedelta(seconds=settings.sync_debounce_seconds)
    ceiling = last + dt.timedelta(seconds=settings.sync_max_wait_seconds)
    backoff = last + retry_after(mailbox.failures)
    if not mailbox.needs_sync:
        return max(last + dt.timedelta(minutes=settings.sync_poll_minutes), backoff)
    if mailbox.failures:
        return backoff
    notified = mailbox.notified_at
    if notified is None or notified <= last:
        # The round that started last answers it: it is still running, or it was lost with
        # its process (then the ceiling reads the mailbox again).
        return ceiling
    return min(notified + debounce, ceiling)


def notified(mailbox: Mailbox, settings: Settings, now: dt.datetime) -> dt.datetime:
    """Graph notified a change of the mailbox: mark it, and say when its round runs.

    The leading edge: a notification that finds the mailbox quiet (nothing waiting, no round
    running, no notification for ``sync_debounce_seconds``) is read at once. Any other waits
    with what else comes for one round (:func:`next_round_at`); a failing mailbox waits for
    its backoff."""
    previous = mailbox.notified_at
    debounce = dt.timedelta(seconds=settings.sync_debounce_seconds)
    quiet = not mailbox.needs_sync and (previous is None or now - previous >= debounce)
    mailbox.needs_sync = True
    mailbox.notified_at = now
    if quiet and not mailbox.failures:
        return now
    return next_round_at(mailbox, settings, now)


_ROUNDS = "dealbridge.mailbox_rounds"  # app.extensions: a lock per mailbox, in this process
_ROUNDS_LOCK = threading.Lock()


def _round_lock(app: Flask, rep_email: str) -> threading.Lock:
    with _ROUNDS_LOCK:
        locks: dict[str, threading.Lock] = app.extensions.setdefault(_ROUNDS, {})
        return locks.setdefault(rep_email, threading.Lock())


def sync_mailbox(
    app: Flask,
    rep_email: str,
    *,
    full: bool = False,
    now: dt.datetime | None = None,
    wait: float = 0.0,
    waiting: Callable[[], None] | None = None,
) -> SyncReport:
    """One delta round for a rep's mailbox, applied in one transaction.

    Never raises: whatever fails (Graph, a page the models cannot read, the store, a bug) is
    logged, recorded on the mailbox (``last_error``, ``failures``) and retried with backoff
    (:func:`next_round_at`); ``needs_sync`` is cleared only when the round has committed. A
    round of a mailbox whose round is already running in this process does not start
    (``busy``); that round's end leaves the mailbox waiting when notifications came meanwhile.
    Across processes the same holds through :func:`_mailbox_lock` (after ``wait`` seconds for
    another process's round to end: busy)."""
    report = SyncReport(mailbox=rep_email)
    lock = _round_lock(app, rep_email)
    if not lock.acquire(blocking=False):
        report.busy = True
        return report
    try:
        with _mailbox_lock(app, rep_email, wait, waiting, report) as held:
            if held:
                _timed_round(app, rep_email, full=full, now=now, report=report)
    finally:
        lock.release()
    return report


@contextlib.contextmanager
def _mailbox_lock(
    app: Flask,
    rep_email: str,
    wait: float,
    waiting: Callable[[], None] | None,
    report: SyncReport,
) -> Iterator[bool]:
    """The mailbox's round lock across all processes (``store.locks``): False, with the
    report busy (or failed, when the lock cannot be tried), when this round must not run."""
    stack = contextlib.ExitStack()
    held = False
    try:
        lock = locks.hold(get_store(app), "mailbox_round", rep_email, wait=wait, waiting=waiting)
        held = stack.enter_context(lock)
    except locks.LockUnavailable as exc:
        report.error = f"the mailbox's round lock: {exc}"
        log.warning("sync of %s failed: %s", rep_email, report.error)
    with stack:
        if not held and report.error is None:
            report.busy = True
            log.info("round of %s not started: another process is reading it", rep_email)
        yield held


def _timed_round(
    app: Flask, rep_email: str, *, full: bool, now: dt.datetime | None, report: SyncReport
) -> None:
    started = time.monotonic()
    try:
        _round(app, rep_email, full=full, now=now or utcnow(), report=report)
    except GraphSyncError as exc:  # Microsoft 365 said no: no traceback to show
        report.error = str(exc)
        log.warning("sync of %s failed: %s", rep_email, exc)
        _record_failure(app, rep_email, report.error, failure=Failure.of(exc))
    except Exception as exc:
        report.error = f"{type(exc).__name__}: {exc}"
        log.exception("sync of %s failed", rep_email)
        _record_failure(app, rep_email, report.error, failure=Failure.of(exc))
    metrics.sync_round(app, log, report, time.monotonic() - started)


def _round(app: Flask, rep_email: str, *, full: bool, now: dt.datetime, report: SyncReport) -> None:
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    store = get_store(app)
    with store.session() as session:  # the rep paused capture: nothing of hers is read
        report.paused_until = capture_paused(session, rep_email, now)
    if report.paused_until is not None:
        return
    window = window_for(settings, now, rep_email)
    mailbox_id, user, link, notified = _begin_round(app, rep_email, window, full=full, now=now)
    report.new_round = link is None
    outlook: OutlookRep | None = None
    if report.new_round:  # once a day (the window slides daily), and on a full sync
        outlook = outlook_rep(app, user)  # stored in the round's transaction, below
        user = outlook.user_id
    tenant_domains = verified_domains(app)
    delta = read_delta(graph_client(app), user, window, link)
    with store.session() as session:
        excluded = stored_exclusions(session)
    policy = round_policy(settings, tenant_domains, now, excluded)
    for attempt in range(1, ROUND_ATTEMPTS + 1):
        report.failed.clear()
        try:
            with store.session() as session:
                stored = load_round(
                    session, mailbox_id, rep_email, delta, policy.privacy, lock=True
                )
                # Held until the round commits: a rep removed meanwhile took her mailbox
                # with her, and nothing read for it may be written.
                if session.get(Mailbox, mailbox_id, with_for_update=True) is None:
                    log.info("sync of %s: the rep was removed during the round", rep_email)
                    return
                # New working hours: the rep's deals are re-planned once, with the round's.
                hours_changed = outlook is not None and store_outlook_rep(
                    session, rep_email, outlook
                )
                owned = list(session.scalars(_owned(rep_email))) if hours_changed else []
                plan = plan_round(delta, stored, policy)
                if plan.refused is None:
                    apply_plan(
                        session,
                        plan,
                        mailbox_id=mailbox_id,
                        settings=settings,
                        now=now,
                        report=report,
                        replan=[d.id for d in owned],
                    )
                    _round_done(session, mailbox_id, delta, window, now, report, notified)
                elif owned:
                    with batched(session), deferred_deliveries(session, settings, now):
                        for deal in owned:
                            announce(session, deal, now)
            break
        except IntegrityError:
            # Another rep's round logged one of these meetings first (external_key is unique):
            # plan again against what it wrote, so this mailbox merges into that interaction.
            if attempt == ROUND_ATTEMPTS:
                raise
            log.info("sync of %s met a concurrent round; planning again", rep_email)
    report.pages, report.restarted = delta.pages, delta.restarted
    if plan.refused is not None:  # nothing applied; the delta link stays for the next round
        report.error = plan.refused
        _record_failure(app, rep_email, plan.refused, retry=False)
        log.warning("sync of %s: %s", rep_email, plan.refused)
        return
    report.count(plan)


def _begin_round(
    app: Flask, rep_email: str, window: CalendarWindow, *, full: bool, now: dt.datetime
) -> tuple[int, str, str | None, dt.datetime | None]:
    """The mailbox is being read: its id, the user to read it as, the delta link to go on,
    and the last notification this round answers (``needs_sync`` stays until it commits)."""
    with get_store(app).session() as session:
        rep = session.scalar(select(Rep).where(Rep.email == rep_email))
        mailbox = mailbox_for(session, rep_email)
        user = (rep.entra_id if rep else None) or mailbox.user_id or rep_email
        same_window = mailbox.window_start == window.start and mailbox.window_end == window.end
        link = None if full or not same_window else mailbox.delta_link
        mailbox.last_round_at = now
        return mailbox.id, user, link, mailbox.notified_at


def _round_done(
    session: Session,
    mailbox_id: int,
    delta: DeltaRound,
    window: CalendarWindow,
    now: dt.datetime,
    report: SyncReport,
    notified: dt.datetime | None,
) -> None:
    mailbox = session.get(Mailbox, mailbox_id)
    assert mailbox is not None
    mailbox.delta_link = delta.delta_link
    mailbox.window_start, mailbox.window_end = window.start, window.end
    mailbox.last_success_at = now
    mailbox.last_error = "; ".join(report.failed)[:2000] or None
    mailbox.last_error_code = mailbox.missing_permission = None
    mailbox.failures = 0
    mailbox.events_seen += len(delta.meetings)
    if mailbox.notified_at == notified:  # no notification came during the round
        mailbox.needs_sync = False


def plan_mailbox(
    app: Flask, rep_email: str, *, full: bool = False, now: dt.datetime | None = None
) -> RoundPlan:
    """The plan the next round of a rep's mailbox would apply; writes nothing (``--dry-run``).

    Raises GraphSyncError when the mailbox cannot be read."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    now = now or utcnow()
    window = window_for(settings, now, rep_email)
    with get_store(app).sessions() as session:  # never committed
        rep = session.scalar(select(Rep).where(Rep.email == rep_email))
        mailbox = session.scalar(select(Mailbox).where(Mailbox.rep_email == rep_email))
        user = (rep.entra_id if rep else None) or (mailbox.user_id if mailbox else None)
        same_window = mailbox is not None and (mailbox.window_start, mailbox.window_end) == (
            window.start,
            window.end,
        )
        link = mailbox.delta_link if mailbox is not None and same_window and not full else None
        policy = round_policy(settings, verified_domains(app), now, stored_exclusions(session))
        delta = read_delta(graph_client(app), user or rep_email, window, link)
        stored = load_round(
            session, mailbox.id if mailbox else None, rep_email, delta, policy.privacy
        )
        return plan_round(delta, stored, policy)


def refresh_rep_from_outlook(app: Flask, rep_email: str, user: str) -> str:
    """The rep's Entra id, time zone and working hours from Graph; re-plans their deals when
    the working hours changed. Returns the user id to read the mailbox with.

    The round itself reads them with :func:`outlook_rep` and stores them in its own
    transaction (:func:`store_outlook_rep`), so each deal is re-planned once per round."""
    found = outlook_rep(app, user)
    with get_store(app).session() as session:
        if store_outlook_rep(session, rep_email, found):
            now = utcnow()
            settings = app.extensions[SETTINGS_EXTENSION]
            with batched(session), deferred_deliveries(session, settings, now):
                for deal in session.scalars(_owned(rep_email)):
                    announce(session, deal, now)
    return found.user_id


@dataclass(frozen=True)
class OutlookRep:
    """What a new round reads of the rep from Graph: the user and their mailbox settings."""

    user_id: str
    display_name: str | None
    hours: MailboxSettings


def outlook_rep(app: Flask, user: str) -> OutlookRep:
    client = graph_client(app)
    found = get_user(client, user)
    return OutlookRep(found.id, found.display_name, get_mailbox_settings(client, found.id))


def store_outlook_rep(session: Session, rep_email: str, found: OutlookRep) -> bool:
    """Store the rep's Entra id, time zone and working hours; True when the working hours
    changed (then their open deals need re-planning, in this transaction)."""
    rep = session.scalar(select(Rep).where(Rep.email == rep_email))
    if rep is None:
        return False
    rep.entra_id = found.user_id
    if found.display_name and not rep.display_name:
        rep.display_name = found.display_name
    hours = found.hours
    wanted = (
        hours.working_hours_time_zone,
        sorted(hours.working_days),
        hours.start.strftime("%H:%M"),
        hours.end.strftime("%H:%M"),
    )
    current = (rep.time_zone, sorted(rep.working_days or []), rep.work_start, rep.work_end)
    if wanted != current and hours.end > hours.start and hours.working_days:
        rep.time_zone, rep.working_days, rep.work_start, rep.work_end = wanted
        session.flush()
        session.info.pop("dealbridge.cache", None)
        return True
    return False


def _owned(rep_email: str) -> Any:
    return select(Deal).where(Deal.owner_email == rep_email, Deal.status == "open")


def _record_failure(
    app: Flask,
    rep_email: str,
    error: str,
    *,
    retry: bool = True,
    failure: Failure | None = None,
) -> None:
    """The round failed: said on the mailbox (with the error's code and a missing permission,
    when Microsoft 365 named one), and retried after the backoff (``retry``) or at the next
    poll."""
    failure = failure or Failure()
    try:
        with get_store(app).session() as session:
            mailbox = mailbox_for(session, rep_email)
            mailbox.last_error = error[:2000]
            mailbox.last_error_code = failure.code
            mailbox.missing_permission = failure.missing_permission
            mailbox.failures += 1
            mailbox.needs_sync = retry
    except Exception:  # the store itself fails: the next mailbox still gets its round
        log.exception("sync of %s: the failure could not be recorded", rep_email)


def load_round(
    session: Session,
    mailbox_id: int | None,
    rep_email: str,
    delta: DeltaRound,
    policy: PrivacyPolicy,
    *,
    lock: bool = False,
) -> StoredRound:
    """What the plan needs from the store, loaded once for the round (not per meeting).

    ``lock``: the round will write what it loads, so another mailbox's round on the same
    meeting waits until this one commits (else one of the two mailbox lists is lost): the
    stored interactions are read ``FOR UPDATE`` on PostgreSQL, in key order; SQLite takes its
    write lock first."""
    if lock:
        write_lock(session)
    links: dict[str, str] = {}
    if mailbox_id is not None:  # the links of the round's events only: flat in mailbox size
        event_ids = sorted({m.event_id for m in delta.meetings} | set(delta.removed))
        for chunk in chunks(event_ids):
            rows = session.execute(
                select(MailboxEvent.event_id, MailboxEvent.meeting_key).where(
                    MailboxEvent.mailbox_id == mailbox_id, MailboxEvent.event_id.in_(chunk)
                )
            )
            links.update((row.event_id, row.meeting_key) for row in rows)
    keys = {meeting_key(m) for m in delta.meetings}
    keys |= {links[e] for e in delta.removed if e in links}
    interactions: dict[str, StoredInteraction] = {}
    for chunk in chunks(sorted(keys)):
        query = select(Interaction).where(Interaction.external_key.in_(chunk))
        if lock:
            query = query.order_by(Interaction.external_key).with_for_update()
        interactions.update((i.external_key, _stored(i)) for i in session.scalars(query))
    deals = _open_deals(session, *_lookup_keys(delta, policy))
    named = {i.deal_id for i in interactions.values() if i.deal_id is not None}
    return StoredRound(
        rep_email=rep_email,
        links=links,
        interactions=interactions,
        deals=deals,
        reminders=_active_reminders(session, delta.removed),
        # An idle round takes nothing away: the removal guard needs no count.
        logged=_logged(session, mailbox_id) if delta.meetings or delta.removed else 0,
        deal_names=_deal_names(session, deals, named),
        excluded=excluded_series(session, (series_uid(m.ical_uid) for m in delta.meetings)),
    )


def _lookup_keys(delta: DeltaRound, policy: PrivacyPolicy) -> tuple[set[str], set[str]]:
    """Every external address of the round and its domain: a superset of what the matcher
    looks up (the plan filters exactly), without building each meeting's facts twice."""
    emails: set[str] = set()
    for meeting in delta.meetings:
        people = [meeting.organizer_email, *(a.email for a in meeting.attendees)]
        emails |= {a for a in map(normalize_address, people) if a and not is_internal(a, policy)}
    domains = {a.rpartition("@")[2] for a in emails}
    return emails, {d for d in domains if not is_consumer_domain(d)}


def _active_reminders(session: Session, event_ids: Sequence[str]) -> dict[str, int]:
    """Removed event ids that are an active reminder's calendar event → the reminder."""
    reminders: dict[str, int] = {}
    for chunk in chunks(event_ids):
        for event_id, reminder_id in session.execute(
            select(Reminder.calendar_event_id, Reminder.id)
            .where(Reminder.calendar_event_id.in_(chunk), Reminder.status.in_(ACTIVE))
            .order_by(Reminder.id.desc())
        ):
            if event_id is not None:
                reminders[event_id] = reminder_id  # the lowest id wins, as before
    return reminders


def _deal_names(session: Session, deals: list[StoredDeal], named: set[int]) -> dict[int, str]:
    deal_names = {d.id: d.candidate.deal_id for d in deals}
    for ids in chunks(sorted(named - deal_names.keys())):
        names = session.execute(select(Deal.id, Deal.crm_id).where(Deal.id.in_(ids)))
        deal_names.update((deal_id, crm_id) for deal_id, crm_id in names)
    return deal_names


def _stored(interaction: Interaction) -> StoredInteraction:
    return StoredInteraction(
        key=interaction.external_key,
        id=interaction.id,
        deal_id=interaction.deal_id,
        status=interaction.status,
        subject=interaction.subject,
        started_at=interaction.started_at,
        ended_at=interaction.ended_at,
        match_rule=interaction.match_rule,
        matched_address=interaction.matched_address,
        details=interaction.details or MeetingDetails(),
    )


def _open_deals(session: Session, emails: set[str], domains: set[str]) -> list[StoredDeal]:
    """The open deals whose contacts or account domains the round's external people are."""
    ids: set[int] = set()
    for chunk in chunks(sorted(emails)):
        ids |= set(session.scalars(select(DealContact.deal_id).where(DealContact.email.in_(chunk))))
    for chunk in chunks(sorted(domains)):
        ids |= set(session.scalars(select(DealDomain.deal_id).where(DealDomain.domain.in_(chunk))))
    if not ids:
        return []
    deals = list(session.scalars(select(Deal).where(Deal.id.in_(ids), Deal.status == "open")))
    # Held for the session: the identity map is weak, and applying the plan gets them again.
    session.info.setdefault("dealbridge.round_deals", []).extend(deals)
    stored = []
    for d in deals:
        contacts = frozenset(c.email for c in d.contacts)
        account = frozenset(x.domain for x in d.domains)
        candidate = DealCandidate(
            deal_id=d.crm_id,
            owner_email=d.owner_email,
            last_activity_at=d.last_interaction_at,
            updated_at=d.updated_at,
            contact_emails=contacts,
            domains=account,
            status=d.status,
        )
        stored.append(StoredDeal(d.id, candidate, contacts, account))
    return stored


def _logged(session: Session, mailbox_id: int | None) -> int:
    """The mailbox's logged meetings: the interactions its events became, not cancelled."""
    if mailbox_id is None:
        return 0
    linked = select(MailboxEvent.meeting_key).where(MailboxEvent.mailbox_id == mailbox_id)
    count = session.scalar(
        select(func.count(Interaction.id)).where(
            Interaction.external_key.in_(linked), Interaction.status != CANCELLED
        )
    )
    return int(count or 0)


def apply_plan(
    session: Session,
    plan: RoundPlan,
    *,
    mailbox_id: int,
    settings: Settings,
    now: dt.datetime,
    report: SyncReport,
    replan: Iterable[int] = (),
) -> None:
    """Write a plan in the session's transaction: its changes, then the others are told, then
    the deals it touched are refreshed. A change that fails is recorded and the rest go on.
    ``replan``: other deals (by id) to re-plan with them, each deal once."""
    if plan.refused is not None:
        raise ValueError(plan.refused)
    changes = plan.changes
    rows, links = _rows_for(session, changes, mailbox_id)
    fresh: dict[str, NewMeeting] = {}
    told: list[tuple[Interaction | NewMeeting, str | None, int | None]] = []
    # One flush for the round, not one per query; the deliveries looked up together.
    with batched(session):
        with session.no_autoflush:
            for item in changes:
                try:
                    _apply_change(
                        session,
                        item,
                        plan.rep_email,
                        rows,
                        fresh,
                        links,
                        told,
                        attendance=settings.attendance_enabled,
                    )
                    if item.kind is ChangeKind.REMINDER_DONE and item.reminder_id is not None:
                        _reminder_dismissed(
                            session, item.reminder_id, plan.rep_email, settings, now
                        )
                except Exception as exc:  # per item, as vdirsyncer: the rest goes on
                    log.exception("sync of %s: %s failed", plan.rep_email, item.kind)
                    report.failed.append(f"{describe(item, plan.deal_names)}: {exc}")
        session.flush()  # a row forgotten goes before a new one takes its key
        _write_new(session, fresh)
        links.write(session)
        for interaction, was, previous_deal in told:
            if isinstance(interaction, NewMeeting):
                if not interaction.id:  # forgotten later in the round: never written
                    continue
            elif inspect(interaction).deleted or inspect(interaction).detached:
                continue
            _tell_others(session, settings, interaction, was, previous_deal, now)
        affected = set(plan.affected)
        deal_ids = [*dict.fromkeys(plan.affected), *sorted(set(replan) - affected)]
        # Each deal once, its reminders preloaded; what the re-plan reads was flushed above
        # (the new reminders are flushed once, at the end of deferred_deliveries).
        with deferred_deliveries(session, settings, now), session.no_autoflush:
            preload_reminders(session, deal_ids)
            held = preload_last_held(session, deal_ids, now)  # and last_held's, for the re-plan
            for deal_id in deal_ids:
                deal = session.get(Deal, deal_id)
                if deal is not None:
                    if deal_id in affected:
                        latest = max(held.get(deal_id, {}).values(), default=None)
                        set_last_interaction(deal, latest, now)
                    announce(session, deal, now)


@dataclass(slots=True)
class NewMeeting:
    """A meeting this round logs for the first time, as the row it writes: the round's changes
    fill it in, :func:`_write_new` writes all of them with one Core ``executemany`` (no ORM
    object, no unit of work: they were a third of a first round's CPU), and the others are
    told of it as this view (a :class:`~connector.signals.LoggedMeeting`)."""

    external_key: str
    created_by: str
    subject: str | None = None
    started_at: dt.datetime = dt.datetime.min
    ended_at: dt.datetime | None = None
    deal_id: int | None = None
    status: str = InteractionStatus.HELD
    match_rule: str | None = None
    matched_address: str | None = None
    details: MeetingDetails | None = None
    id: int = 0
    """Given by :func:`_write_new`; 0 for one forgotten later in the same round (never
    written, nobody told)."""


def _write_new(session: Session, fresh: Mapping[str, NewMeeting]) -> None:
    """The round's new meetings as rows, numbered (their ids go out in webhooks and cards)."""
    now = utcnow()
    rows = [
        {
            "kind": InteractionKind.MEETING,
            "source": SOURCE,
            "external_key": m.external_key,
            "created_by": m.created_by,
            "subject": m.subject,
            "started_at": m.started_at,
            "ended_at": m.ended_at,
            "deal_id": m.deal_id,
            "status": m.status,
            "match_rule": m.match_rule,
            "matched_address": m.matched_address,
            "details": m.details,
            "created_at": now,  # given once, not a default computed per row
            "updated_at": now,
        }
        for m in fresh.values()
    ]
    ids = insert_numbered(session, Interaction, rows)
    for meeting, number in zip(fresh.values(), ids, strict=True):
        meeting.id = number


@dataclass
class _Links:
    """This mailbox's links (event id → meeting key) the round's changes write: the stored
    ones as ORM rows, the new ones as plain rows written together by :meth:`write` (a first
    round of 20,000 events makes 20,000: as ORM objects, 2.4 KB and a unit-of-work entry each)."""

    mailbox_id: int
    stored: dict[str, MailboxEvent]
    new: dict[str, dict[str, Any]] = field(default_factory=dict)

    def link(self, event_id: str, key: str) -> None:
        stored = self.stored.get(event_id)
        if stored is not None:
            if stored.meeting_key != key:
                stored.meeting_key = key
            return
        self.new[event_id] = {
            "mailbox_id": self.mailbox_id,
            "event_id": event_id,
            "meeting_key": key,
        }

    def unlink(self, session: Session, event_id: str) -> None:
        self.new.pop(event_id, None)
        if (stored := self.stored.pop(event_id, None)) is not None:
            session.delete(stored)

    def write(self, session: Session) -> None:
        """The new links, after the round's flush (a link deleted and made again for one event
        is deleted first): one Core ``INSERT`` per 500."""
        rows, now = list(self.new.values()), utcnow()
        for row in rows:
            row["updated_at"] = now  # given once, not a default computed per row
        insert_rows(session, MailboxEvent, rows)
        self.new.clear()


def _rows_for(
    session: Session, changes: Sequence[PlannedChange], mailbox_id: int
) -> tuple[dict[str, Interaction], _Links]:
    """The interactions (by key) and this mailbox's links (by event id) the changes write."""
    ids = sorted({i.before.id for i in changes if i.before and i.before.id is not None})
    rows = {
        i.external_key: i
        for chunk in chunks(ids)
        for i in session.scalars(select(Interaction).where(Interaction.id.in_(chunk)))
    }
    event_ids = sorted({i.event_id for i in changes if i.link or i.unlink})
    links = {
        row.event_id: row
        for chunk in chunks(event_ids)
        for row in session.scalars(
            select(MailboxEvent).where(
                MailboxEvent.mailbox_id == mailbox_id, MailboxEvent.event_id.in_(chunk)
            )
        )
    }
    return rows, _Links(mailbox_id, links)


def _apply_change(
    session: Session,
    item: PlannedChange,
    rep_email: str,
    rows: dict[str, Interaction],
    fresh: dict[str, NewMeeting],
    links: _Links,
    told: list[tuple[Interaction | NewMeeting, str | None, int | None]],
    *,
    attendance: bool = False,
) -> None:
    """``rows``: the stored interactions the changes touch (ORM rows); ``fresh``: the ones the
    round logs for the first time (written together after the changes). ``attendance``: Teams
    attendance is checked, and a meeting newly on a deal is written with the attendance it
    starts with (not an UPDATE of each new row after the flush)."""
    if item.link and item.key is not None:
        links.link(item.event_id, item.key)
    if item.unlink:
        links.unlink(session, item.event_id)
    if item.key is None:
        return
    if item.kind is ChangeKind.FORGET:
        if (row := rows.pop(item.key, None)) is not None:
            session.delete(row)  # privacy wins over history: no trace
        fresh.pop(item.key, None)  # never written
        return
    after = item.after
    if after is None or item.kind is ChangeKind.SKIP:
        return
    target: Interaction | NewMeeting | None = rows.get(item.key) or fresh.get(item.key)
    if target is None:
        target = fresh[item.key] = NewMeeting(external_key=item.key, created_by=rep_email)
    told_of = item.kind in MEETING_WRITES or item.kind is ChangeKind.CANCEL
    before = item.before
    was, previous = (before.status, before.deal_id) if before else (None, None)
    details = after.details
    if (
        attendance
        and told_of
        and details.attendance is None
        and _lands_on_deal(previous, after.deal_id, after.status)
    ):
        details = details.but(attendance=first_attendance(details))
    target.details = details  # a new model: written when what it stores differs
    target.subject, target.started_at, target.ended_at = (
        after.subject,
        after.started_at,
        after.ended_at,
    )
    target.deal_id, target.status = after.deal_id, after.status
    target.match_rule, target.matched_address = after.match_rule, after.matched_address
    if told_of:
        told.append((target, was, previous))


def _lands_on_deal(previous_deal: int | None, deal_id: int | None, status: str) -> bool:
    """The meeting is now on a deal it was not on, and not cancelled: the CRM hears
    ``interaction.logged``, the deal's owner gets ``meeting_logged`` (its card, the attendance
    check)."""
    return (
        deal_id is not None and previous_deal != deal_id and status != InteractionStatus.CANCELLED
    )


def _reminder_dismissed(
    session: Session, reminder_id: int, rep_email: str, settings: Settings, now: dt.datetime
) -> None:
    """The rep deleted a reminder's event in Outlook: the reminder is done, as from a card."""
    reminder = session.get(Reminder, reminder_id)
    if reminder is None:
        return
    reminder.calendar_event_id = None  # already off the calendar
    complete(session, reminder, f"outlook:{rep_email}", settings, now)
    deal = session.get(Deal, reminder.deal_id)
    crm_webhooks.notify(
        session,
        settings,
        ReminderCompleted(
            reminder=reminder.id, deal=deal.crm_id if deal else None, by=reminder.done_by
        ),
        key=f"reminder.completed:{reminder.id}",
        now=now,
    )


def _tell_others(
    session: Session,
    settings: Settings,
    interaction: Interaction | NewMeeting,
    was: str | None,
    previous_deal: int | None,
    now: dt.datetime,
) -> None:
    """Webhooks to the CRM and cards to the reps, once per change."""
    deal = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
    data: dict[str, Any] = {
        "interaction": interaction.id,
        "deal": deal.crm_id if deal else None,
        "kind": "meeting",
        "status": interaction.status,
        "subject": interaction.subject,
        "start": interaction.started_at.isoformat(),
        "end": interaction.ended_at.isoformat() if interaction.ended_at else None,
        "rule": interaction.match_rule,
        "address": interaction.matched_address,
    }  # the fields InteractionLogged and InteractionUpdated share
    lands = deal is not None and _lands_on_deal(previous_deal, deal.id, interaction.status)
    if lands:
        crm_webhooks.notify(
            session,
            settings,
            InteractionLogged(**data),
            key=f"interaction.logged:{interaction.id}:{deal.crm_id if deal else ''}",
            now=now,
        )
    elif was is not None and was != interaction.status:
        crm_webhooks.notify(
            session,
            settings,
            InteractionUpdated(**data),
            key=f"interaction.updated:{interaction.id}:{interaction.status}",
            now=now,
        )
    signal = None
    if interaction.status == NEEDS_CHOICE and was != NEEDS_CHOICE:
        signal = meeting_needs_choice
    elif lands:
        signal = meeting_logged
    if signal is None:
        return
    reps = [deal.owner_email] if deal and deal.owner_email else []
    details = interaction.details or MeetingDetails()
    reps = reps or list(details.internal_participants)[:1]
    signal.send(session, interaction=interaction, reps=reps)


# ---- scheduled work ------------------------------------------------------------------


def mark_held(app: Flask, now: dt.datetime | None = None) -> int:
    """Meetings that ended are held: they move the deal's last interaction and stage clock."""
    now = now or utcnow()
    with get_store(app).session() as session:
        ended = list(
            session.scalars(
                select(Interaction).where(
                    Interaction.kind == "meeting",
                    Interaction.status == "scheduled",
                    Interaction.ended_at <= now,
                )
            )
        )
        deals: set[int] = set()
        for interaction in ended:
            interaction.status = InteractionStatus.HELD
            if interaction.deal_id is not None:
                deals.add(interaction.deal_id)
        session.flush()
        for deal_id in sorted(deals):
            deal = session.get(Deal, deal_id)
            if deal is not None:
                refresh_last_interaction(session, deal, now)
                announce(session, deal, now)
    return len(ended)


def due_mailboxes(app: Flask, now: dt.datetime) -> list[str]:
    """The mailboxes whose next round is due (:func:`next_round_at`), active reps' first
    given a mailbox."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    with get_store(app).session() as session:
        for rep in session.scalars(select(Rep).where(Rep.active.is_(True))):
            mailbox_for(session, rep.email)
        return [
            m.rep_email
            for m in session.scalars(select(Mailbox).order_by(Mailbox.rep_email))
            if next_round_at(m, settings, now) <= now
        ]


def sync_due(app: Flask, now: dt.datetime | None = None) -> list[SyncReport]:
    """The safety net: a round for each mailbox that is due (never read, notified, failed and
    past its backoff, or not read for the poll interval); one mailbox's failure never stops
    the next."""
    now = now or utcnow()
    reports = [sync_mailbox(app, email, now=now) for email in due_mailboxes(app, now)]
    mark_held(app, now)
    return reports


def new_client_state() -> tuple[str, str]:
    """A fresh clientState for a subscription, and the hash we keep of it."""
    state = secrets.token_urlsafe(32)
    return state, hashlib.sha256(state.encode()).hexdigest()
