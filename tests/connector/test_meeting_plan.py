"""The meeting round's plan, property-tested: plan_round is pure, so hypothesis can throw any
calendar and any stored state at it and check the sync's rules hold for every plan.

``applied`` is the test's model of ``apply_plan``: the snapshot the store would hold after the
plan (the real apply is exercised over HTTP in test_meeting_sync.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from connector.meetings.matching import DealCandidate
from connector.meetings.plan import (
    CANCELLED,
    GUARD_MINIMUM,
    PRIVACY_REASONS,
    ChangeKind,
    RoundPlan,
    RoundPolicy,
    StoredDeal,
    StoredInteraction,
    StoredRound,
    facts_of,
    plan_round,
)
from connector.meetings.privacy import PrivacyPolicy, SkipReason, skip_reason
from connector.store.types import MeetingDetails
from graph_sync.meetings import DeltaRound
from graph_sync.models import Meeting, MeetingAttendee

NOW = dt.datetime(2026, 6, 10, 12, 0, tzinfo=dt.UTC)
ANN, RAJ = "ann@contoso.com", "raj@contoso.com"
DANA, EVE, JOE = "dana@fabrikam.com", "eve@northwind.com", "joe@gmail.com"
PEOPLE = [ANN, RAJ, DANA, EVE, JOE]
PRIVACY = PrivacyPolicy(internal_domains=frozenset({"contoso.com"}))
POLICY = RoundPolicy(privacy=PRIVACY, now=NOW, max_removal_share=1.0)  # guard off
EVENTS = 8


def _deal(
    deal_id: int, crm_id: str, owner: str, contacts: set[str], domains: set[str]
) -> StoredDeal:
    candidate = DealCandidate(
        deal_id=crm_id,
        owner_email=owner,
        updated_at=NOW - dt.timedelta(days=deal_id),
        contact_emails=frozenset(contacts),
        domains=frozenset(domains),
    )
    return StoredDeal(deal_id, candidate, frozenset(contacts), frozenset(domains))


DEALS = (
    _deal(1, "OPP-1", ANN, {DANA}, {"fabrikam.com"}),
    _deal(2, "OPP-2", RAJ, set(), {"fabrikam.com", "northwind.com"}),
    _deal(3, "OPP-3", ANN, set(), {"northwind.com"}),
)


def key(i: int) -> str:
    return f"outlook:k{i}"


attendees = st.lists(
    st.builds(
        MeetingAttendee,
        email=st.sampled_from(PEOPLE),
        response=st.sampled_from(["none", "accepted", "declined", "tentativelyAccepted"]),
    ),
    max_size=4,
    unique_by=lambda a: a.email,
)


@st.composite
def meetings(draw: Any, index: int, mailbox: str = ANN) -> Meeting:
    start = NOW + dt.timedelta(hours=draw(st.integers(-72, 72)))
    return Meeting(
        mailbox=mailbox,
        event_id=f"e{index}",
        ical_uid=f"uid{index}",
        occurrence_key=f"k{index}",
        subject=draw(st.sampled_from(["Pricing", "Demo", "Team sync"])),
        start=start,
        end=start + dt.timedelta(minutes=30),
        organizer_email=draw(st.sampled_from([*PEOPLE, None])),
        attendees=draw(attendees),
        sensitivity=draw(st.sampled_from(["normal", "normal", "personal", "private"])),
        is_all_day=draw(st.booleans()),
        is_cancelled=draw(st.booleans()),
        categories=draw(st.sampled_from([[], [], ["Private stuff"], ["DealBridge"]])),
        response=draw(st.sampled_from([None, "accepted", "declined"])),
    )


@st.composite
def interactions(draw: Any, index: int) -> StoredInteraction:
    start = NOW + dt.timedelta(hours=draw(st.integers(-72, 72)))
    chosen = draw(st.booleans())
    return StoredInteraction(
        key=key(index),
        id=100 + index,
        deal_id=draw(st.sampled_from([None, 1, 2, 3])),
        status=draw(st.sampled_from(["scheduled", "held", CANCELLED, "needs_choice"])),
        subject="Earlier",
        started_at=start,
        ended_at=start + dt.timedelta(minutes=30),
        match_rule="chosen" if chosen else draw(st.sampled_from(["contact", "domain", None])),
        matched_address=None,
        details=MeetingDetails(
            mailboxes=tuple(sorted(draw(st.sets(st.sampled_from([ANN, RAJ]))))),
            organizer=draw(st.sampled_from([ANN, RAJ, DANA])),
            internal_participants=(),
        ),
    )


def logged_count(links: dict[str, str], stored: dict[str, StoredInteraction]) -> int:
    return len({k for k in links.values() if k in stored and stored[k].status != CANCELLED})


@st.composite
def rounds(draw: Any) -> tuple[DeltaRound, StoredRound]:
    """A delta round of Ann's mailbox and what the store held before it."""
    indexes = list(range(EVENTS))
    stored = {key(i): draw(interactions(i)) for i in indexes if draw(st.booleans())}
    links = {f"e{i}": key(i) for i in indexes if draw(st.booleans())}
    seen = draw(st.sets(st.sampled_from(indexes)))
    removed = [f"e{i}" for i in indexes if i not in seen and draw(st.booleans())]
    reminders = {e: 7 for e in removed[:1] if draw(st.booleans())}
    delta = DeltaRound(
        mailbox=ANN,
        meetings=[draw(meetings(i)) for i in sorted(seen)],
        removed=[*removed, "unknown"],
        delta_link="next",
        pages=1,
    )
    round_ = StoredRound(
        rep_email=ANN,
        links=links,
        interactions=stored,
        deals=DEALS,
        reminders=reminders,
        logged=logged_count(links, stored),
    )
    return delta, round_


def applied(stored: StoredRound, plan: RoundPlan) -> StoredRound:
    """What the store holds after the plan is applied (the model of apply_plan)."""
    links = dict(stored.links)
    kept = dict(stored.interactions)
    reminders = dict(stored.reminders)
    for item in plan.changes:
        if item.link and item.key is not None:
            links[item.event_id] = item.key
        if item.unlink:
            links.pop(item.event_id, None)
        if item.kind is ChangeKind.REMINDER_DONE:
            reminders = {e: r for e, r in reminders.items() if r != item.reminder_id}
        if item.key is None:
            continue
        if item.kind is ChangeKind.FORGET:
            kept.pop(item.key, None)
        elif item.after is not None and item.kind is not ChangeKind.SKIP:
            new_id = 1000 + int(item.key.rpartition("k")[2])
            kept[item.key] = item.after if item.after.id else replace(item.after, id=new_id)
    return replace(
        stored,
        links=links,
        interactions=kept,
        reminders=reminders,
        logged=logged_count(links, kept),
    )


def outcome(plan: RoundPlan, event_id: str) -> list[Any]:
    return [i for i in plan.items if i.event_id == event_id]


FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(rounds())
def test_planning_the_same_round_again_changes_nothing(
    case: tuple[DeltaRound, StoredRound],
) -> None:
    delta, stored = case
    first = plan_round(delta, stored, POLICY)
    again = plan_round(delta, applied(stored, first), POLICY)
    assert again.changes == (), [str(c.kind) for c in again.changes]


@FAST
@given(rounds())
def test_a_private_or_internal_meeting_is_never_logged(
    case: tuple[DeltaRound, StoredRound],
) -> None:
    delta, stored = case
    plan = plan_round(delta, stored, POLICY)
    after = applied(stored, plan)
    for meeting in delta.meetings:
        [item] = outcome(plan, meeting.event_id)
        if "DealBridge" in meeting.categories and not meeting.attendees:
            continue  # our own reminder event: skipped before the privacy rules
        reason = skip_reason(facts_of(meeting, ANN), PRIVACY)
        if meeting.sensitivity == "private":
            assert reason is SkipReason.PRIVATE
        if reason in PRIVACY_REASONS:
            assert item.kind in (ChangeKind.SKIP, ChangeKind.FORGET)
            # Privacy wins over history, and over a rep's earlier choice of deal.
            assert f"outlook:{meeting.occurrence_key}" not in after.interactions


@FAST
@given(rounds())
def test_an_organizers_deletion_keeps_the_meeting_as_cancelled(
    case: tuple[DeltaRound, StoredRound],
) -> None:
    delta, stored = case
    plan = plan_round(delta, stored, POLICY)
    after = applied(stored, plan)
    for event_id in delta.removed:
        linked = stored.links.get(event_id)
        before = stored.interactions.get(linked or "")
        if before is not None and before.details.organizer == ANN:
            kept = after.interactions[before.key]
            assert kept.status == CANCELLED
            assert ANN not in kept.mailboxes


@FAST
@given(rounds())
def test_a_removal_never_deletes_a_meeting_other_mailboxes_still_have(
    case: tuple[DeltaRound, StoredRound],
) -> None:
    delta, stored = case
    plan = plan_round(delta, stored, POLICY)
    after = applied(stored, plan)
    for event_id in delta.removed:
        before = stored.interactions.get(stored.links.get(event_id) or "")
        if before is None:
            continue
        assert before.key in after.interactions
        kept = after.interactions[before.key]
        others = before.mailboxes - {ANN}
        if others and before.details.organizer != ANN:
            assert kept.status == before.status
            assert kept.mailboxes == others


@FAST
@given(rounds(), st.sampled_from([0.0, 0.2, 0.5, 0.9]))
def test_the_guard_refuses_only_rounds_taking_away_more_than_the_share(
    case: tuple[DeltaRound, StoredRound], share: float
) -> None:
    delta, stored = case
    policy = replace(POLICY, max_removal_share=share)
    plan = plan_round(delta, stored, policy)
    unguarded = plan_round(delta, stored, POLICY)
    assert unguarded.refused is None
    taken = {i.key for i in unguarded.items if i.takes_away}
    expected = stored.logged >= GUARD_MINIMUM and len(taken) > share * stored.logged
    assert (plan.refused is not None) == expected
    assert plan.items == unguarded.items  # the guard judges the plan; it does not change it


def test_a_mass_removal_is_refused_with_the_reason() -> None:
    stored_interactions = {
        key(i): StoredInteraction(
            key=key(i),
            id=100 + i,
            deal_id=1,
            status="held",
            subject=f"Call {i}",
            started_at=NOW,
            ended_at=NOW,
            match_rule="contact",
            matched_address=DANA,
            details=MeetingDetails(mailboxes=(ANN,), organizer=ANN),
        )
        for i in range(6)
    }
    links = {f"e{i}": key(i) for i in range(6)}
    stored = StoredRound(rep_email=ANN, links=links, interactions=stored_interactions, logged=6)
    delta = DeltaRound(
        mailbox=ANN, meetings=[], removed=[f"e{i}" for i in range(4)], delta_link="x", pages=1
    )
    plan = plan_round(delta, stored, replace(POLICY, max_removal_share=0.5))
    assert plan.refused is not None
    assert "4 of the 6 meetings" in plan.refused
    assert plan.cancelled == 4
    three = replace(delta, removed=["e0", "e1", "e2"])
    assert plan_round(three, stored, replace(POLICY, max_removal_share=0.5)).refused is None


class TwoCalendars(RuleBasedStateMachine):
    """Ann and Raj book, edit and delete meetings with customers; each mailbox syncs now and
    then. The plan of every round is applied to a model store, and the rules must hold."""

    def __init__(self) -> None:
        super().__init__()
        self.meetings: dict[str, dict[str, Any]] = {}
        self.calendars: dict[str, set[str]] = {ANN: set(), RAJ: set()}
        self.changed: dict[str, set[str]] = {ANN: set(), RAJ: set()}
        self.removed: dict[str, set[str]] = {ANN: set(), RAJ: set()}
        self.links: dict[str, dict[str, str]] = {ANN: {}, RAJ: {}}
        self.store: dict[str, StoredInteraction] = {}

    def _touch(self, k: str) -> None:
        for mailbox, calendar in self.calendars.items():
            if k in calendar:
                self.changed[mailbox].add(k)

    @rule(
        n=st.integers(0, 5),
        organizer=st.sampled_from([ANN, RAJ]),
        invite=st.booleans(),
        customers=st.sets(st.sampled_from([DANA, EVE, JOE]), max_size=2),
        hours=st.integers(-48, 48),
    )
    def book(self, n: int, organizer: str, invite: bool, customers: set[str], hours: int) -> None:
        k = f"k{n}"
        if k in self.meetings:
            return
        other = RAJ if organizer == ANN else ANN
        people = sorted(customers | ({other} if invite else set()))
        self.meetings[k] = {
            "organizer": organizer,
            "people": people,
            "start": NOW + dt.timedelta(hours=hours),
            "sensitivity": "normal",
            "cancelled": False,
        }
        self.calendars[organizer].add(k)
        if invite:
            self.calendars[other].add(k)
        self._touch(k)

    @rule(
        data=st.data(),
        sensitivity=st.sampled_from(["normal", "private"]),
        hours=st.integers(-48, 48),
    )
    def edit(self, data: Any, sensitivity: str, hours: int) -> None:
        live = sorted(k for k, m in self.meetings.items() if not m["cancelled"])
        if not live:
            return
        k = data.draw(st.sampled_from(live))
        self.meetings[k].update(sensitivity=sensitivity, start=NOW + dt.timedelta(hours=hours))
        self._touch(k)

    @rule(data=st.data())
    def organizer_deletes(self, data: Any) -> None:
        live = sorted(k for k, m in self.meetings.items() if not m["cancelled"])
        if not live:
            return
        k = data.draw(st.sampled_from(live))
        organizer = self.meetings[k]["organizer"]
        self.meetings[k]["cancelled"] = True
        if k in self.calendars[organizer]:
            self.calendars[organizer].discard(k)
            self.removed[organizer].add(k)
            self.changed[organizer].discard(k)
        self._touch(k)  # the attendees' copies say cancelled

    @rule(data=st.data(), mailbox=st.sampled_from([ANN, RAJ]))
    def attendee_deletes(self, data: Any, mailbox: str) -> None:
        mine = sorted(
            k for k in self.calendars[mailbox] if self.meetings[k]["organizer"] != mailbox
        )
        if not mine:
            return
        k = data.draw(st.sampled_from(mine))
        self.calendars[mailbox].discard(k)
        self.changed[mailbox].discard(k)
        self.removed[mailbox].add(k)

    def _meeting(self, mailbox: str, k: str) -> Meeting:
        m = self.meetings[k]
        return Meeting(
            mailbox=mailbox,
            event_id=f"{mailbox}|{k}",
            ical_uid=k,
            occurrence_key=k,
            subject=f"Meeting {k}",
            start=m["start"],
            end=m["start"] + dt.timedelta(minutes=30),
            organizer_email=m["organizer"],
            attendees=[MeetingAttendee(email=p, response="accepted") for p in m["people"]],
            sensitivity=m["sensitivity"],
            is_cancelled=m["cancelled"],
        )

    @rule(mailbox=st.sampled_from([ANN, RAJ]))
    def sync(self, mailbox: str) -> None:
        delta = DeltaRound(
            mailbox=mailbox,
            meetings=[self._meeting(mailbox, k) for k in sorted(self.changed[mailbox])],
            removed=[f"{mailbox}|{k}" for k in sorted(self.removed[mailbox])],
            delta_link="next",
            pages=1,
        )
        stored = StoredRound(
            rep_email=mailbox,
            links=self.links[mailbox],
            interactions=self.store,
            deals=DEALS,
            logged=logged_count(self.links[mailbox], self.store),
        )
        plan = plan_round(delta, stored, POLICY)
        after = applied(stored, plan)
        for item in plan.items:
            if item.unlink:  # a removal never deletes the meeting: it is kept, maybe cancelled
                assert item.kind is not ChangeKind.FORGET
                assert item.key not in self.store or item.key in after.interactions
        for meeting in delta.meetings:
            if meeting.sensitivity == "private":
                assert f"outlook:{meeting.occurrence_key}" not in after.interactions
        for k in self.removed[mailbox]:
            if self.meetings[k]["organizer"] == mailbox and f"outlook:{k}" in self.store:
                assert after.interactions[f"outlook:{k}"].status == CANCELLED
        assert plan_round(delta, after, POLICY).changes == ()
        self.store = dict(after.interactions)
        self.links[mailbox] = dict(after.links)
        self.changed[mailbox].clear()
        self.removed[mailbox].clear()

    @invariant()
    def an_interaction_counts_only_mailboxes_that_hold_its_event(self) -> None:
        for key_, interaction in self.store.items():
            holders = {mb for mb, links in self.links.items() if key_ in links.values()}
            assert interaction.mailboxes <= holders
            assert key_.removeprefix("outlook:") in self.meetings


TwoCalendars.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
test_two_calendars_sync_by_the_rules = TwoCalendars.TestCase
