"""Meeting → deal matching: each rule, the ranking, ties, explanations and properties."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from connector.meetings.matching import (
    DealCandidate,
    MatchResult,
    MatchRule,
    MatchStatus,
    candidate_keys,
    consumer_domains,
    explain,
    is_consumer_domain,
    match_meeting,
)
from connector.meetings.privacy import Attendee, MeetingFacts, PrivacyPolicy

NOON = dt.datetime(2025, 3, 4, 12, 0, tzinfo=dt.UTC)
POLICY = PrivacyPolicy(internal_domains=["contoso.com"])
ANN = "ann@contoso.com"
BOB = "bob@contoso.com"
DANA = "dana@fabrikam.com"


def meeting(organizer: str | None, *attendees: str | tuple[str, str]) -> MeetingFacts:
    people = [
        Attendee(email=a)
        if isinstance(a, str)
        else Attendee.model_validate({"email": a[0], "response": a[1]})
        for a in attendees
    ]
    return MeetingFacts(
        start=NOON,
        end=NOON + dt.timedelta(minutes=30),
        organizer=organizer,
        attendees=tuple(people),
        sensitivity="normal",
    )


def deal(deal_id: str, **fields: Any) -> DealCandidate:
    values: dict[str, Any] = {"deal_id": deal_id, "updated_at": NOON - dt.timedelta(days=30)}
    return DealCandidate.model_validate(values | fields)


def ago(**delta: float) -> dt.datetime:
    return NOON - dt.timedelta(**delta)


# The rules --------------------------------------------------------------------------


def test_attendee_who_is_a_deal_contact_matches_that_deal() -> None:
    result = match_meeting(meeting(ANN, DANA), [deal("OPP-1", contact_emails={DANA})], POLICY)
    assert (result.status, result.deal_id, result.rule, result.address) == (
        MatchStatus.MATCHED,
        "OPP-1",
        MatchRule.CONTACT,
        DANA,
    )


def test_contact_match_ignores_case_and_whitespace() -> None:
    deals = [deal("OPP-1", contact_emails={" Dana@FABRIKAM.com"})]
    result = match_meeting(meeting(ANN, "DANA@fabrikam.COM "), deals, POLICY)
    assert (result.deal_id, result.address) == ("OPP-1", DANA)


def test_contact_of_a_closed_deal_does_not_match() -> None:
    deals = [deal("OPP-1", contact_emails={DANA}, status="won")]
    assert match_meeting(meeting(ANN, DANA), deals, POLICY).status is MatchStatus.NO_MATCH


def test_contact_rule_wins_over_a_more_recent_domain_match() -> None:
    deals = [
        deal("OPP-1", contact_emails={DANA}, last_activity_at=ago(days=40)),
        deal("OPP-2", domains={"fabrikam.com"}, owner_email=ANN, last_activity_at=ago(hours=1)),
    ]
    result = match_meeting(meeting(ANN, DANA), deals, POLICY)
    assert (result.deal_id, result.rule, [c.deal_id for c in result.candidates]) == (
        "OPP-1",
        MatchRule.CONTACT,
        ["OPP-1"],
    )


def test_attendee_domain_matches_a_deal_account_domain() -> None:
    deals = [deal("OPP-7", domains={"Fabrikam.com"})]
    result = match_meeting(meeting(ANN, "raj@fabrikam.com"), deals, POLICY)
    assert (result.deal_id, result.rule, result.address) == (
        "OPP-7",
        MatchRule.DOMAIN,
        "raj@fabrikam.com",
    )


def test_domain_rule_is_used_when_only_closed_deals_have_the_contact() -> None:
    deals = [
        deal("OPP-1", contact_emails={DANA}, status="lost"),
        deal("OPP-2", domains={"fabrikam.com"}),
    ]
    result = match_meeting(meeting(ANN, DANA), deals, POLICY)
    assert (result.deal_id, result.rule) == ("OPP-2", MatchRule.DOMAIN)


def test_domain_of_a_closed_deal_does_not_match() -> None:
    deals = [deal("OPP-2", domains={"fabrikam.com"}, status="won")]
    assert match_meeting(meeting(ANN, DANA), deals, POLICY).status is MatchStatus.NO_MATCH


def test_account_domain_matches_exactly_not_its_subdomains() -> None:
    deals = [deal("OPP-2", domains={"fabrikam.com"})]
    result = match_meeting(meeting(ANN, "raj@eu.fabrikam.com"), deals, POLICY)
    assert result.status is MatchStatus.NO_MATCH


def test_consumer_domain_never_matches_even_when_a_deal_lists_it() -> None:
    deals = [deal("OPP-3", domains={"gmail.com", "hotmail.co.uk"})]
    facts = meeting(ANN, "dana.private@gmail.com", "raj@Hotmail.co.uk")
    result = match_meeting(facts, deals, POLICY)
    assert (result.status, result.consumer_domains_ignored) == (
        MatchStatus.NO_MATCH,
        ("gmail.com", "hotmail.co.uk"),
    )


def test_consumer_address_still_matches_as_a_listed_contact() -> None:
    deals = [deal("OPP-3", contact_emails={"dana.private@gmail.com"})]
    result = match_meeting(meeting(ANN, "dana.private@gmail.com"), deals, POLICY)
    assert (result.deal_id, result.rule) == ("OPP-3", MatchRule.CONTACT)


def test_internal_addresses_never_match_even_when_listed_as_contacts() -> None:
    deals = [deal("OPP-1", contact_emails={BOB}, domains={"contoso.com"})]
    result = match_meeting(meeting(ANN, BOB, DANA), deals, POLICY)
    assert result.status is MatchStatus.NO_MATCH


def test_meeting_without_external_participants_matches_nothing() -> None:
    deals = [deal("OPP-1", contact_emails={DANA}, domains={"fabrikam.com"})]
    assert match_meeting(meeting(ANN, BOB), deals, POLICY).status is MatchStatus.NO_MATCH


def test_room_address_is_not_used_to_match() -> None:
    room = Attendee(email="room-4@fabrikam.com", type="resource")
    facts = meeting(ANN).model_copy(update={"attendees": (room,)})
    deals = [deal("OPP-1", domains={"fabrikam.com"})]
    assert match_meeting(facts, deals, POLICY).status is MatchStatus.NO_MATCH


# Ranking ----------------------------------------------------------------------------


def test_deal_owned_by_an_internal_participant_beats_a_more_recent_one() -> None:
    deals = [
        deal("OPP-1", contact_emails={DANA}, owner_email="cy@contoso.com", last_activity_at=NOON),
        deal("OPP-2", contact_emails={DANA}, owner_email="Bob@Contoso.com", updated_at=ago(days=9)),
    ]
    result = match_meeting(meeting(ANN, BOB, DANA), deals, POLICY)
    assert (result.deal_id, [c.deal_id for c in result.candidates]) == ("OPP-2", ["OPP-2", "OPP-1"])


def test_organizer_counts_as_an_owning_participant() -> None:
    deals = [
        deal("OPP-1", domains={"fabrikam.com"}, owner_email=BOB, last_activity_at=NOON),
        deal("OPP-2", domains={"fabrikam.com"}, owner_email=ANN, last_activity_at=ago(days=3)),
    ]
    assert match_meeting(meeting(ANN, DANA), deals, POLICY).deal_id == "OPP-2"


def test_owner_who_declined_is_not_preferred() -> None:
    deals = [
        deal("OPP-1", domains={"fabrikam.com"}, owner_email=BOB, last_activity_at=ago(days=3)),
        deal(
            "OPP-2", domains={"fabrikam.com"}, owner_email="cy@contoso.com", last_activity_at=NOON
        ),
    ]
    facts = meeting(DANA, (BOB, "declined"), (ANN, "accepted"))
    result = match_meeting(facts, deals, POLICY)
    assert (result.status, [c.deal_id for c in result.choices]) == (
        MatchStatus.NEEDS_CHOICE,
        ["OPP-2", "OPP-1"],  # no owner attends: equal evidence, the more recent listed first
    )
    assert not any(c.owned_by_participant for c in result.candidates)


def test_equals_are_listed_most_recently_active_first_and_none_is_picked() -> None:
    deals = [
        deal("OPP-1", contact_emails={DANA}, last_activity_at=ago(days=2)),
        deal("OPP-2", contact_emails={DANA}, last_activity_at=ago(hours=5)),
        deal("OPP-3", contact_emails={DANA}),
    ]
    result = match_meeting(meeting(ANN, DANA), deals, POLICY)
    assert (result.status, result.deal_id, [c.deal_id for c in result.candidates]) == (
        MatchStatus.NEEDS_CHOICE,
        None,
        ["OPP-2", "OPP-1", "OPP-3"],
    )
    assert [c.deal_id for c in result.choices] == ["OPP-2", "OPP-1", "OPP-3"]


def test_recency_never_picks_between_deals_with_equal_evidence() -> None:
    """Issue 11: the most recently active of two equally found deals took the meeting."""
    deals = [
        deal("OPP-1", contact_emails={DANA}, last_activity_at=ago(days=2)),
        deal("OPP-2", contact_emails={DANA}, last_activity_at=ago(hours=5)),
    ]
    result = match_meeting(meeting(ANN, DANA), deals, POLICY)
    assert (result.status, result.deal_id, [c.deal_id for c in result.choices]) == (
        MatchStatus.NEEDS_CHOICE,
        None,
        ["OPP-2", "OPP-1"],
    )


def test_deal_without_activity_is_ranked_by_its_last_update() -> None:
    deals = [
        deal("OPP-1", contact_emails={DANA}, last_activity_at=ago(days=2)),
        deal("OPP-2", contact_emails={DANA}, updated_at=ago(days=1)),
    ]
    result = match_meeting(meeting(ANN, DANA), deals, POLICY)
    assert [c.deal_id for c in result.candidates] == ["OPP-2", "OPP-1"]


def test_equally_good_deals_need_a_choice_listed_by_activity_then_deal_id() -> None:
    deals = [
        deal("OPP-9", domains={"fabrikam.com"}, owner_email=ANN, last_activity_at=ago(days=1)),
        deal("OPP-2", domains={"fabrikam.com"}, owner_email=BOB, last_activity_at=ago(days=1)),
        deal("OPP-5", domains={"fabrikam.com"}, owner_email=ANN, last_activity_at=ago(days=4)),
    ]
    result = match_meeting(meeting(ANN, BOB, DANA), deals, POLICY)
    assert (result.status, result.deal_id, [c.deal_id for c in result.choices]) == (
        MatchStatus.NEEDS_CHOICE,
        None,
        ["OPP-2", "OPP-9", "OPP-5"],  # all owned by a participant: equal evidence
    )


def test_activity_in_the_same_minute_counts_as_equally_recent() -> None:
    deals = [
        deal("OPP-1", contact_emails={DANA}, last_activity_at=ago(minutes=10, seconds=-5)),
        deal("OPP-2", contact_emails={DANA}, last_activity_at=ago(minutes=10, seconds=-50)),
    ]
    assert match_meeting(meeting(ANN, DANA), deals, POLICY).status is MatchStatus.NEEDS_CHOICE


def test_activity_a_year_apart_is_still_a_tie() -> None:
    deals = [
        deal("OPP-1", contact_emails={DANA}, last_activity_at=ago(days=365)),
        deal("OPP-2", contact_emails={DANA}, last_activity_at=ago(seconds=60)),
    ]
    result = match_meeting(meeting(ANN, DANA), deals, POLICY)
    assert (result.status, result.deal_id) == (MatchStatus.NEEDS_CHOICE, None)


def test_deal_found_through_two_attendees_names_the_first_address_alphabetically() -> None:
    deals = [deal("OPP-1", contact_emails={DANA, "abe@fabrikam.com"})]
    result = match_meeting(meeting(ANN, DANA, "abe@fabrikam.com"), deals, POLICY)
    assert result.address == "abe@fabrikam.com"


def test_same_deal_given_twice_is_counted_once() -> None:
    deals = [deal("OPP-1", contact_emails={DANA})] * 2
    result = match_meeting(meeting(ANN, DANA), deals, POLICY)
    assert (result.status, len(result.candidates)) == (MatchStatus.MATCHED, 1)


def test_same_deal_given_twice_with_different_data_is_refused() -> None:
    deals = [deal("OPP-1", contact_emails={DANA}), deal("OPP-1", status="won")]
    with pytest.raises(ValueError, match="OPP-1"):
        match_meeting(meeting(ANN, DANA), deals, POLICY)


# Lookup keys and the consumer list ----------------------------------------------------


def test_candidate_keys_are_external_addresses_and_their_company_domains() -> None:
    facts = meeting(ANN, BOB, "Dana@Fabrikam.com", "joe@gmail.com", "raj@eu.northwind.com")
    assert candidate_keys(facts, POLICY) == (
        {"dana@fabrikam.com", "joe@gmail.com", "raj@eu.northwind.com"},
        {"fabrikam.com", "eu.northwind.com"},
    )


@pytest.mark.parametrize(
    "domain",
    [
        "gmail.com",
        "GMail.com",
        "outlook.com",
        "hotmail.co.uk",
        "yahoo.co.jp",
        "icloud.com",
        "proton.me",
        "web.de",
        "qq.com",
        "nc.rr.com",
        " t-online.de ",
    ],
)
def test_well_known_consumer_domains_are_recognized(domain: str) -> None:
    assert is_consumer_domain(domain)


@pytest.mark.parametrize(
    "domain", ["fabrikam.com", "microsoft.com", "gmail.company.com", "mygmail.com", "", "not a"]
)
def test_company_and_unreadable_domains_are_not_consumer(domain: str) -> None:
    assert not is_consumer_domain(domain)


def test_consumer_list_ships_hundreds_of_providers() -> None:
    assert len(consumer_domains()) > 300


# Explanations -------------------------------------------------------------------------


def test_explain_a_contact_match_owned_by_a_participant() -> None:
    deals = [
        deal("OPP-1", contact_emails={DANA}, owner_email=ANN),
        deal("OPP-4", contact_emails={DANA}, last_activity_at=NOON),
    ]
    text = explain(match_meeting(meeting(ANN, DANA), deals, POLICY))
    assert text == "matched deal OPP-1 by contact dana@fabrikam.com; owned by a participant"


def test_explain_a_domain_match_owned_by_a_participant() -> None:
    deals = [
        deal("OPP-1", domains={"fabrikam.com"}, owner_email=ANN, last_activity_at=ago(days=2)),
        deal("OPP-4", domains={"fabrikam.com"}, last_activity_at=ago(days=1)),
    ]
    text = explain(match_meeting(meeting(ANN, "raj@fabrikam.com"), deals, POLICY))
    assert text == (
        "matched deal OPP-1 by domain fabrikam.com (raj@fabrikam.com); owned by a participant"
    )


def test_explain_never_gives_recency_as_a_reason() -> None:
    deals = [
        deal("OPP-1", domains={"fabrikam.com"}, last_activity_at=ago(days=1)),
        deal("OPP-4", domains={"fabrikam.com"}, last_activity_at=ago(days=2)),
    ]
    text = explain(match_meeting(meeting(ANN, "raj@fabrikam.com"), deals, POLICY))
    assert text == (
        "needs a choice between OPP-1 by domain fabrikam.com (raj@fabrikam.com), OPP-4 by domain "
        "fabrikam.com (raj@fabrikam.com): equally good (none owned by a participant)"
    )


def test_explain_the_only_candidate() -> None:
    result = match_meeting(meeting(ANN, DANA), [deal("OPP-1", contact_emails={DANA})], POLICY)
    assert explain(result) == "matched deal OPP-1 by contact dana@fabrikam.com; the only candidate"


def test_explain_a_choice_names_the_equal_deals() -> None:
    deals = [deal(d, contact_emails={DANA}, last_activity_at=ago(days=1)) for d in ("B-2", "A-1")]
    text = explain(match_meeting(meeting(ANN, DANA), deals, POLICY))
    assert text == (
        "needs a choice between A-1 by contact dana@fabrikam.com, B-2 by contact "
        "dana@fabrikam.com: equally good (none owned by a participant)"
    )


def test_explain_no_match_names_the_consumer_domains_it_ignored() -> None:
    result = match_meeting(meeting(ANN, "joe@gmail.com"), [], POLICY)
    assert explain(result).endswith("consumer mail domains are never matched (gmail.com)")


# Properties ---------------------------------------------------------------------------

INTERNAL = [ANN, BOB, "cy@contoso.com"]
EXTERNAL = [DANA, "raj@fabrikam.com", "lee@northwind.com", "joe@gmail.com", "mo@hotmail.co.uk"]
DOMAINS = ["fabrikam.com", "northwind.com", "gmail.com", "hotmail.co.uk", "contoso.com"]
RESPONSES = ["none", "accepted", "tentativelyAccepted", "declined"]

ATTENDEES = st.lists(
    st.tuples(st.sampled_from(INTERNAL + EXTERNAL), st.sampled_from(RESPONSES)), max_size=6
)
MOMENTS = st.integers(min_value=0, max_value=6 * 60).map(lambda s: NOON - dt.timedelta(seconds=s))


@st.composite
def deals(draw: st.DrawFn, max_size: int = 6) -> list[DealCandidate]:
    ids = draw(st.lists(st.integers(1, 40), unique=True, max_size=max_size))
    return [
        deal(
            f"OPP-{i}",
            owner_email=draw(st.one_of(st.none(), st.sampled_from(INTERNAL))),
            contact_emails=draw(st.sets(st.sampled_from(EXTERNAL + INTERNAL), max_size=2)),
            domains=draw(st.sets(st.sampled_from(DOMAINS), max_size=2)),
            status=draw(st.sampled_from(["open", "open", "won", "lost"])),
            last_activity_at=draw(st.one_of(st.none(), MOMENTS)),
            updated_at=draw(MOMENTS),
        )
        for i in ids
    ]


MEETINGS = st.builds(
    lambda organizer, people: meeting(organizer, *people),
    st.one_of(st.none(), st.sampled_from(INTERNAL + EXTERNAL)),
    ATTENDEES,
)


@settings(deadline=None)
@given(MEETINGS, deals())
def test_result_only_names_open_deals_it_was_given(
    facts: MeetingFacts, candidates: list[DealCandidate]
) -> None:
    result = match_meeting(facts, candidates, POLICY)
    open_ids = {d.deal_id for d in candidates if d.status == "open"}
    named = {c.deal_id for c in result.candidates} | {result.deal_id} - {None}
    assert named <= open_ids


@settings(deadline=None)
@given(MEETINGS, deals(), st.randoms(use_true_random=False))
def test_result_does_not_depend_on_attendee_or_candidate_order(
    facts: MeetingFacts, candidates: list[DealCandidate], rng: Any
) -> None:
    attendees = list(facts.attendees)
    shuffled_deals = list(candidates)
    rng.shuffle(attendees)
    rng.shuffle(shuffled_deals)
    shuffled = facts.model_copy(update={"attendees": tuple(attendees)})
    assert match_meeting(shuffled, shuffled_deals, POLICY) == match_meeting(
        facts, candidates, POLICY
    )


@settings(deadline=None)
@given(
    st.lists(st.sampled_from(["joe@gmail.com", "mo@hotmail.co.uk", "al@nc.rr.com"]), min_size=1),
    deals(),
)
def test_meeting_with_only_consumer_addresses_never_matches_by_domain(
    people: list[str], candidates: list[DealCandidate]
) -> None:
    result = match_meeting(meeting(ANN, *people), candidates, POLICY)
    assert result.rule is not MatchRule.DOMAIN


@settings(deadline=None)
@given(MEETINGS, deals())
def test_a_match_is_strictly_better_than_every_other_candidate_and_a_choice_is_a_tie(
    facts: MeetingFacts, candidates: list[DealCandidate]
) -> None:
    result = match_meeting(facts, candidates, POLICY)
    ranks = [c.rank for c in result.candidates]
    expected = {
        MatchStatus.NO_MATCH: not ranks,
        MatchStatus.MATCHED: bool(ranks) and all(ranks[0] > r for r in ranks[1:]),
        MatchStatus.NEEDS_CHOICE: len(ranks) > 1 and ranks[0] == ranks[1],
    }
    assert expected[result.status]


@settings(deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(MEETINGS, deals(max_size=5), st.integers(min_value=2, max_value=600))
def test_adding_an_unowned_deal_keeps_a_match_won_on_ownership_else_asks(
    facts: MeetingFacts, candidates: list[DealCandidate], newer_by_minutes: int
) -> None:
    before = match_meeting(facts, candidates, POLICY)
    assume(before.status is MatchStatus.MATCHED)
    winner = before.candidates[0]
    same_rule = (
        {"contact_emails": {winner.address}}
        if winner.rule is MatchRule.CONTACT
        else {"domains": {winner.address.rpartition("@")[2]}}
    )
    newer = deal(  # more recently active than the winner: recency must not matter
        "OPP-99",
        updated_at=winner.active_at + dt.timedelta(minutes=newer_by_minutes),
        **same_rule,
    )
    after = match_meeting(facts, [*candidates, newer], POLICY)
    if winner.owned_by_participant:
        assert (after.status, after.deal_id) == (MatchStatus.MATCHED, winner.deal_id)
    else:  # it was the only candidate: an equally good second one makes it ambiguous
        assert (after.status, after.deal_id) == (MatchStatus.NEEDS_CHOICE, None)
        assert {c.deal_id for c in after.choices} == {winner.deal_id, "OPP-99"}


@st.composite
def dana_deals(draw: st.DrawFn) -> list[DealCandidate]:
    """Two to five open deals that all have Dana as a contact, owned by anyone."""
    ids = draw(st.lists(st.integers(1, 40), unique=True, min_size=2, max_size=5))
    return [
        deal(
            f"OPP-{i}",
            owner_email=draw(st.one_of(st.none(), st.sampled_from(INTERNAL))),
            contact_emails={DANA},
            last_activity_at=draw(st.one_of(st.none(), MOMENTS)),
            updated_at=draw(MOMENTS),
        )
        for i in ids
    ]


@settings(deadline=None)
@given(ATTENDEES, dana_deals(), st.lists(st.integers(0, 10_000), min_size=5, max_size=5))
def test_activity_times_never_decide_which_deal_a_meeting_is_on(
    people: list[tuple[str, str]], candidates: list[DealCandidate], minutes: list[int]
) -> None:
    """Evidence decides (the rule, a participant owning the deal); recency only orders."""
    facts = meeting(ANN, DANA, *people)
    moved = [
        d.model_copy(
            update={"last_activity_at": None, "updated_at": NOON - dt.timedelta(minutes=m)}
        )
        for d, m in zip(candidates, minutes, strict=False)
    ]
    before = match_meeting(facts, candidates, POLICY)
    after = match_meeting(facts, moved, POLICY)
    assert (after.status, after.deal_id, {c.deal_id for c in after.choices}) == (
        before.status,
        before.deal_id,
        {c.deal_id for c in before.choices},
    )


@settings(deadline=None)
@given(MEETINGS, deals(max_size=5))
def test_adding_an_unrelated_deal_changes_nothing(
    facts: MeetingFacts, candidates: list[DealCandidate]
) -> None:
    unrelated = deal(
        "OPP-99",
        owner_email=ANN,
        contact_emails={"zed@adventure-works.com"},
        domains={"adventure-works.com"},
        last_activity_at=NOON,
    )
    before: MatchResult = match_meeting(facts, candidates, POLICY)
    assert match_meeting(facts, [*candidates, unrelated], POLICY) == before
