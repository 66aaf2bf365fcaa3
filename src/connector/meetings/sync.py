"""Meetings log themselves: a delta round of a rep's calendar becomes interactions on deals.

For each mailbox: read the calendarView delta (graph_sync) over the rolling window, then, in
one transaction, apply the round: every meeting is checked against the privacy rules
(``meetings.privacy``), matched to a deal (``meetings.matching``) and upserted as ONE
interaction per meeting across every mailbox (key: iCalUId + original start for recurring
ones). A mailbox's errors are recorded on it and never stop the others.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from connector.crm import webhooks as crm_webhooks
from connector.deals.changes import announce
from connector.meetings.interactions import meeting_status, refresh_last_interaction
from connector.meetings.matching import (
    DealCandidate,
    MatchStatus,
    candidate_keys,
    explain,
    match_meeting,
)
from connector.meetings.privacy import (
    Attendee,
    MeetingFacts,
    PrivacyPolicy,
    SkipReason,
    internal_participants,
    skip_reason,
)
from connector.microsoft365 import graph_client
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.signals import meeting_logged, meeting_needs_choice
from connector.stage_reminders.replan import deferred_deliveries
from connector.store.db import get_store
from connector.store.models import (
    Deal,
    DealContact,
    DealDomain,
    Interaction,
    Mailbox,
    MailboxEvent,
    Reminder,
    Rep,
    utcnow,
)
from graph_sync.errors import GraphSyncError
from graph_sync.meetings import CalendarWindow, DeltaRound, read_delta
from graph_sync.models import Meeting

log = logging.getLogger(__name__)
SOURCE = "outlook"
REMINDER_CATEGORY = "DealBridge"  # graph_sync.calendar tags our reminder events with it
_DOMAINS_TTL = 3600.0
NEEDS_CHOICE = "needs_choice"


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

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


# ---- policy --------------------------------------------------------------------------


def verified_domains(app: Flask) -> list[str]:
    """The tenant's verified domains from Graph ``organization`` (cached for an hour)."""
    from graph_sync.directory import get_verified_domains

    cached: tuple[float, list[str]] | None = app.extensions.get("dealbridge.verified_domains")
    if cached and time.monotonic() - cached[0] < _DOMAINS_TTL:
        return cached[1]
    domains = get_verified_domains(graph_client(app))
    app.extensions["dealbridge.verified_domains"] = (time.monotonic(), domains)
    return domains


def privacy_policy(settings: Settings, tenant_domains: Iterable[str]) -> PrivacyPolicy:
    sensitivities = ["normal", "personal"] if settings.log_personal_meetings else ["normal"]
    return PrivacyPolicy(
        internal_domains=[*tenant_domains, *settings.internal_domains],
        excluded_addresses=settings.excluded_addresses,
        excluded_domains=settings.excluded_domains,
        excluded_categories=settings.excluded_categories,
        log_all_day=settings.log_all_day_meetings,
        log_sensitivities=sensitivities,
    )


def window_for(settings: Settings, now: dt.datetime) -> CalendarWindow:
    """The rolling window, whole UTC days, so it slides once a day (a new delta round)."""
    return CalendarWindow.around(
        now, days_back=settings.sync_days_back, days_ahead=settings.sync_days_ahead
    )


def facts_of(meeting: Meeting, rep_email: str) -> MeetingFacts:
    """The matcher's view of a meeting; the mailbox owner's own answer is folded in (their
    copy's attendee list can be out of date)."""
    own = (meeting.response or "").strip()
    attendees = []
    for a in meeting.attendees:
        response = own if own and a.email == rep_email and own != "none" else a.response
        attendees.append(Attendee(email=a.email, name=a.name or "", response=response, type=a.type))
    return MeetingFacts(
        subject=meeting.subject,
        start=meeting.start,
        end=meeting.end,
        organizer=meeting.organizer_email,
        attendees=tuple(attendees),
        sensitivity=meeting.sensitivity or "normal",
        is_all_day=meeting.is_all_day,
        is_cancelled=meeting.is_cancelled,
        categories=tuple(meeting.categories),
        show_as=meeting.show_as or "busy",
    )


# ---- the round -----------------------------------------------------------------------


def mailbox_for(session: Session, rep_email: str) -> Mailbox:
    mailbox = session.scalar(select(Mailbox).where(Mailbox.rep_email == rep_email))
    if mailbox is None:
        mailbox = Mailbox(rep_email=rep_email, needs_sync=True)
        session.add(mailbox)
        session.flush()
    return mailbox


def sync_mailbox(
    app: Flask, rep_email: str, *, full: bool = False, now: dt.datetime | None = None
) -> SyncReport:
    """One delta round for a rep's mailbox, applied in one transaction."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    store = get_store(app)
    now = now or utcnow()
    report = SyncReport(mailbox=rep_email)
    window = window_for(settings, now)
    with store.session() as session:
        rep = session.scalar(select(Rep).where(Rep.email == rep_email))
        mailbox = mailbox_for(session, rep_email)
        user = (rep.entra_id if rep else None) or mailbox.user_id or rep_email
        same_window = mailbox.window_start == window.start and mailbox.window_end == window.end
        link = None if full or not same_window else mailbox.delta_link
        mailbox.last_round_at = now
        mailbox.needs_sync = False
        mailbox_id = mailbox.id
    report.new_round = link is None
    try:
        if report.new_round:  # once a day (the window slides daily), and on a full sync
            user = refresh_rep_from_outlook(app, rep_email, user)
        tenant_domains = verified_domains(app)
        delta = read_delta(graph_client(app), user, window, link)
    except GraphSyncError as exc:
        report.error = str(exc)
        _record_failure(app, mailbox_id, str(exc))
        log.warning("sync of %s failed: %s", rep_email, exc)
        return report
    policy = privacy_policy(settings, tenant_domains)
    with store.session() as session:
        apply_round(session, mailbox_id, rep_email, delta, policy, settings, now, report)
        done = session.get(Mailbox, mailbox_id)
        assert done is not None
        mailbox = done
        mailbox.delta_link = delta.delta_link
        mailbox.window_start, mailbox.window_end = window.start, window.end
        mailbox.last_success_at = now
        mailbox.last_error = None
        mailbox.failures = 0
        mailbox.events_seen += len(delta.meetings)
    report.pages, report.restarted = delta.pages, delta.restarted
    return report


def refresh_rep_from_outlook(app: Flask, rep_email: str, user: str) -> str:
    """The rep's Entra id, time zone and working hours from Graph; re-plans their deals when
    the working hours changed. Returns the user id to read the mailbox with."""
    from graph_sync.directory import get_mailbox_settings, get_user

    client = graph_client(app)
    found = get_user(client, user)
    hours = get_mailbox_settings(client, found.id)
    with get_store(app).session() as session:
        rep = session.scalar(select(Rep).where(Rep.email == rep_email))
        if rep is None:
            return found.id
        rep.entra_id = found.id
        if found.display_name and not rep.display_name:
            rep.display_name = found.display_name
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
            now = utcnow()
            owned = session.scalars(
                select(Deal).where(Deal.owner_email == rep_email, Deal.status == "open")
            )
            with deferred_deliveries(session, app.extensions[SETTINGS_EXTENSION], now):
                for deal in owned:
                    announce(session, deal, now)
    return found.id


def _record_failure(app: Flask, mailbox_id: int, error: str) -> None:
    with get_store(app).session() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        if mailbox is not None:
            mailbox.last_error = error[:2000]
            mailbox.failures += 1
            mailbox.needs_sync = True


@dataclass
class Round:
    """What one mailbox's round needs from the store, loaded once (not per meeting)."""

    session: Session
    mailbox_id: int
    rep_email: str
    policy: PrivacyPolicy
    settings: Settings
    now: dt.datetime
    report: SyncReport
    interactions: dict[str, Interaction] = field(default_factory=dict)
    links: dict[str, MailboxEvent] = field(default_factory=dict)
    candidates: dict[tuple[frozenset[str], frozenset[str]], list[DealCandidate]] = field(
        default_factory=dict
    )
    deal_ids: dict[str, int] = field(default_factory=dict)
    deals: list[Deal] = field(default_factory=list)  # held: the identity map is weak
    affected: set[int] = field(default_factory=set)
    changes: list[tuple[Interaction, bool, str | None, int | None]] = field(default_factory=list)

    def load(self, delta: DeltaRound) -> None:
        keys = [f"{SOURCE}:{m.occurrence_key}" for m in delta.meetings]
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            query = select(Interaction).where(Interaction.external_key.in_(chunk))
            self.interactions.update((i.external_key, i) for i in self.session.scalars(query))
        links = select(MailboxEvent).where(MailboxEvent.mailbox_id == self.mailbox_id)
        self.links = {row.event_id: row for row in self.session.scalars(links)}


def apply_round(
    session: Session,
    mailbox_id: int,
    rep_email: str,
    delta: DeltaRound,
    policy: PrivacyPolicy,
    settings: Settings,
    now: dt.datetime,
    report: SyncReport,
) -> None:
    """Plan and apply a round in one transaction: meetings, then removals, then the deals."""
    state = Round(session, mailbox_id, rep_email, policy, settings, now, report)
    state.load(delta)
    with session.no_autoflush:  # one flush for the round, not one per query
        for meeting in delta.meetings:
            report.meetings += 1
            _apply_meeting(state, meeting)
        for event_id in delta.removed:
            _apply_removal(state, event_id)
    session.flush()
    for interaction, created, was, previous_deal in state.changes:
        if inspect(interaction).deleted or inspect(interaction).detached:
            continue
        _tell_others(session, settings, interaction, created, was, previous_deal, now)
    with deferred_deliveries(session, settings, now):
        for deal_id in sorted(state.affected):
            deal = session.get(Deal, deal_id)
            if deal is not None:
                refresh_last_interaction(session, deal, now)
                announce(session, deal, now)


def _link(state: Round, event_id: str, key: str) -> None:
    row = state.links.get(event_id)
    if row is None:
        row = MailboxEvent(mailbox_id=state.mailbox_id, event_id=event_id, meeting_key=key)
        state.session.add(row)
        state.links[event_id] = row
    elif row.meeting_key != key:
        row.meeting_key = key


def _apply_meeting(state: Round, meeting: Meeting) -> None:
    session, rep_email, policy, report = state.session, state.rep_email, state.policy, state.report
    if REMINDER_CATEGORY in meeting.categories and not meeting.attendees:
        report.skip("our_reminder_event")  # DealBridge's own reminder events are not meetings
        return
    key = f"{SOURCE}:{meeting.occurrence_key}"
    _link(state, meeting.event_id, key)
    interaction = state.interactions.get(key)
    facts = facts_of(meeting, rep_email)
    reason = skip_reason(facts, policy)
    if reason is not None:
        report.skip(reason.value)
        if interaction is not None:
            _drop_mailbox(session, interaction, rep_email, reason, state.affected)
            if interaction in session.deleted:
                state.interactions.pop(key, None)
        return
    result = match_meeting(facts, _candidates(state, facts), policy)
    if result.status == MatchStatus.NO_MATCH and interaction is None:
        report.skip("no_matching_deal")
        return
    created = interaction is None
    if interaction is None:
        interaction = Interaction(
            kind="meeting", source=SOURCE, external_key=key, created_by=rep_email, details={}
        )
        session.add(interaction)
        state.interactions[key] = interaction
    previous_deal = interaction.deal_id
    chosen = interaction.match_rule == "chosen"
    deal_id = previous_deal if chosen else state.deal_ids.get(result.deal_id or "")
    details = dict(interaction.details or {})
    mailboxes = set(details.get("mailboxes", [])) | {rep_email}
    participants = set(details.get("internal_participants", []))
    participants |= {p.email for p in internal_participants(facts, policy)}
    details.update(
        {
            "ical_uid": meeting.ical_uid,
            "series_id": meeting.series_master_id,
            "event_type": meeting.event_type,
            "original_start": meeting.original_start.isoformat()
            if meeting.original_start
            else None,
            "organizer": meeting.organizer_email,
            "attendees": [
                {"email": a.email, "name": a.name, "response": a.response, "type": a.type}
                for a in facts.attendees
            ],
            "online": meeting.is_online,
            "location": meeting.location_name,
            "mailboxes": sorted(mailboxes),
            "internal_participants": sorted(participants),
            "explanation": explain(result) if not chosen else details.get("explanation"),
            "candidates": [
                {"deal": c.deal_id, "rule": c.rule.value, "address": c.address}
                for c in (result.choices if result.status == MatchStatus.NEEDS_CHOICE else ())
            ],
        }
    )
    interaction.details = details
    interaction.subject = meeting.subject[:500]
    interaction.started_at = meeting.start
    interaction.ended_at = meeting.end
    if not chosen:
        interaction.deal_id = deal_id
        interaction.match_rule = result.rule.value if result.rule else None
        interaction.matched_address = result.address
    if meeting.is_cancelled:
        status = "cancelled"
    elif not chosen and result.status == MatchStatus.NEEDS_CHOICE:
        status = NEEDS_CHOICE
    elif not chosen and result.status == MatchStatus.NO_MATCH:
        status = "unmatched"
    else:
        status = meeting_status(meeting.start, meeting.end, state.now)
    was = interaction.status if not created else None
    interaction.status = status
    state.affected.update(d for d in (previous_deal, interaction.deal_id) if d is not None)
    if created:
        report.logged += 1
    else:
        report.updated += 1
    if status == "cancelled" and was != "cancelled":
        report.cancelled += 1
    if status == NEEDS_CHOICE:
        report.needs_choice += 1
    state.changes.append((interaction, created, was, previous_deal))


def _candidates(state: Round, facts: MeetingFacts) -> list[DealCandidate]:
    """The open deals the meeting's external people point at (cached for the round)."""
    emails, domains = candidate_keys(facts, state.policy)
    lookup = (frozenset(emails), frozenset(domains))
    if lookup not in state.candidates:
        state.candidates[lookup] = _load_candidates(state, emails, domains)
    return state.candidates[lookup]


def _load_candidates(state: Round, emails: set[str], domains: set[str]) -> list[DealCandidate]:
    session = state.session
    ids: set[int] = set()
    if emails:
        ids |= set(
            session.scalars(select(DealContact.deal_id).where(DealContact.email.in_(emails)))
        )
    if domains:
        ids |= set(
            session.scalars(select(DealDomain.deal_id).where(DealDomain.domain.in_(domains)))
        )
    if not ids:
        return []
    deals = list(session.scalars(select(Deal).where(Deal.id.in_(ids), Deal.status == "open")))
    state.deal_ids.update((d.crm_id, d.id) for d in deals)
    state.deals.extend(deals)
    return [
        DealCandidate(
            deal_id=d.crm_id,
            owner_email=d.owner_email,
            last_activity_at=d.last_interaction_at,
            updated_at=d.updated_at,
            contact_emails=frozenset(c.email for c in d.contacts),
            domains=frozenset(x.domain for x in d.domains),
            status=d.status,
        )
        for d in deals
    ]


def _drop_mailbox(
    session: Session,
    interaction: Interaction,
    rep_email: str,
    reason: SkipReason,
    affected: set[int],
) -> None:
    """This mailbox's copy no longer qualifies; the interaction goes when no copy does."""
    details = dict(interaction.details or {})
    mailboxes = set(details.get("mailboxes", [])) - {rep_email}
    if interaction.deal_id is not None:
        affected.add(interaction.deal_id)
    if not mailboxes or reason in {
        SkipReason.PRIVATE,
        SkipReason.EXCLUDED_ADDRESS,
        SkipReason.EXCLUDED_DOMAIN,
        SkipReason.EXCLUDED_CATEGORY,
        SkipReason.INTERNAL_ONLY,
    }:
        # Privacy wins over history: a meeting that must not be logged leaves no trace.
        session.delete(interaction)
        return
    details["mailboxes"] = sorted(mailboxes)
    interaction.details = details


def _apply_removal(state: Round, event_id: str) -> None:
    session, rep_email, report = state.session, state.rep_email, state.report
    _reminder_dismissed(state, event_id)
    link = state.links.pop(event_id, None)
    if link is None:
        return
    report.removed += 1
    interaction = state.interactions.get(link.meeting_key) or session.scalar(
        select(Interaction).where(Interaction.external_key == link.meeting_key)
    )
    session.delete(link)
    if interaction is None:
        return
    details = dict(interaction.details or {})
    mailboxes = set(details.get("mailboxes", [])) - {rep_email}
    organizer_removed = details.get("organizer") == rep_email
    details["mailboxes"] = sorted(mailboxes)
    interaction.details = details
    if organizer_removed or not mailboxes:
        # Deleted by the organizer (or gone from every calendar we read): cancelled, visible.
        was = interaction.status
        if was != "cancelled":
            interaction.status = "cancelled"
            report.cancelled += 1
            state.changes.append((interaction, False, was, interaction.deal_id))
    if interaction.deal_id is not None:
        state.affected.add(interaction.deal_id)


def _reminder_dismissed(state: Round, event_id: str) -> None:
    """The rep deleted a reminder's event in Outlook: the reminder is done, as from a card."""
    from connector.stage_reminders.replan import ACTIVE, complete

    reminder = state.session.scalar(
        select(Reminder).where(Reminder.calendar_event_id == event_id, Reminder.status.in_(ACTIVE))
    )
    if reminder is None:
        return
    reminder.calendar_event_id = None  # already off the calendar
    complete(state.session, reminder, f"outlook:{state.rep_email}", state.settings, state.now)
    deal = state.session.get(Deal, reminder.deal_id)
    crm_webhooks.notify(
        state.session,
        state.settings,
        "reminder.completed",
        {"reminder": reminder.id, "deal": deal.crm_id if deal else None, "by": reminder.done_by},
        key=f"reminder.completed:{reminder.id}",
        now=state.now,
    )
    state.report.skip("reminder_done_in_outlook")


def _tell_others(
    session: Session,
    settings: Settings,
    interaction: Interaction,
    created: bool,
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
    }
    newly_on_deal = deal is not None and (created or previous_deal != interaction.deal_id)
    if newly_on_deal and interaction.status != "cancelled":
        crm_webhooks.notify(
            session,
            settings,
            "interaction.logged",
            data,
            key=f"interaction.logged:{interaction.id}:{deal.crm_id if deal else ''}",
            now=now,
        )
    elif was is not None and was != interaction.status:
        crm_webhooks.notify(
            session,
            settings,
            "interaction.updated",
            data,
            key=f"interaction.updated:{interaction.id}:{interaction.status}",
            now=now,
        )
    signal = None
    if interaction.status == NEEDS_CHOICE and was != NEEDS_CHOICE:
        signal = meeting_needs_choice
    elif newly_on_deal and interaction.status != "cancelled":
        signal = meeting_logged
    if signal is None:
        return
    reps = [deal.owner_email] if deal and deal.owner_email else []
    reps = reps or list((interaction.details or {}).get("internal_participants", []))[:1]
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
            interaction.status = "held"
            if interaction.deal_id is not None:
                deals.add(interaction.deal_id)
        session.flush()
        for deal_id in sorted(deals):
            deal = session.get(Deal, deal_id)
            if deal is not None:
                refresh_last_interaction(session, deal, now)
                announce(session, deal, now)
    return len(ended)


def sync_due(app: Flask, now: dt.datetime | None = None) -> list[SyncReport]:
    """Mailboxes notified (debounced), never read, or not read for the poll interval."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    now = now or utcnow()
    quiet = now - dt.timedelta(seconds=settings.sync_debounce_seconds)
    stale = now - dt.timedelta(minutes=settings.sync_poll_minutes)
    with get_store(app).session() as session:
        for rep in session.scalars(select(Rep).where(Rep.active.is_(True))):
            mailbox_for(session, rep.email)
        due = [
            m.rep_email
            for m in session.scalars(select(Mailbox))
            if (m.needs_sync and (m.notified_at is None or m.notified_at <= quiet))
            or m.last_round_at is None
            or m.last_round_at <= stale
        ]
    reports = [sync_mailbox(app, email, now=now) for email in due]
    mark_held(app, now)
    return reports


def new_client_state() -> tuple[str, str]:
    """A fresh clientState for a subscription, and the hash we keep of it."""
    state = secrets.token_urlsafe(32)
    return state, hashlib.sha256(state.encode()).hexdigest()
