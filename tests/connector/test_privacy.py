"""What is never logged: each privacy rule, address handling and the policy's refusals."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connector.meetings.privacy import (
    Attendee,
    MeetingFacts,
    PrivacyPolicy,
    SkipReason,
    external_participants,
    internal_participants,
    is_internal,
    normalize_address,
    participants,
    skip_reason,
)

START = dt.datetime(2025, 3, 4, 15, 0, tzinfo=dt.UTC)
POLICY = PrivacyPolicy(internal_domains=["contoso.com"])
REP = "ann@contoso.com"
CUSTOMER = "dana@fabrikam.com"


def person(email: str, response: str = "accepted", kind: str = "required") -> Attendee:
    return Attendee.model_validate({"email": email, "response": response, "type": kind})


def meeting(organizer: str | None = REP, *attendees: Attendee | str, **fields: Any) -> MeetingFacts:
    people = [a if isinstance(a, Attendee) else person(a) for a in attendees]
    values: dict[str, Any] = {
        "subject": "Pricing review",
        "start": START,
        "end": START + dt.timedelta(hours=1),
        "organizer": organizer,
        "attendees": people,
        "sensitivity": "normal",
    }
    return MeetingFacts.model_validate(values | fields)


def test_customer_meeting_is_logged() -> None:
    assert skip_reason(meeting(REP, CUSTOMER), POLICY) is None


@pytest.mark.parametrize("sensitivity", ["private", "confidential", "Private", " CONFIDENTIAL "])
def test_private_meeting_is_never_logged(sensitivity: str) -> None:
    facts = meeting(REP, CUSTOMER, sensitivity=sensitivity)
    assert skip_reason(facts, POLICY) is SkipReason.PRIVATE


def test_unknown_sensitivity_is_treated_as_private() -> None:
    facts = meeting(REP, CUSTOMER, sensitivity="topSecret")
    assert skip_reason(facts, POLICY) is SkipReason.PRIVATE


def test_personal_meeting_is_logged_only_when_settings_add_it() -> None:
    facts = meeting(REP, CUSTOMER, sensitivity="personal")
    loosened = PrivacyPolicy(
        internal_domains=["contoso.com"], log_sensitivities=["normal", "personal"]
    )
    assert (skip_reason(facts, POLICY), skip_reason(facts, loosened)) == (SkipReason.PRIVATE, None)


@pytest.mark.parametrize("asked", [["normal", "private"], "normal,Confidential"])
def test_settings_cannot_allow_private_or_confidential_meetings(asked: Any) -> None:
    with pytest.raises(ValidationError, match="never logged, whatever the settings say"):
        PrivacyPolicy(log_sensitivities=asked)


def test_settings_can_stop_logging_normal_meetings() -> None:
    only_personal = PrivacyPolicy(internal_domains=["contoso.com"], log_sensitivities=["personal"])
    assert skip_reason(meeting(REP, CUSTOMER), only_personal) is SkipReason.PRIVATE


def test_policy_reads_comma_separated_settings_in_any_case() -> None:
    policy = PrivacyPolicy.model_validate(
        {
            "internal_domains": " Contoso.com, @Contoso-Labs.io.,",
            "excluded_addresses": "CEO@Contoso.com",
            "excluded_categories": "Personal , HR",
        }
    )
    assert (policy.internal_domains, policy.excluded_addresses, policy.excluded_categories) == (
        frozenset({"contoso.com", "contoso-labs.io"}),
        frozenset({"ceo@contoso.com"}),
        frozenset({"personal", "hr"}),
    )


def test_policy_names_each_unreadable_domain_and_address() -> None:
    with pytest.raises(ValidationError) as refused:
        PrivacyPolicy.model_validate(
            {"internal_domains": ["contoso.com", "not a domain"], "excluded_addresses": ["ceo"]}
        )
    text = str(refused.value)
    assert "'not a domain'" in text
    assert "'ceo'" in text


def test_internal_only_meeting_is_not_logged() -> None:
    facts = meeting(REP, "bob@contoso.com", "cy@contoso.com")
    assert skip_reason(facts, POLICY) is SkipReason.INTERNAL_ONLY


def test_meeting_with_only_the_organizer_is_internal_only() -> None:
    assert skip_reason(meeting(REP), POLICY) is SkipReason.INTERNAL_ONLY


def test_a_room_elsewhere_does_not_make_an_internal_meeting_external() -> None:
    room = person("room-4@rooms.regus.com", "accepted", "resource")
    facts = meeting(REP, "bob@contoso.com", room)
    assert skip_reason(facts, POLICY) is SkipReason.INTERNAL_ONLY


def test_configured_extra_domain_counts_as_internal() -> None:
    policy = PrivacyPolicy(internal_domains=["contoso.com", "contoso-labs.io"])
    facts = meeting(REP, "eve@contoso-labs.io")
    assert (skip_reason(facts, POLICY), skip_reason(facts, policy)) == (
        None,
        SkipReason.INTERNAL_ONLY,
    )


@pytest.mark.parametrize(
    ("address", "internal"),
    [
        ("ann@contoso.com", True),
        ("Ann@CONTOSO.com", True),
        ("  ann@contoso.com \t", True),
        ("ann@eu.contoso.com", True),
        ("ann@mail.eu.contoso.com", True),
        ("ann@contoso.com.", True),
        ("<ann@contoso.com>", True),
        ("ann@notcontoso.com", False),
        ("ann@contoso.com.evil.io", False),
        ("ann@contoso.co", False),
        ("contoso.com", False),
        ("ann@", False),
        ("", False),
        (None, False),
        ("ann@contoso..com", False),
        ("Ann Smith <ann@contoso.com>", False),
        ("/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn=ann", False),
    ],
)
def test_is_internal_handles_subdomains_case_and_malformed_addresses(
    address: str | None, internal: bool
) -> None:
    assert is_internal(address, POLICY) is internal


def test_is_internal_answers_for_the_policy_asked_whatever_was_asked_before() -> None:
    """It is remembered per address and internal domains: another tenant's policy (or the
    settings changed) gets its own answer."""
    ours, theirs = POLICY, PrivacyPolicy(internal_domains=["fabrikam.com"])
    for _ in range(2):
        assert is_internal("ann@contoso.com", ours)
        assert not is_internal("ann@contoso.com", theirs)
        assert is_internal("dana@fabrikam.com", theirs)
        assert not is_internal("dana@fabrikam.com", ours)


def test_unicode_domain_matches_its_punycode_form() -> None:
    policy = PrivacyPolicy(internal_domains=["xn--mnchen-3ya.de"])
    assert is_internal("jo@München.de", policy)


def test_unreadable_address_cannot_make_an_internal_meeting_look_external() -> None:
    x500 = "/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn=bob"
    facts = meeting(REP, x500, "bob@contoso.com")
    assert skip_reason(facts, POLICY) is SkipReason.INTERNAL_ONLY


def test_meeting_without_any_readable_participant_is_not_logged() -> None:
    facts = meeting(None, "not-an-address", person("", "accepted"))
    assert skip_reason(facts, POLICY) is SkipReason.NO_EXTERNAL_ATTENDEE


def test_meeting_every_external_attendee_declined_is_not_logged() -> None:
    facts = meeting(REP, person(CUSTOMER, "declined"), person("raj@fabrikam.com", "declined"))
    assert skip_reason(facts, POLICY) is SkipReason.NO_EXTERNAL_ATTENDEE


def test_one_external_attendee_not_declining_keeps_the_meeting() -> None:
    facts = meeting(REP, person(CUSTOMER, "declined"), person("raj@fabrikam.com", "none"))
    assert skip_reason(facts, POLICY) is None


def test_meeting_every_internal_participant_declined_is_not_logged() -> None:
    facts = meeting(CUSTOMER, person(REP, "declined"), person("bob@contoso.com", "declined"))
    assert skip_reason(facts, POLICY) is SkipReason.ALL_DECLINED


def test_tentative_internal_participant_keeps_the_meeting() -> None:
    facts = meeting(
        CUSTOMER, person(REP, "declined"), person("bob@contoso.com", "tentativelyAccepted")
    )
    assert skip_reason(facts, POLICY) is None


def test_internal_organizer_keeps_the_meeting_when_internal_attendees_declined() -> None:
    facts = meeting(REP, CUSTOMER, person("bob@contoso.com", "declined"))
    assert skip_reason(facts, POLICY) is None


def test_meeting_without_a_listed_internal_participant_is_not_called_declined() -> None:
    facts = meeting(CUSTOMER, "raj@fabrikam.com")
    assert skip_reason(facts, POLICY) is None


def test_all_day_event_is_logged_only_when_enabled() -> None:
    facts = meeting(REP, CUSTOMER, is_all_day=True)
    enabled = PrivacyPolicy(internal_domains=["contoso.com"], log_all_day=True)
    assert (skip_reason(facts, POLICY), skip_reason(facts, enabled)) == (SkipReason.ALL_DAY, None)


@pytest.mark.parametrize(
    "facts",
    [
        meeting(REP, "CEO@Contoso.com", CUSTOMER),
        meeting("ceo@contoso.com", CUSTOMER),
        meeting(REP, CUSTOMER, person(" ceo@contoso.com", "accepted", "resource")),
    ],
    ids=["attendee", "organizer", "listed-as-resource"],
)
def test_meeting_with_an_excluded_address_is_not_logged(facts: MeetingFacts) -> None:
    policy = POLICY.model_copy(update={"excluded_addresses": frozenset({"ceo@contoso.com"})})
    assert skip_reason(facts, policy) is SkipReason.EXCLUDED_ADDRESS


@pytest.mark.parametrize("address", ["lawyer@litware.com", "Lawyer@EU.Litware.com"])
def test_meeting_with_an_excluded_domain_or_its_subdomain_is_not_logged(address: str) -> None:
    policy = PrivacyPolicy(internal_domains=["contoso.com"], excluded_domains=["litware.com"])
    assert skip_reason(meeting(REP, CUSTOMER, address), policy) is SkipReason.EXCLUDED_DOMAIN


def test_meeting_with_an_excluded_category_is_not_logged_whatever_its_case() -> None:
    policy = PrivacyPolicy(internal_domains=["contoso.com"], excluded_categories=["HR"])
    facts = meeting(REP, CUSTOMER, categories=["Blue category", " hr "])
    assert skip_reason(facts, policy) is SkipReason.EXCLUDED_CATEGORY


def test_private_is_reported_before_any_other_reason() -> None:
    policy = PrivacyPolicy(internal_domains=["contoso.com"], excluded_categories=["HR"])
    facts = meeting(REP, sensitivity="private", is_all_day=True, categories=["HR"])
    assert skip_reason(facts, policy) is SkipReason.PRIVATE


def test_exclusions_are_reported_before_all_day_and_internal_only() -> None:
    policy = PrivacyPolicy(internal_domains=["contoso.com"], excluded_categories=["HR"])
    facts = meeting(REP, is_all_day=True, categories=["HR"])
    assert skip_reason(facts, policy) is SkipReason.EXCLUDED_CATEGORY


def test_cancelled_customer_meeting_is_not_skipped() -> None:
    assert skip_reason(meeting(REP, CUSTOMER, is_cancelled=True), POLICY) is None


def test_every_skip_reason_explains_itself() -> None:
    explanations = [reason.explanation for reason in SkipReason]
    assert all(len(text) > 20 for text in explanations)
    assert len(set(explanations)) == len(explanations)


def test_participants_list_the_organizer_first_once_without_rooms() -> None:
    facts = meeting(
        "Dana@Fabrikam.com",
        person("bob@contoso.com"),
        person("dana@fabrikam.com", "organizer"),
        person("room-1@contoso.com", "accepted", "resource"),
        person("RAJ@fabrikam.com", "tentativelyAccepted"),
        person("raj@fabrikam.com", "declined"),
    )
    external = [(p.email, p.response) for p in external_participants(facts, POLICY)]
    internal = [p.email for p in internal_participants(facts, POLICY)]
    assert (external, internal) == (
        [("dana@fabrikam.com", "organizer"), ("raj@fabrikam.com", "tentativelyAccepted")],
        ["bob@contoso.com"],
    )


def test_participants_asked_again_are_the_same_whatever_the_caller_did_with_them() -> None:
    """Planning a meeting asks for its people five times: the answer is kept for that meeting
    alone, and a caller changing its list changes nothing for the next."""
    first, second = meeting(REP, CUSTOMER), meeting(REP, "raj@fabrikam.com")
    people = participants(first)
    people.clear()

    assert [p.email for p in participants(first)] == [REP, CUSTOMER]
    assert [p.email for p in participants(second)] == [REP, "raj@fabrikam.com"]
    assert [p.email for p in participants(first)] == [REP, CUSTOMER]


def test_meeting_facts_read_graph_field_names_and_keep_times_in_utc() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    facts = MeetingFacts.model_validate(
        {
            "start": "2025-03-04T16:00:00+01:00",
            "end": dt.datetime(2025, 3, 4, 17, 0, tzinfo=paris),
            "sensitivity": "Normal",
            "isAllDay": True,
            "showAs": "tentative",
            "attendees": [{"email": CUSTOMER, "response": "tentativelyAccepted"}],
        }
    )
    assert (facts.start, facts.end, facts.is_all_day, facts.show_as, facts.sensitivity) == (
        START,
        START + dt.timedelta(hours=1),
        True,
        "tentative",
        "normal",
    )


def test_meeting_facts_refuse_naive_times() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        meeting(REP, start=dt.datetime(2025, 3, 4, 15, 0))


def test_meeting_facts_refuse_an_end_before_the_start() -> None:
    with pytest.raises(ValidationError, match="cannot end before it starts"):
        meeting(REP, end=START - dt.timedelta(minutes=1))


def test_meeting_facts_require_a_sensitivity() -> None:
    with pytest.raises(ValidationError, match="sensitivity"):
        MeetingFacts(start=START, end=START)  # type: ignore[call-arg]


def test_normalize_address_drops_prefixes_brackets_and_case() -> None:
    raw = [" MAILTO:Dana@Fabrikam.com ", "<SMTP:dana@FABRIKAM.COM>", "dana@fabrikam.com."]
    assert {normalize_address(a) for a in raw} == {"dana@fabrikam.com"}


# Properties ---------------------------------------------------------------------------

LOCALS = st.sampled_from(["ann", "bob", "dana", "raj", "ceo"])
DOMAINS = st.sampled_from(["contoso.com", "eu.contoso.com", "fabrikam.com", "litware.com"])
ADDRESSES = st.builds(lambda local, domain: f"{local}@{domain}", LOCALS, DOMAINS)
ODD_CASE = st.sampled_from([str.lower, str.upper, str.title, lambda s: f"  {s} "])
ATTENDEES = st.builds(
    person,
    ADDRESSES,
    st.sampled_from(["none", "accepted", "tentativelyAccepted", "declined", "notResponded"]),
    st.sampled_from(["required", "optional", "resource"]),
)
MEETINGS = st.builds(
    lambda organizer, attendees, sensitivity, all_day, categories: meeting(
        organizer,
        *attendees,
        sensitivity=sensitivity,
        is_all_day=all_day,
        categories=categories,
    ),
    st.one_of(st.none(), ADDRESSES),
    st.lists(ATTENDEES, max_size=5),
    st.sampled_from(["normal", "personal", "private", "confidential"]),
    st.booleans(),
    st.lists(st.sampled_from(["HR", "Customer", "Blue"]), max_size=2),
)
POLICIES = st.builds(
    lambda internal, addresses, domains, categories, all_day, personal: PrivacyPolicy(
        internal_domains=internal,
        excluded_addresses=addresses,
        excluded_domains=domains,
        excluded_categories=categories,
        log_all_day=all_day,
        log_sensitivities={"normal", "personal"} if personal else {"normal"},
    ),
    st.sets(st.sampled_from(["contoso.com", "litware.com"]), min_size=1),
    st.sets(ADDRESSES, max_size=2),
    st.sets(st.sampled_from(["litware.com", "fabrikam.com"]), max_size=1),
    st.sets(st.sampled_from(["hr", "blue"]), max_size=1),
    st.booleans(),
    st.booleans(),
)


@settings(deadline=None)
@given(MEETINGS, POLICIES)
def test_private_and_confidential_meetings_are_skipped_under_every_policy(
    facts: MeetingFacts, policy: PrivacyPolicy
) -> None:
    if facts.sensitivity in {"private", "confidential"}:
        assert skip_reason(facts, policy) is SkipReason.PRIVATE


@settings(deadline=None)
@given(MEETINGS, POLICIES, st.sets(ADDRESSES, max_size=2), st.booleans())
def test_tightening_the_policy_never_lets_a_skipped_meeting_through(
    facts: MeetingFacts, policy: PrivacyPolicy, more_excluded: set[str], drop_all_day: bool
) -> None:
    tighter = policy.model_copy(
        update={
            "excluded_addresses": policy.excluded_addresses | more_excluded,
            "log_all_day": policy.log_all_day and not drop_all_day,
            "log_sensitivities": frozenset({"normal"}),
        }
    )
    if skip_reason(facts, policy) is not None:
        assert skip_reason(facts, tighter) is not None


@settings(deadline=None)
@given(MEETINGS, POLICIES, st.randoms(use_true_random=False), ODD_CASE)
def test_skip_reason_ignores_attendee_order_and_address_case(
    facts: MeetingFacts, policy: PrivacyPolicy, rng: Any, recase: Any
) -> None:
    attendees = [a.model_copy(update={"email": recase(a.email)}) for a in facts.attendees]
    rng.shuffle(attendees)
    shuffled = facts.model_copy(update={"attendees": tuple(attendees)})
    assert skip_reason(shuffled, policy) == skip_reason(facts, policy)


@settings(deadline=None)
@given(MEETINGS, POLICIES)
def test_a_logged_meeting_has_an_external_participant_who_did_not_decline(
    facts: MeetingFacts, policy: PrivacyPolicy
) -> None:
    if skip_reason(facts, policy) is None:
        external = external_participants(facts, policy)
        assert any(p.response != "declined" for p in external)
