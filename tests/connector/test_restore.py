"""A database restored from an older copy: what was delivered since the copy is pending again,
and the next drain must not double it in Microsoft 365 (docs/deploy.md, Backups and restore).

SQLite file copies (``sqlite3``'s backup API, as the docs say to take one); the sandbox with
``Chat.Read.All`` so a card can be looked for before it is posted again.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.api.schemas import DealIn
from connector.deals.changes import upsert_deal
from connector.outbox import after_restore, drain
from connector.store.db import get_store
from connector.store.models import OutboxItem
from sandbox.config import ALL_ROLES
from sandbox.server import RunningSandbox, start_sandbox
from tests.connector.conftest import Tenant
from tests.connector.test_bot_world import TeamsWorld, world

__all__ = ["world"]


@pytest.fixture(scope="module")
def teams_sandbox() -> Iterator[RunningSandbox]:
    """The world's sandbox, with the permission to read the bot's chats."""
    with start_sandbox(roles=(*ALL_ROLES, "Chat.Read.All")) as running:
        yield running


def _copy(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as live, sqlite3.connect(target) as copy:
        live.backup(copy)


def _cards(world: TeamsWorld) -> int:
    return sum(1 for activity in world.chat() if activity.get("attachments"))


@pytest.mark.sqlite_only("restores a SQLite file copy")
def test_a_restored_older_copy_delivers_again_without_doubles(
    world: TeamsWorld, tmp_path: Path
) -> None:
    world.install()
    world.deal(stage="negotiation")
    world.due_reminder()
    database = Path(get_store(world.app).engine.url.database or "")
    backup = tmp_path / "backup.db"
    _copy(database, backup)  # the hourly backup: the card is still to be posted

    world.drain()
    assert _cards(world) == 1

    # the hour is lost: the older copy comes back, with the card's delivery pending again
    get_store(world.app).dispose()
    _copy(backup, database)
    with get_store(world.app).session() as session:
        marked = after_restore(session)
    assert marked >= 1

    world.drain()
    world.drain()
    assert _cards(world) == 1  # found in the chat, not posted again


@pytest.mark.sqlite_only("restores a SQLite file copy")
def test_a_restored_older_copy_puts_no_second_event_on_the_calendar(
    m365: Tenant, tmp_path: Path
) -> None:
    rep = m365.add_rep("ann", "Ann Lee")
    now = dt.datetime.now(dt.UTC)
    with get_store(m365.app).session() as session:
        body = DealIn.model_validate(
            {
                "title": "Deal 1",
                "pipeline": "classic5",
                "stage": "negotiation",
                "owner": rep,
                "account": {"name": "Customer 1", "domains": ["customer1.example"]},
            }
        )
        upsert_deal(
            session,
            "OPP-1",
            body,
            actor="restore",
            now=now - dt.timedelta(days=30),
            default_pipeline="classic5",
        )
        for item in session.scalars(select(OutboxItem)):
            item.next_attempt_at = now
    database = Path(get_store(m365.app).engine.url.database or "")
    backup = tmp_path / "backup.db"
    _copy(database, backup)

    drain(m365.app)
    before = _reminder_events(m365, rep)
    assert before
    assert all(n == 1 for n in before.values())

    get_store(m365.app).dispose()
    _copy(backup, database)
    with get_store(m365.app).session() as session:
        assert after_restore(session) >= 1
    drain(m365.app)
    drain(m365.app)
    assert _reminder_events(m365, rep) == before


def _reminder_events(m365: Tenant, rep: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for event in m365.control("GET", f"/users/{rep}/events")["value"]:
        for prop in event.get("singleValueExtendedProperties") or []:
            if "DealBridgeReminder" in prop["id"]:
                found[prop["value"]] += 1
    return found
