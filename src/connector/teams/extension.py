"""The message extension at the bot endpoint: search and share deals
(``composeExtension/query``) and unfurl pasted CRM links (``composeExtension/queryLink``).

Both answer as the rep who typed or pasted (the invoke's `from.aadObjectId`), and only with
deals that rep may see (``deal_search.may_see``): a link to anyone else's deal unfurls to
nothing, the same answer as a link to no deal at all. Result cards are Adaptive Cards 1.5
with Action.Execute buttons that work for whoever presses them, as themselves, when they may
see the deal (``connector.teams.verbs``); unfurl cards are 1.3, as Teams requires there.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from cards.actions import Activity
from cards.builders import deal_card
from cards.extensions import (
    QUERY,
    QUERY_LINK,
    Preview,
    attachment,
    parse_link,
    parse_query,
    result_response,
    text_response,
)
from cards.models import DealView
from connector.settings import Settings
from connector.store.models import Deal, Rep
from connector.teams.deal_search import deal_view, deal_views, may_see, search_deals

log = logging.getLogger(__name__)
EXTENSION_INVOKES = frozenset({QUERY, QUERY_LINK})
NOT_A_REP = (
    "DealBridge does not know you as a rep yet. Ask your admin to add your work e-mail as a rep."
)


def answer(
    session: Session, activity: Activity, rep: Rep | None, settings: Settings
) -> dict[str, Any]:
    """The invoke answer for a message-extension invoke (HTTP 200 either way)."""
    if activity.name == QUERY:
        return _search(session, activity, rep, settings)
    return _unfurl(session, activity, rep, settings)


def _sharer_ids(activity: Activity) -> list[str]:
    sender = activity.from_
    if sender is None:
        return []
    ids = [sender.id] if sender.id.startswith("29:") else []
    if sender.aad_object_id:
        ids.append(f"8:orgid:{sender.aad_object_id.lower()}")
    return ids


def preview_of(view: DealView) -> Preview:
    """The result list's line: title; account · contact; CRM id · stage."""
    subtitle = view.account if not view.contact else f"{view.account} · {view.contact}"
    return Preview(
        title=view.title[:100],
        subtitle=subtitle[:120],
        text=f"{view.deal_id} · {view.stage.name}"[:120],
    )


def _search(
    session: Session, activity: Activity, rep: Rep | None, settings: Settings
) -> dict[str, Any]:
    query = parse_query(activity.value)
    if rep is None or not rep.active:
        return text_response(NOT_A_REP)
    deals = search_deals(session, rep, query.text, skip=query.query_options.skip, count=query.count)
    views = deal_views(session, deals, rep, settings, shared_by=_sharer_ids(activity), visible=True)
    return result_response([attachment(deal_card(v), preview_of(v)) for v in views])


def _unfurl(
    session: Session, activity: Activity, rep: Rep | None, settings: Settings
) -> dict[str, Any]:
    link = parse_link(activity.value)
    deal = deal_for_link(session, link.url, settings)
    if deal is None or not may_see(session, rep, deal):
        return result_response([])  # nothing unfurls: not even that the deal exists
    view = deal_view(session, deal, rep, settings)
    return result_response([attachment(deal_card(view, unfurl=True), preview_of(view))])


@lru_cache(maxsize=8)
def _link_regex(pattern: str) -> re.Pattern[str]:
    before, after = pattern.split("{deal_id}")
    scheme_free = re.escape(before.split("://", 1)[1])
    return re.compile(
        rf"^https?://{scheme_free}(?P<deal_id>[^/?#&]+){re.escape(after)}(?:[/?#].*)?$",
        re.IGNORECASE,
    )


def deal_id_in_link(url: str, pattern: str | None) -> str | None:
    """The CRM id in a pasted link to a deal's page (DEALBRIDGE_CRM_LINK_PATTERN)."""
    if not pattern:
        return None
    found = _link_regex(pattern).match(url.strip())
    return unquote(found.group("deal_id")) if found else None


def deal_for_link(session: Session, url: str, settings: Settings) -> Deal | None:
    """The deal a pasted link points at: by the pattern's CRM id, else a deal whose own
    `crm_url` is that link; only links on the pattern's host count."""
    pattern = settings.crm_link_pattern
    if not pattern:
        return None
    host = (urlsplit(pattern).hostname or "").lower()
    if (urlsplit(url.strip()).hostname or "").lower() != host:
        return None
    deal_id = deal_id_in_link(url, pattern)
    if deal_id:
        found = session.scalar(select(Deal).where(Deal.crm_id == deal_id))
        if found is not None:
            return found
    return session.scalar(select(Deal).where(Deal.crm_url == url.strip()).limit(1))
