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

Query shape: the rep's accounts are read first (`ix_deals_owner_email`), then the deals are
one indexed OR (`owner_email = ?` or `account_name IN (...)`, `ix_deals_account_status` from
migration 0016) filtered by the text, so a query touches the rep's few hundred deals, not all
of them (bench/bench_deal_search.py).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

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
    own = Deal.owner_email == rep_email
    if not accounts:
        return own
    return or_(own, Deal.account_name.in_(list(accounts)))


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


def search_deals(
    session: Session, rep: Rep, text: str, *, skip: int = 0, count: int = 25
) -> list[Deal]:
    """Open deals the rep may see matching `text` (all of them when blank), own first, then
    by account, most recently active first."""
    if not rep.active:
        return []
    accounts = rep_accounts(session, rep.email)
    query = select(Deal).where(Deal.status == "open", _visible(rep.email, accounts))
    words = text.split()
    for word in words[:5]:
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
        query = query.where(
            or_(
                func.lower(Deal.title).like(pattern, escape="\\"),
                func.lower(func.coalesce(Deal.account_name, "")).like(pattern, escape="\\"),
                func.lower(Deal.crm_id).like(pattern, escape="\\"),
                contact,
            )
        )
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


def _last_interaction(session: Session, deal: Deal) -> LastInteraction | None:
    latest = session.scalar(
        select(Interaction)
        .where(Interaction.deal_id == deal.id, Interaction.status == "held")
        .order_by(Interaction.started_at.desc(), Interaction.id.desc())
        .limit(1)
    )
    if latest is None:
        return None
    what = latest.subject or (latest.text or "")[:80] or latest.kind
    return LastInteraction(at=latest.started_at, summary=f"{latest.kind.capitalize()}: {what}")


def _next_reminder(session: Session, deal: Deal) -> NextReminder | None:
    reminders = session.scalars(
        select(Reminder).where(Reminder.deal_id == deal.id, Reminder.status.in_(ACTIVE))
    ).all()
    if not reminders:
        return None
    soonest = min(reminders, key=lambda r: (r.effective_due_at, r.id))
    return NextReminder(title=soonest.title, due_at=soonest.effective_due_at)


def deal_stamp(deal: Deal) -> str:
    """The version of what a deal card shows."""
    changed = int(deal.updated_at.timestamp()) if deal.updated_at else 0
    last = int(deal.last_interaction_at.timestamp()) if deal.last_interaction_at else 0
    return f"d{deal.id}.{deal.stage_key}.{deal.status}.{changed}.{last}"[:64]


def deal_viewer_ids(session: Session, deal: Deal, also: Sequence[str] = ()) -> list[str]:
    """Teams ids of the reps who may see the deal (its owner and reps on its account), after
    `also` (the rep who shared it), so each of them gets their own view by refresh."""
    emails: set[str] = set()
    if deal.owner_email:
        emails.add(deal.owner_email)
    if deal.account_name:
        emails.update(
            e
            for e in session.scalars(
                select(Deal.owner_email).where(
                    Deal.account_name == deal.account_name,
                    Deal.status == "open",
                    Deal.owner_email.is_not(None),
                )
            )
            if e
        )
    found = list(also)
    if emails:
        # Teams takes `8:orgid:{Entra id}` as well as `29:` ids: a rep who never opened the
        # bot's chat is listed too.
        reps = session.scalars(
            select(Rep)
            .where(Rep.email.in_(sorted(emails)), Rep.active.is_(True))
            .order_by(Rep.email)
        ).all()
        found += [f"8:orgid:{r.entra_id.lower()}" for r in reps if r.entra_id]
        rows = session.scalars(
            select(TeamsConversation.teams_user_id)
            .where(TeamsConversation.rep_email.in_([r.email for r in reps]))
            .order_by(TeamsConversation.rep_email)
        )
        found += [i for i in rows if i.startswith("29:")]
    unique = list(dict.fromkeys(found))
    return unique[:VIEWERS_MAX]


def deal_view(
    session: Session,
    deal: Deal,
    viewer: Rep | None,
    settings: Settings,
    *,
    viewer_ids: Sequence[str] = (),
) -> DealView:
    """The deal card's view, for `viewer` (their buttons work only if they may see it)."""
    pipeline = session.get(Pipeline, deal.pipeline_id)
    assert pipeline is not None, "a deal's pipeline always exists (foreign key)"
    stage = pipeline.stage(deal.stage_key)
    contact = deal.contacts[0] if deal.contacts else None
    contact_text = None
    if contact is not None:
        contact_text = f"{contact.name} ({contact.email})" if contact.name else contact.email
    owner = None
    if deal.owner_email:
        owner_rep = session.scalar(select(Rep).where(Rep.email == deal.owner_email))
        owner = (owner_rep.display_name if owner_rep else "") or deal.owner_email
    money = None
    if deal.amount is not None and deal.currency:
        money = Money(amount=deal.amount, currency=deal.currency.upper())
    status = deal.status if deal.status in ("open", "won", "lost") else "open"
    return DealView(
        deal_id=deal.crm_id,
        title=deal.title,
        account=deal.account_name or "—",
        contact=contact_text,
        owner=owner,
        stage=CardStage(id=deal.stage_key, name=stage.name if stage else deal.stage_key),
        pipeline=[CardStage(id=s.key, name=s.name) for s in pipeline.stages],
        status=status,
        amount=money,
        close_date=deal.expected_close_date,
        next_reminder=_next_reminder(session, deal),
        last_interaction=_last_interaction(session, deal),
        crm_url=crm_link(deal, settings),
        stamp=deal_stamp(deal),
        can_act=may_see(session, viewer, deal),
        viewer_ids=list(viewer_ids)[:VIEWERS_MAX],
    )


__all__ = [
    "day_deals",
    "deal_stamp",
    "deal_view",
    "deal_viewer_ids",
    "may_see",
    "rep_accounts",
    "search_deals",
]
