"""Which deal a meeting belongs to, and why (issue 4, "Matching").

Pure functions over plain values: the sync asks :func:`candidate_keys` what to look up,
loads those deals from the store as :class:`DealCandidate`, and calls :func:`match_meeting`.

The rules, in order:

1. **contact**: an external participant's address is a contact of open deals → those deals;
   else
2. **domain**: an external participant's domain is one of open deals' account domains →
   those deals. Consumer mail domains (``consumer_domains.txt``) never match this way, even
   when a deal lists one. Domains match exactly (no subdomains: without the public suffix
   list, ``acme.co.uk`` cannot be told from ``co.uk``).
3. **evidence**: a deal owned by an internal participant who did not decline is better
   evidence than one that is not. One best deal → matched; two or more open deals equally
   good on this evidence (same rule, same ownership) → **ambiguous**: the meeting needs a
   choice and the rep is asked (the pick-a-deal card).

Recency is not evidence: which deal moved last says nothing about what this meeting was about,
so it never picks a deal (it used to: "most recently active" took the meeting, issue 11). It
only orders the list: best evidence first, then the most recently active
(``last_activity_at``, else ``updated_at``), then by deal id.

Only open deals are candidates: a won or lost deal takes no new meetings by itself (a rep can
still move an interaction to it). When a deal is found through several addresses, the
alphabetically first is named. ``docs/admin-guide.md`` ("How a meeting finds its deal") says
the same for admins.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from enum import StrEnum
from importlib import resources
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from connector.meetings.privacy import (
    MeetingFacts,
    PrivacyPolicy,
    domain_within,
    external_participants,
    internal_participants,
    normalize_address,
    normalize_domain,
)

OPEN = "open"


@functools.cache
def consumer_domains() -> frozenset[str]:
    """The shipped list of consumer mail domains (read once)."""
    text = resources.files("connector.meetings").joinpath("consumer_domains.txt").read_text("utf-8")
    lines = (line.partition("#")[0].strip() for line in text.splitlines())
    return frozenset(d for d in map(normalize_domain, lines) if d is not None)


def is_consumer_domain(domain: str | None) -> bool:
    """True for a consumer mail domain such as gmail.com, or a subdomain of one."""
    normalized = normalize_domain(domain)
    return normalized is not None and domain_within(normalized, consumer_domains())


class MatchRule(StrEnum):
    CONTACT = "contact"
    DOMAIN = "domain"


class MatchStatus(StrEnum):
    MATCHED = "matched"
    NEEDS_CHOICE = "needs_choice"
    NO_MATCH = "no_match"


def _addresses(values: Any) -> frozenset[str]:
    # CRM data is messy: an unreadable contact address can never equal an attendee's.
    return frozenset(a for a in map(normalize_address, values or ()) if a is not None)


def _domain_set(values: Any) -> frozenset[str]:
    return frozenset(d for d in map(normalize_domain, values or ()) if d is not None)


class DealCandidate(BaseModel):
    """A deal as the matcher sees it, loaded from the store by the sync."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deal_id: str = Field(min_length=1)
    """The CRM id of the deal."""
    owner_email: str | None = None
    last_activity_at: AwareDatetime | None = None
    updated_at: AwareDatetime
    contact_emails: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    """The account's domains."""
    status: str = OPEN
    """``open``, ``won`` or ``lost``: only open deals are matched."""

    @field_validator("owner_email")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        return normalize_address(value)

    @field_validator("contact_emails", mode="before")
    @classmethod
    def _contacts(cls, value: Any) -> frozenset[str]:
        return _addresses(value)

    @field_validator("domains", mode="before")
    @classmethod
    def _domains(cls, value: Any) -> frozenset[str]:
        return _domain_set(value)

    @field_validator("status")
    @classmethod
    def _status(cls, value: str) -> str:
        return value.strip().lower()

    @property
    def active_at(self) -> dt.datetime:
        """When the deal last moved: its last activity, else its last update (UTC)."""
        moment = self.last_activity_at or self.updated_at
        return moment.astimezone(dt.UTC)


class CandidateReason(BaseModel):
    """One deal a rule found, and what ranked it."""

    model_config = ConfigDict(frozen=True)

    deal_id: str
    rule: MatchRule
    address: str
    """The attendee address that found the deal (for the domain rule, its domain matched)."""
    owned_by_participant: bool
    active_at: AwareDatetime

    @property
    def rank(self) -> tuple[bool]:
        """The evidence: larger is better; equal ranks are equally good (a choice)."""
        return (self.owned_by_participant,)


class MatchResult(BaseModel):
    """The outcome of matching one meeting; ``explain`` says it in words."""

    model_config = ConfigDict(frozen=True)

    status: MatchStatus
    deal_id: str | None = None
    """The matched deal; None unless status is matched."""
    rule: MatchRule | None = None
    """The rule that found the candidates; None for no_match."""
    address: str | None = None
    """The attendee address behind the match; None unless status is matched."""
    candidates: tuple[CandidateReason, ...] = ()
    """Every deal the rule found: best evidence first, then most recently active, then id."""
    consumer_domains_ignored: tuple[str, ...] = ()
    """External domains not used for the domain rule because they are consumer mail."""

    @property
    def choices(self) -> tuple[CandidateReason, ...]:
        """The equally best candidates: the deals a rep picks from when a choice is needed."""
        if not self.candidates:
            return ()
        best = self.candidates[0].rank
        return tuple(c for c in self.candidates if c.rank == best)


def candidate_keys(meeting: MeetingFacts, policy: PrivacyPolicy) -> tuple[set[str], set[str]]:
    """What to look up in the store: external participants' addresses, and their domains.

    Consumer mail domains are left out of the domains: they never match a deal.
    """
    emails = {p.email for p in external_participants(meeting, policy)}
    domains = {a.rpartition("@")[2] for a in emails}
    return emails, {d for d in domains if not is_consumer_domain(d)}


def _found_by(
    candidates: Iterable[DealCandidate], keys: dict[str, set[str]], field: str
) -> dict[str, tuple[DealCandidate, str]]:
    """Open deals whose ``field`` shares a key with the meeting → (deal, first address)."""
    found: dict[str, tuple[DealCandidate, str]] = {}
    for deal in candidates:
        if deal.status != OPEN:
            continue
        values: frozenset[str] = getattr(deal, field)
        addresses = sorted(a for key in values & keys.keys() for a in keys[key])
        if addresses:
            found[deal.deal_id] = (deal, addresses[0])
    return found


def _unique(candidates: Iterable[DealCandidate]) -> list[DealCandidate]:
    by_id: dict[str, DealCandidate] = {}
    for deal in candidates:
        known = by_id.setdefault(deal.deal_id, deal)
        if known != deal:
            raise ValueError(f"deal {deal.deal_id!r} was given twice with different data")
    return list(by_id.values())


def match_meeting(
    meeting: MeetingFacts, candidates: Iterable[DealCandidate], policy: PrivacyPolicy
) -> MatchResult:
    """The deal this meeting belongs to, by the rules in this module's docstring.

    ``candidates`` may hold more deals than match (the result only names deals that a rule
    found among them); the same deal given twice must carry the same data. The privacy rules
    are not applied here: call :func:`connector.meetings.privacy.skip_reason` first.
    """
    deals = _unique(candidates)
    external = [p.email for p in external_participants(meeting, policy)]
    hosts: dict[str, set[str]] = {}
    for address in external:
        hosts.setdefault(address.rpartition("@")[2], set()).add(address)
    ignored = tuple(sorted(d for d in hosts if is_consumer_domain(d)))
    by_domain = {d: a for d, a in hosts.items() if d not in ignored}

    rule = MatchRule.CONTACT
    found = _found_by(deals, {a: {a} for a in external}, "contact_emails")
    if not found:
        rule = MatchRule.DOMAIN
        found = _found_by(deals, by_domain, "domains")
    if not found:
        return MatchResult(status=MatchStatus.NO_MATCH, consumer_domains_ignored=ignored)

    owners = {p.email for p in internal_participants(meeting, policy) if p.response != "declined"}
    reasons = [
        CandidateReason(
            deal_id=deal.deal_id,
            rule=rule,
            address=address,
            owned_by_participant=deal.owner_email in owners,
            active_at=deal.active_at,
        )
        for deal, address in found.values()
    ]
    ranked = tuple(sorted(reasons, key=_rank_key))
    result = MatchResult(
        status=MatchStatus.NEEDS_CHOICE,
        rule=rule,
        candidates=ranked,
        consumer_domains_ignored=ignored,
    )
    if len(result.choices) > 1:
        return result
    winner = ranked[0]
    return result.model_copy(
        update={
            "status": MatchStatus.MATCHED,
            "deal_id": winner.deal_id,
            "address": winner.address,
        }
    )


def _rank_key(reason: CandidateReason) -> tuple[bool, float, str]:
    (owned,) = reason.rank
    return (not owned, -reason.active_at.timestamp(), reason.deal_id)


def _by(reason: CandidateReason) -> str:
    if reason.rule is MatchRule.DOMAIN:
        return f"by domain {reason.address.rpartition('@')[2]} ({reason.address})"
    return f"by contact {reason.address}"


def explain(result: MatchResult) -> str:
    """One sentence a rep can read: what matched, on which address, and why this deal."""
    if result.status is MatchStatus.NO_MATCH:
        text = "no open deal has an external participant as a contact or their domain"
        if result.consumer_domains_ignored:
            ignored = ", ".join(result.consumer_domains_ignored)
            text += f"; consumer mail domains are never matched ({ignored})"
        return text
    best = result.candidates[0]
    if result.status is MatchStatus.NEEDS_CHOICE:
        names = ", ".join(f"{c.deal_id} {_by(c)}" for c in result.choices)
        owned = (
            "all owned by a participant"
            if best.owned_by_participant
            else "none owned by a participant"
        )
        return f"needs a choice between {names}: equally good ({owned})"
    why: list[str] = []
    if best.owned_by_participant:
        why.append("owned by a participant")
    if len(result.candidates) == 1:
        why.append("the only candidate")
    return f"matched deal {best.deal_id} {_by(best)}; " + ", ".join(why)
