"""A mailbox's delta round as a plan: every change it would make, computed before any is made.

Pure (no session, no I/O, no Flask): ``meetings.sync`` loads what the store holds for the
round into a :class:`StoredRound`, asks :func:`plan_round`, and applies the
:class:`RoundPlan` in one transaction (``dealbridge sync --dry-run`` prints it instead).
The rules are the sync's: privacy first (``meetings.privacy``), then the matcher
(``meetings.matching``); one interaction per meeting key across every mailbox; a rep's
choice of deal is kept; an organizer's deletion keeps the meeting, cancelled; a round that
would take away more than a set share of a mailbox's logged meetings is refused
(vdirsyncer's mass-deletion guard).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from connector.meetings.interactions import meeting_status
from connector.meetings.matching import (
    DealCandidate,
    MatchResult,
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
from connector.store.types import Attendee as StoredAttendee
from connector.store.types import Candidate, InteractionStatus, MeetingDetails
from graph_sync.meetings import DeltaRound
from graph_sync.models import Meeting, series_uid

SOURCE = "outlook"
REMINDER_CATEGORY = "DealBridge"  # graph_sync.calendar tags our reminder events with it
NEEDS_CHOICE = InteractionStatus.NEEDS_CHOICE
CANCELLED = InteractionStatus.CANCELLED
GUARD_MINIMUM = 5
"""The removal guard only watches a mailbox with at least this many logged meetings."""
# Privacy wins over history: a meeting skipped for these leaves no trace, whoever logged it.
PRIVACY_REASONS = frozenset(
    {
        SkipReason.PRIVATE,
        SkipReason.EXCLUDED_ADDRESS,
        SkipReason.EXCLUDED_DOMAIN,
        SkipReason.EXCLUDED_CATEGORY,
        SkipReason.INTERNAL_ONLY,
    }
)


def meeting_key(meeting: Meeting) -> str:
    """The interaction's external key: one per meeting (occurrence) across mailboxes."""
    return f"{SOURCE}:{meeting.occurrence_key}"


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


# ---- what the plan reads ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredInteraction:
    """A meeting's interaction as the store holds it (or as an earlier change planned it)."""

    key: str
    id: int | None
    """None while it is only planned (logged in this round)."""
    deal_id: int | None
    status: InteractionStatus
    subject: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None
    match_rule: str | None
    matched_address: str | None
    details: MeetingDetails

    @property
    def mailboxes(self) -> set[str]:
        return set(self.details.mailboxes)


@dataclass(frozen=True, slots=True)
class StoredDeal:
    """An open deal that a meeting's external people may point at."""

    id: int
    candidate: DealCandidate
    contacts: frozenset[str]
    """Contact addresses as stored (looked up as the store would: exact text)."""
    domains: frozenset[str]
    """Account domains as stored."""


@dataclass(frozen=True, slots=True)
class StoredRound:
    """What the store holds for one mailbox's round, loaded before planning."""

    rep_email: str
    links: Mapping[str, str] = field(default_factory=dict)
    """This mailbox's event ids → the meeting key each became (at least those of the round's
    meetings and removals: the plan reads no other)."""
    interactions: Mapping[str, StoredInteraction] = field(default_factory=dict)
    """By key: those of the round's meetings and of its removed events' links."""
    deals: Sequence[StoredDeal] = ()
    """The open deals any of the round's meetings points at."""
    reminders: Mapping[str, int] = field(default_factory=dict)
    """Removed event ids that are an active reminder's calendar event → the reminder."""
    logged: int = 0
    """This mailbox's logged meetings (linked interactions, not cancelled): the guard's base."""
    deal_names: Mapping[int, str] = field(default_factory=dict)
    """The CRM id of each deal the plan may name (for printing)."""
    excluded: frozenset[str] = frozenset()
    """Series keys a rep said not to log (``meetings.exclusions``): such meetings are skipped."""


@dataclass(frozen=True, slots=True)
class RoundPolicy:
    """The rules a round is planned by: privacy, the time, the removal guard's share."""

    privacy: PrivacyPolicy
    now: dt.datetime
    max_removal_share: float = 0.5


# ---- what the plan says -----------------------------------------------------------------


class ChangeKind(StrEnum):
    LOG = "log"
    """A new interaction (on a deal, needing a choice, or unmatched)."""
    JOIN = "join"
    """This mailbox's copy joins the interaction another mailbox logged."""
    UPDATE = "update"
    UNCHANGED = "unchanged"
    CANCEL = "cancel"
    """Removed by its organizer, or from every calendar read: kept, cancelled."""
    LEAVE = "leave"
    """This mailbox's copy no longer counts; the other mailboxes keep the meeting."""
    FORGET = "forget"
    """The interaction is deleted (privacy, or no mailbox's copy qualifies any more)."""
    UNLINK = "unlink"
    """A removed event's link goes; nothing else changes."""
    SKIP = "skip"
    REMINDER_DONE = "reminder_done"
    """The rep deleted a reminder's event in Outlook: the reminder is done."""


MEETING_WRITES = frozenset({ChangeKind.LOG, ChangeKind.JOIN, ChangeKind.UPDATE})
TAKES_AWAY = frozenset({ChangeKind.CANCEL, ChangeKind.LEAVE, ChangeKind.FORGET})


@dataclass(frozen=True, slots=True)
class PlannedChange:
    """One line of the plan: what happens to one event of the mailbox."""

    kind: ChangeKind
    event_id: str
    key: str | None = None
    subject: str = ""
    start: dt.datetime | None = None
    before: StoredInteraction | None = None
    after: StoredInteraction | None = None
    """The interaction as it will be (None: none, or deleted)."""
    reason: str | None = None
    """Why the meeting is skipped, counted in the report (a SkipReason value or our own)."""
    note: str = ""
    """The matcher's or the privacy rules' explanation, in words."""
    link: bool = False
    """Write this event's link to ``key``."""
    unlink: bool = False
    """Drop this event's link (the event was removed)."""
    reminder_id: int | None = None
    deals: frozenset[int] = frozenset()
    """Deals whose last interaction and reminders are refreshed after the round."""

    @property
    def writes(self) -> bool:
        """Whether applying it changes the store."""
        return self.link or self.kind not in (ChangeKind.SKIP, ChangeKind.UNCHANGED)

    @property
    def takes_away(self) -> bool:
        """A logged meeting leaves this mailbox or is cancelled (what the guard counts)."""
        before, after = self.before, self.after
        if before is None or before.id is None or before.status == CANCELLED:
            return False
        return self.kind in TAKES_AWAY or (after is not None and after.status == CANCELLED)


@dataclass(frozen=True, slots=True)
class RoundPlan:
    rep_email: str
    meetings: int
    items: tuple[PlannedChange, ...]
    refused: str | None = None
    """Why the round must not be applied (the removal guard), else None."""
    deal_names: Mapping[int, str] = field(default_factory=dict)
    """The CRM id of each deal the plan names (for printing)."""

    def lines(self) -> list[str]:
        """Each change and skip in one line, in words (``dealbridge sync --dry-run``)."""
        shown = [i for i in self.items if i.writes or i.kind is ChangeKind.SKIP]
        return [describe(item, self.deal_names) for item in shown]

    @property
    def changes(self) -> tuple[PlannedChange, ...]:
        return tuple(i for i in self.items if i.writes)

    @property
    def affected(self) -> list[int]:
        return sorted({d for i in self.items for d in i.deals})

    @property
    def logged(self) -> int:
        return sum(i.kind is ChangeKind.LOG for i in self.items)

    @property
    def updated(self) -> int:
        kinds = (ChangeKind.JOIN, ChangeKind.UPDATE, ChangeKind.UNCHANGED)
        return sum(i.kind in kinds for i in self.items)

    @property
    def unchanged(self) -> int:
        return sum(i.kind is ChangeKind.UNCHANGED and not i.writes for i in self.items)

    @property
    def cancelled(self) -> int:
        return sum(
            i.after is not None
            and i.after.status == CANCELLED
            and (i.before is None or i.before.status != CANCELLED)
            for i in self.items
        )

    @property
    def needs_choice(self) -> int:
        return sum(
            i.kind in MEETING_WRITES | {ChangeKind.UNCHANGED}
            and i.after is not None
            and i.after.status == NEEDS_CHOICE
            for i in self.items
        )

    @property
    def removed(self) -> int:
        return sum(i.unlink for i in self.items)

    @property
    def skipped(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.items:
            if item.reason is not None:
                counts[item.reason] = counts.get(item.reason, 0) + 1
        return counts


# ---- planning ---------------------------------------------------------------------------


class _Work:
    """The round's state as the plan goes: links and interactions after each change."""

    def __init__(self, stored: StoredRound, policy: RoundPolicy) -> None:
        self.stored, self.policy, self.rep = stored, policy, stored.rep_email
        self.links = dict(stored.links)
        self.interactions = dict(stored.interactions)
        self.deal_ids = {d.candidate.deal_id: d.id for d in stored.deals}
        self.by_contact: dict[str, list[StoredDeal]] = {}
        self.by_domain: dict[str, list[StoredDeal]] = {}
        for deal in stored.deals:
            for email in deal.contacts:
                self.by_contact.setdefault(email, []).append(deal)
            for domain in deal.domains:
                self.by_domain.setdefault(domain, []).append(deal)
        self.cache: dict[tuple[frozenset[str], frozenset[str]], list[DealCandidate]] = {}

    def candidates(self, facts: MeetingFacts) -> list[DealCandidate]:
        """The open deals the meeting's external people point at (cached for the round)."""
        emails, domains = candidate_keys(facts, self.policy.privacy)
        lookup = (frozenset(emails), frozenset(domains))
        if lookup not in self.cache:
            found: dict[int, StoredDeal] = {}
            for email in sorted(emails):
                found.update((d.id, d) for d in self.by_contact.get(email, ()))
            for domain in sorted(domains):
                found.update((d.id, d) for d in self.by_domain.get(domain, ()))
            self.cache[lookup] = [found[i].candidate for i in sorted(found)]
        return self.cache[lookup]


def plan_round(delta: DeltaRound, stored: StoredRound, policy: RoundPolicy) -> RoundPlan:
    """Every change the round would make, in order: its meetings, then its removals."""
    work = _Work(stored, policy)
    items = [_plan_meeting(work, meeting) for meeting in delta.meetings]
    for event_id in delta.removed:
        items.extend(_plan_removal(work, event_id))
    plan = RoundPlan(
        stored.rep_email, len(delta.meetings), tuple(items), deal_names=stored.deal_names
    )
    taken = len({i.key for i in items if i.takes_away})
    if stored.logged >= GUARD_MINIMUM and taken > policy.max_removal_share * stored.logged:
        refused = (
            f"refused: this round would remove or cancel {taken} of the {stored.logged} "
            f"meetings logged from {stored.rep_email}'s calendar (more than "
            f"{policy.max_removal_share:.0%}, DEALBRIDGE_SYNC_MAX_REMOVAL_SHARE); nothing was "
            "changed. If the calendar really was emptied, raise the share for one sync."
        )
        plan = replace(plan, refused=refused)
    return plan


def _deals(*ids: int | None) -> frozenset[int]:
    return frozenset(i for i in ids if i is not None)


def _about(kind: ChangeKind, meeting: Meeting, **rest: Any) -> PlannedChange:
    return PlannedChange(
        kind, meeting.event_id, subject=meeting.subject, start=meeting.start, **rest
    )


def _plan_meeting(work: _Work, meeting: Meeting) -> PlannedChange:
    if REMINDER_CATEGORY in meeting.categories and not meeting.attendees:
        # DealBridge's own reminder events are not meetings.
        return _about(ChangeKind.SKIP, meeting, reason="our_reminder_event")
    key = meeting_key(meeting)
    link = work.links.get(meeting.event_id) != key
    work.links[meeting.event_id] = key
    before = work.interactions.get(key)
    withdrawn = before is None or before.status == InteractionStatus.WITHDRAWN
    if withdrawn and series_uid(meeting.ical_uid) in work.stored.excluded:
        # A rep's "Don't log this meeting": it stays withdrawn whatever changed, and the
        # series' other occurrences are not logged (those logged before are left to her).
        return _about(ChangeKind.SKIP, meeting, key=key, reason="excluded_by_rep", link=link)
    facts = facts_of(meeting, work.rep)
    reason = skip_reason(facts, work.policy.privacy)
    if reason is not None:
        return _plan_skip(work, meeting, key, before, reason, link)
    result = match_meeting(facts, work.candidates(facts), work.policy.privacy)
    if result.status == MatchStatus.NO_MATCH and before is None:
        return _about(
            ChangeKind.SKIP,
            meeting,
            key=key,
            reason="no_matching_deal",
            note=explain(result),
            link=link,
        )
    after = _logged_as(work, key, meeting, facts, result, before)
    work.interactions[key] = after
    if before is None:
        kind = ChangeKind.LOG
    elif work.rep not in before.mailboxes:
        kind = ChangeKind.JOIN
    else:
        kind = ChangeKind.UNCHANGED if after == before else ChangeKind.UPDATE
    return _about(
        kind,
        meeting,
        key=key,
        before=before,
        after=after,
        note=after.details.explanation or "",
        link=link,
        deals=_deals(before.deal_id if before else None, after.deal_id),
    )


def _logged_as(
    work: _Work,
    key: str,
    meeting: Meeting,
    facts: MeetingFacts,
    result: MatchResult,
    before: StoredInteraction | None,
) -> StoredInteraction:
    """The interaction as this copy of the meeting leaves it; a rep's choice of deal stands."""
    chosen = before if before is not None and before.match_rule == "chosen" else None
    if meeting.is_cancelled:
        status = CANCELLED
    elif not chosen and result.status == MatchStatus.NEEDS_CHOICE:
        status = NEEDS_CHOICE
    elif not chosen and result.status == MatchStatus.NO_MATCH:
        status = InteractionStatus.UNMATCHED
    else:
        status = meeting_status(meeting.start, meeting.end, work.policy.now)
        if before is not None and before.status == InteractionStatus.NO_SHOW and status == "held":
            status = InteractionStatus.NO_SHOW  # Teams said nobody came; the calendar keeps it
    return StoredInteraction(
        key=key,
        id=before.id if before is not None else None,
        deal_id=chosen.deal_id if chosen else work.deal_ids.get(result.deal_id or ""),
        status=status,
        subject=meeting.subject[:500],
        started_at=meeting.start,
        ended_at=meeting.end,
        match_rule=chosen.match_rule if chosen else (result.rule.value if result.rule else None),
        matched_address=chosen.matched_address if chosen else result.address,
        details=_details(work, meeting, facts, result, before, chosen=chosen is not None),
    )


def _details(
    work: _Work,
    meeting: Meeting,
    facts: MeetingFacts,
    result: MatchResult,
    before: StoredInteraction | None,
    *,
    chosen: bool,
) -> MeetingDetails:
    """What the interaction keeps of the meeting (never its body), merged over mailboxes.

    A rep's choice keeps its own explanation (``interactions.choose_deal`` wrote it)."""
    details = before.details if before is not None else MeetingDetails()
    participants = set(details.internal_participants)
    participants |= {p.email for p in internal_participants(facts, work.policy.privacy)}
    return details.but(
        ical_uid=meeting.ical_uid,
        series_id=meeting.series_master_id,
        event_type=meeting.event_type,
        original_start=meeting.original_start.isoformat() if meeting.original_start else None,
        organizer=meeting.organizer_email,
        attendees=[
            StoredAttendee(email=a.email, name=a.name, response=a.response, type=a.type)
            for a in facts.attendees
        ],
        online=meeting.is_online,
        **({"join_url": meeting.join_url} if meeting.join_url else {}),  # Teams attendance
        location=meeting.location_name,
        mailboxes=sorted(set(details.mailboxes) | {work.rep}),
        internal_participants=sorted(participants),
        explanation=explain(result) if not chosen else details.explanation,
        candidates=[
            Candidate(deal=c.deal_id, rule=c.rule.value, address=c.address)
            for c in (result.choices if result.status == MatchStatus.NEEDS_CHOICE else ())
        ],
    )


def _plan_skip(
    work: _Work,
    meeting: Meeting,
    key: str,
    before: StoredInteraction | None,
    reason: SkipReason,
    link: bool,
) -> PlannedChange:
    """This mailbox's copy does not qualify; the interaction goes when no copy does."""
    common: dict[str, Any] = {"key": key, "reason": reason.value, "note": reason.explanation}
    if before is None:
        return _about(ChangeKind.SKIP, meeting, link=link, **common)
    deals = _deals(before.deal_id)
    mailboxes = before.mailboxes - {work.rep}
    if not mailboxes or reason in PRIVACY_REASONS:
        del work.interactions[key]
        return _about(ChangeKind.FORGET, meeting, before=before, link=link, deals=deals, **common)
    after = replace(before, details=before.details.but(mailboxes=sorted(mailboxes)))
    work.interactions[key] = after
    kind = ChangeKind.SKIP if after == before else ChangeKind.LEAVE
    return _about(kind, meeting, before=before, after=after, link=link, deals=deals, **common)


def _plan_removal(work: _Work, event_id: str) -> list[PlannedChange]:
    items = []
    reminder = work.stored.reminders.get(event_id)
    if reminder is not None:
        items.append(
            PlannedChange(
                ChangeKind.REMINDER_DONE,
                event_id,
                reason="reminder_done_in_outlook",
                reminder_id=reminder,
            )
        )
    key = work.links.pop(event_id, None)
    if key is None:
        return items
    before = work.interactions.get(key)
    if before is None or before.status == InteractionStatus.WITHDRAWN:  # a rep withdrew it
        items.append(PlannedChange(ChangeKind.UNLINK, event_id, key=key, unlink=True))
        return items
    mailboxes = before.mailboxes - {work.rep}
    organizer_removed = before.details.organizer == work.rep
    # Deleted by the organizer (or gone from every calendar we read): cancelled, visible.
    cancel = (organizer_removed or not mailboxes) and before.status != CANCELLED
    after = replace(
        before,
        details=before.details.but(mailboxes=sorted(mailboxes)),
        status=CANCELLED if cancel else before.status,
    )
    work.interactions[key] = after
    kind = (
        ChangeKind.CANCEL if cancel else ChangeKind.LEAVE if after != before else ChangeKind.UNLINK
    )
    items.append(
        PlannedChange(
            kind,
            event_id,
            key=key,
            subject=before.subject or "",
            start=before.started_at,
            before=before,
            after=after,
            note="deleted by its organizer" if organizer_removed else "gone from every calendar",
            unlink=True,
            deals=_deals(before.deal_id),
        )
    )
    return items


# ---- in words -----------------------------------------------------------------------------


def describe(item: PlannedChange, deal_names: Mapping[int, str]) -> str:
    """One line a rep or an admin can read: what the change does to which meeting."""
    when = f" ({item.start.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC)" if item.start else ""
    meeting = f'"{item.subject}"{when}'

    def deal(interaction: StoredInteraction | None) -> str:
        if interaction is None or interaction.deal_id is None:
            return "no deal"
        return f"deal {deal_names.get(interaction.deal_id, interaction.deal_id)}"

    after, before = item.after, item.before
    match item.kind:
        case ChangeKind.LOG if after is not None and after.status == NEEDS_CHOICE:
            return f"log {meeting}: {item.note}"
        case ChangeKind.LOG if after is not None and after.status == InteractionStatus.UNMATCHED:
            return f"log {meeting} without a deal: {item.note}"
        case ChangeKind.LOG:
            return f"log {meeting} on {deal(after)} ({after.status if after else ''}): {item.note}"
        case ChangeKind.JOIN:
            return f"add this calendar to {meeting} on {deal(after)}"
        case ChangeKind.UPDATE:
            return f"update {meeting}: {_differences(before, after, deal)}"
        case ChangeKind.UNCHANGED:
            return f"keep {meeting} as it is"
        case ChangeKind.CANCEL:
            return f"mark {meeting} on {deal(before)} cancelled: {item.note}"
        case ChangeKind.LEAVE if item.reason is not None:
            return f"take this calendar off {meeting} ({item.note}); other calendars keep it"
        case ChangeKind.LEAVE:
            return f"take this calendar off {meeting}: removed here, other calendars keep it"
        case ChangeKind.FORGET:
            return f"delete {meeting} from {deal(before)}: {item.note}"
        case ChangeKind.UNLINK:
            return f"forget removed event {item.event_id} (nothing else changes)"
        case ChangeKind.REMINDER_DONE:
            return f"mark reminder {item.reminder_id} done: its event was deleted in Outlook"
        case _:
            return f"skip {meeting}: {item.note or item.reason}"


def _differences(
    before: StoredInteraction | None, after: StoredInteraction | None, deal: Any
) -> str:
    if before is None or after is None:
        return "changed"
    said = []
    if (before.started_at, before.ended_at) != (after.started_at, after.ended_at):
        said.append(f"moved to {after.started_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC")
    if before.subject != after.subject:
        said.append("new subject")
    if before.deal_id != after.deal_id:
        said.append(f"{deal(before)} → {deal(after)}")
    if before.status != after.status:
        said.append(f"{before.status} → {after.status}")
    if before.details != after.details and not said:
        said.append("attendees or details changed")
    return ", ".join(said) or "changed"
