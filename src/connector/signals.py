"""Domain signals: what happened, told to whoever subscribed (blinker, as Flask's own signals).

A sender does not know its receivers; each capability connects its receivers in its own
``init_app``. Every signal is sent inside the transaction of the change, with the session as
the sender, so a receiver writes in the same transaction (or fails it). Signals are
module-global while a process may hold many apps (the tests build one per test): a receiver
acts for the app the session belongs to (``settings_of``) and raises when it cannot tell.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Protocol

from blinker import Namespace
from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from connector.settings import SETTINGS_EXTENSION, Settings

if TYPE_CHECKING:
    from connector.store.types import MeetingDetails

SETTINGS_INFO = "dealbridge.settings"  # session.info: the settings of the app owning the store
_signals = Namespace()

deal_changed = _signals.signal(
    "deal-changed",
    doc="""A deal changed (upsert, stage move, interaction, meeting) and was flushed.

    Sender: the session (``connector.deals``, the meeting sync, the API's bulk upsert).
    Keyword arguments: ``deal`` (``Deal``), ``now`` (aware ``datetime``).
    Receiver: ``stage_reminders`` re-plans the deal's reminders.
    """,
)

deals_created = _signals.signal(
    "deals-created",
    doc="""Deals were created together, written as rows (the API's bulk upsert).

    Sender: the session (``connector.deals.changes.announce_created``).
    Keyword arguments: ``deals`` (a sequence of ``NewDeal``), ``now`` (aware ``datetime``).
    Receiver: ``stage_reminders`` plans their first reminders.
    """,
)

reminders_changed = _signals.signal(
    "reminders-changed",
    doc="""Stored reminders changed state (re-planned, snoozed, done, cancelled).

    Sender: the session (``connector.stage_reminders``), not sent for new reminders. A change
    made alone is told at once; the changes of a re-plan of many deals
    (``deferred_deliveries``, e.g. a meeting round) are told together at its end, each
    reminder once, as it then is.
    Keyword arguments: ``reminders`` (a sequence of ``Reminder``), ``now`` (aware
    ``datetime``).
    Receiver: ``teams`` refreshes the cards already sent for them (one lookup for them all).
    """,
)


class LoggedMeeting(Protocol):
    """A meeting interaction as the meeting signals give it: an ``Interaction``, or, for one
    a sync round has just written as a row, a plain view of that row (``NewMeeting``). Read
    it; to change it, load the row (``session.get(Interaction, interaction.id)``)."""

    @property
    def id(self) -> int: ...
    @property
    def deal_id(self) -> int | None: ...
    @property
    def status(self) -> str: ...
    @property
    def started_at(self) -> dt.datetime: ...
    @property
    def ended_at(self) -> dt.datetime | None: ...
    @property
    def details(self) -> MeetingDetails | None: ...


meeting_logged = _signals.signal(
    "meeting-logged",
    doc="""A meeting was newly logged on a deal (created, or moved to this deal).

    Sender: the session (``connector.meetings.sync``).
    Keyword arguments: ``interaction`` (a ``LoggedMeeting``), ``reps`` (list of rep emails to
    tell: the deal's owner).
    Receiver: ``teams`` queues a "meeting logged" card for each rep.
    """,
)

meeting_needs_choice = _signals.signal(
    "meeting-needs-choice",
    doc="""A meeting matched several deals (or none clearly) and needs a rep's choice.

    Sender: the session (``connector.meetings.sync``).
    Keyword arguments: ``interaction`` (a ``LoggedMeeting``), ``reps`` (list of rep emails to
    ask: the first internal participant).
    Receiver: ``teams`` queues a "pick the deal" card for each rep.
    """,
)

meeting_deal_chosen = _signals.signal(
    "meeting-deal-chosen",
    doc="""A person settled a meeting's deal, or moved a meeting to another deal.

    Sender: the session (``connector.meetings.interactions.choose_deal``).
    Keyword arguments: ``interaction`` (``Interaction``), ``deal`` (the chosen deal's CRM
    id), ``by`` (who chose), ``now`` (aware ``datetime``).
    Receiver: ``crm`` queues an ``interaction.updated`` webhook.
    """,
)

rep_changed = _signals.signal(
    "rep-changed",
    doc="""A rep was deactivated or reactivated (``PUT /api/v1/reps/{email}`` ``active``), or
    is about to be deleted (``DELETE``: deactivated first, in the same transaction).

    Sender: the session (``connector.deals.reps.set_active``).
    Keyword arguments: ``rep`` (``Rep``, already changed), ``active`` (bool), ``deleted``
    (bool), ``now`` (aware ``datetime``).
    Receivers: ``stage_reminders`` withdraws her open reminders (or plans them again);
    ``meetings`` deletes her Graph subscription and mailbox state (or subscribes again);
    ``crm`` queues ``rep.deactivated`` with the open deals that need a new owner.
    """,
)

# ---- Teams attendance and the brief before a meeting (connector.meetings.attendance, .briefs)

meeting_attended = _signals.signal(
    "meeting-attended",
    doc="""Teams' attendance of a logged meeting was read: held, no-show, or not verified.

    Sender: the session (``connector.meetings.attendance``).
    Keyword arguments: ``interaction`` (``Interaction``, its ``details.attendance`` set),
    ``result`` (``held``, ``no_show`` or ``not_verified``), ``reps`` (emails to tell).
    Receiver: ``teams`` queues the after-the-meeting card, or the no-show card.
    """,
)

meeting_brief_due = _signals.signal(
    "meeting-brief-due",
    doc="""A rep's brief before a customer meeting is due (once per occurrence and start).

    Sender: the session (``connector.meetings.briefs``).
    Keyword arguments: ``interaction`` (``Interaction``), ``rep`` (email), ``start`` (aware
    ``datetime``, the start the brief is for), ``due`` (aware ``datetime``).
    Receiver: ``teams`` queues the brief (activity feed, or a card in the chat).
    """,
)


def settings_of(session: Session) -> Settings:
    """The settings of the app this session's store belongs to; loud when there is none.

    The store's sessions carry them (``create_app`` puts them in ``session.info``), so a
    job or test without an app context still acts for the right app."""
    settings: Settings | None = session.info.get(SETTINGS_INFO)
    if settings is not None:
        return settings
    if has_app_context():
        found: Settings = current_app.extensions[SETTINGS_EXTENSION]
        return found
    raise RuntimeError(
        "a domain signal was sent from a session that belongs to no app: open it from the "
        "app's store (get_store(app).session()) or inside app.app_context()"
    )
