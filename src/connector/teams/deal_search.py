"""Which deals a rep may see, finding them by text, and the deal card's view.

**May see.** A rep may see a deal when they own it, or when they own another *open* deal on
the same account (the exact account name the CRM sends): reps working one customer share its
deals. Nobody else: not a colleague on another account, not an inactive rep, not someone
DealBridge does not know as a rep. Search (message extension, `deal <text>`), link unfurling
and the deal card's buttons all ask `may_see`; a deal one may not see is never described,
not even as "exists".

**Search.** Open deals the rep may see whose title, account, CRM id or a contact's name or
e-mail contains the text (case-insensitive); the rep's own first, then those shared by
account, each group most recently active first (last interaction, else last change). No text:
the same order, so the rep's most recently active deals.

Query shape: the rep's accounts are read first (`ix_deals_owner_status`, covering), then the
deals are the union of two indexed lookups (`owner_email = ?`, `account_name IN (...)` with
`ix_deals_account_status`; both from migration 0016) filtered by the text, so a query
touches the rep's few hundred deals, not the 9,000 open ones (bench/bench_deal_search.py).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select, union
from sqlalchemy.orm import Session, lazyload

from cards.models import DealView, LastInteraction, Money, NextReminder
from cards.models import Stage as CardStage
from connector.settings import Settings
from connector.stage_reminders.replan import ACTIVE
from connector.store.models import (
    Deal,
    DealContact,
    Interaction,
    Pipeline,
    Reminder,
    Rep,
    TeamsConversation,
)
from connector.teams.views import crm_link

VIEWERS_MAX = 60
"""Teams refreshes a card by itself for at most 60 listed users."""


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def rep_accounts(session: Session, rep_email: str) -> list[str]:
    """The accounts of the rep's open deals."""
    return list(
        session.scalars(
            select(Deal.account_name)
            .where(
                Deal.owner_email == rep_email,
                Deal.status == "open",
                Deal.account_name.is_not(None),
            )
            .distinct()
        )
    )


def _visible(rep_email: str, accounts: Sequence[str]) -> ColumnElement[bool]:
    """Open deals the rep owns or on the rep's accounts, as a union of two indexed lookups
    (`ix_deals_owner_status`, `ix_deals_account_status`): given an OR of the two beside
    `status`, SQLite walks `ix_deals_status` over every open deal."""
    own = select(Deal.id).where(Deal.owner_email == rep_email, Deal.status == "open")
    if not accounts:
        return Deal.id.in_(own)
    by_account = select(Deal.id).where(Deal.account_name.in_(list(accounts)), Deal.status == "open")
    return Deal.id.in_(union(own, by_account))


def may_see(session: Session, rep: Rep | None, deal: Deal) -> bool:
    """The rep owns the deal, or owns another open deal on the same account."""
    if rep is None or not rep.active:
        return False
    if deal.owner_email == rep.email:
        return True
    if not deal.account_name:
        return False
    other = session.scalar(
        select(Deal.id)
        .where(
            Deal.owner_email == rep.email,
            Deal.status == "open",
            Deal.account_name == deal.account_name,
            Deal.id != deal.id,
        )
        .limit(1)
    )
    return other is not None


def text_matches(text: str) -> list[ColumnElement[bool]]:
    """One condition a word, for the first five words of `text`: the deal's title, account,
    CRM id or a contact's name or e-mail contains it (case-insensitive)."""
    conditions: list[ColumnElement[bool]] = []
    for word in text.split()[:5]:
        pattern = _like(word)
        contact = exists(
            select(DealContact.id).where(
                DealContact.deal_id == Deal.id,
                or_(
                    func.lower(DealContact.email).like(pattern, escape="\\"),
                    func.lower(func.coalesce(DealContact.name, "")).like(pattern, escape="\\"),
                ),
            )
        )
        conditions.append(
            or_(
                func.lower(Deal.title).like(pattern, escape="\\"),
                func.lower(func.coalesce(Deal.account_name, "")).like(pattern, escape="\\"),
                func.lower(Deal.crm_id).like(pattern, escape="\\"),
                contact,
            )
        )
    return conditions


def search_deals(
    session: Session, rep: Rep, text: str, *, skip: int = 0, count: int = 25
) -> list[Deal]:
    """Open deals the rep may see matching `text` (all of them when blank), own first, then
    by account, most recently active first."""
    if not rep.active:
        return []
    accounts = rep_accounts(session, rep.email)
    query = (
        select(Deal)
        .where(_visible(rep.email, accounts))
        .options(lazyload(Deal.domains))  # the cards show no domains
    )
    for condition in text_matches(text):
        query = query.where(condition)
    own_first = case((Deal.owner_email == rep.email, 0), else_=1)
    query = query.order_by(
        own_first,
        Deal.last_interaction_at.desc().nulls_last(),
        Deal.updated_at.desc(),
        Deal.id.desc(),
    )
    return list(session.scalars(query.offset(skip).limit(count)))


def day_deals(
    session: Session, rep: Rep, now: dt.datetime, *, count: int = 10
) -> tuple[list[Deal], bool]:
    """`my day`: the rep's open deals with a reminder due by the end of their day (soonest
    first); when none, their most recently active deals. The flag says which it is."""
    try:
        zone = zoneinfo.ZoneInfo(rep.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    local = now.astimezone(zone)
    end = (local + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    due = func.min(
        case(
            (
                and_(Reminder.status == "snoozed", Reminder.snoozed_until.is_not(None)),
                Reminder.snoozed_until,
            ),
            else_=Reminder.due_at,
        )
    )
    rows = session.execute(
        select(Deal.id, due.label("due"))
        .join(Reminder, Reminder.deal_id == Deal.id)
        .where(
            Deal.owner_email == rep.email,
            Deal.status == "open",
            Reminder.status.in_(ACTIVE),
            Reminder.rep_email == rep.email,
        )
        .group_by(Deal.id)
        .having(due < end.astimezone(dt.UTC))
        .order_by(due, Deal.id)
        .limit(count)
    ).all()
    if rows:
        deals = {
            d.id: d for d in session.scalars(select(Deal).where(Deal.id.in_([r[0] for r in rows])))
        }
        return [deals[r[0]] for r in rows if r[0] in deals], True
    return search_deals(session, rep, "", count=min(count, 5)), False


# --- the deal card's view ----------------------------------------------------------------
# Built for many deals at once (a search answers 25): a handful of queries for the lot,
# not a handful per deal (bench/bench_deal_search.py).


def _last_interactions(session: Session, deal_ids: list[int]) -> dict[int, LastInteraction]:
    latest = (
        select(Interaction.deal_id, func.max(Interaction.started_at).label("at"))
        .where(Interaction.deal_id.in_(deal_ids), Interaction.status == "held")
        .group_by(Interaction.deal_id)
        .subquery()
    )
    rows = session.scalars(
        select(Interaction)
        .join(
            latest,
            and_(Interaction.deal_id == latest.c.deal_id, Interaction.started_at == latest.c.at),
        )
        .where(Interaction.status == "held")
        .order_by(Interaction.id)
    ).all()
    found: dict[int, LastInteraction] = {}
    for row in rows:
        if row.deal_id is None:
            continue
        what = row.subject or (row.text or "")[:80] or row.kind
        found[row.deal_id] = LastInteraction(
            at=row.started_at, summary=f"{row.kind.capitalize()}: {what}"
        )
    return found


def _next_reminders(session: Session, deal_ids: list[int]) -> dict[int, NextReminder]:
    reminders = session.scalars(
        select(Reminder).where(Reminder.deal_id.in_(deal_ids), Reminder.status.in_(ACTIVE))
    ).all()
    found: dict[int, Reminder] = {}
    for reminder in reminders:
        best = found.get(reminder.deal_id)
        if best is None or (reminder.effective_due_at, reminder.id) < (
            best.effective_due_at,
            best.id,
        ):
            found[reminder.deal_id] = reminder
    return {k: NextReminder(title=r.title, due_at=r.effective_due_at) for k, r in found.items()}


def deal_stamp(deal: Deal) -> str:
    """The version of what a deal card shows."""
    changed = int(deal.updated_at.timestamp()) if deal.updated_at else 0
    last = int(deal.last_interaction_at.timestamp()) if deal.last_interaction_at else 0
    return f"d{deal.id}.{deal.stage_key}.{deal.status}.{changed}.{last}"[:64]


def _account_reps(session: Session, deals: Sequence[Deal]) -> dict[str, set[str]]:
    """Each account of `deals` → the owners of its open deals."""
    accounts = sorted({d.account_name for d in deals if d.account_name})
    found: dict[str, set[str]] = {}
    if accounts:
        rows = session.execute(
            select(Deal.account_name, Deal.owner_email)
            .where(
                Deal.account_name.in_(accounts),
                Deal.status == "open",
                Deal.owner_email.is_not(None),
            )
            .distinct()
        ).all()
        for account, owner in rows:
            if account and owner:
                found.setdefault(account, set()).add(owner)
    return found


def _teams_ids(session: Session, reps: Sequence[Rep]) -> dict[str, list[str]]:
    """Each rep's Teams ids: `8:orgid:{Entra id}` (Teams takes it, so a rep who never opened
    the bot's chat is listed too) and their `29:` id when the bot knows it."""
    found: dict[str, list[str]] = {
        r.email: [f"8:orgid:{r.entra_id.lower()}"] if r.entra_id else [] for r in reps
    }
    if reps:
        rows = session.execute(
            select(TeamsConversation.rep_email, TeamsConversation.teams_user_id).where(
                TeamsConversation.rep_email.in_([r.email for r in reps])
            )
        ).all()
        for email, teams_id in rows:
            if email in found and teams_id.startswith("29:"):
                found[email].append(teams_id)
    return found


def deal_views(
    session: Session,
    deals: Sequence[Deal],
    viewer: Rep | None,
    settings: Settings,
    *,
    shared_by: Sequence[str] = (),
    visible: bool = False,
) -> list[DealView]:
    """The deal cards' views, for `viewer` (their buttons work only if they may see the
    deal; `visible` says the caller already knows they may). Each card refreshes itself for
    `shared_by` (the sharer's ids) and the reps who may see the deal (owner and account)."""
    if not deals:
        return []
    ids = [d.id for d in deals]
    last = _last_interactions(session, ids)
    upcoming = _next_reminders(session, ids)
    by_account = _account_reps(session, deals)
    emails = {d.owner_email for d in deals if d.owner_email}
    for owners in by_account.values():
        emails |= owners
    reps = session.scalars(select(Rep).where(Rep.email.in_(sorted(emails)))).all()
    rep_by_email = {r.email: r for r in reps}
    teams_ids = _teams_ids(session, [r for r in reps if r.active])
    views = []
    for deal in deals:
        pipeline = session.get(Pipeline, deal.pipeline_id)
        assert pipeline is not None, "a deal's pipeline always exists (foreign key)"
        stage = pipeline.stage(deal.stage_key)
        contact = deal.contacts[0] if deal.contacts else None
        contact_text = None
        if contact is not None:
            contact_text = f"{contact.name} ({contact.email})" if contact.name else contact.email
        owner = None
        if deal.owner_email:
            owner_rep = rep_by_email.get(deal.owner_email)
            owner = (owner_rep.display_name if owner_rep else "") or deal.owner_email
        money = None
        if deal.amount is not None and deal.currency:
            money = Money(amount=deal.amount, currency=deal.currency.upper())
        who = {deal.owner_email} if deal.owner_email else set()
        who |= by_account.get(deal.account_name or "", set())
        viewer_ids = list(shared_by)
        for email in sorted(who):
            viewer_ids += teams_ids.get(email, [])
        can_act = visible or may_see(session, viewer, deal)
        views.append(
            DealView(
                deal_id=deal.crm_id,
                title=deal.title,
                account=deal.account_name or "—",
                contact=contact_text,
                owner=owner,
                stage=CardStage(id=deal.stage_key, name=stage.name if stage else deal.stage_key),
                pipeline=[CardStage(id=s.key, name=s.name) for s in pipeline.stages],
                status=deal.status if deal.status in ("won", "lost") else "open",
                amount=money,
                close_date=deal.expected_close_date,
                next_reminder=upcoming.get(deal.id),
                last_interaction=last.get(deal.id),
                crm_url=crm_link(deal, settings),
                stamp=deal_stamp(deal),
                can_act=can_act,
                viewer_ids=list(dict.fromkeys(viewer_ids))[:VIEWERS_MAX],
            )
        )
    return views


def deal_view(
    session: Session,
    deal: Deal,
    viewer: Rep | None,
    settings: Settings,
    *,
    shared_by: Sequence[str] = (),
) -> DealView:
    """One deal card's view, for `viewer`."""
    return deal_views(session, [deal], viewer, settings, shared_by=shared_by)[0]


__all__ = [
    "day_deals",
    "deal_stamp",
    "deal_view",
    "deal_views",
    "may_see",
    "rep_accounts",
    "search_deals",
]
