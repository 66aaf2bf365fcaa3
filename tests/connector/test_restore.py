"""A database restored from an older copy: what was delivered since the copy is pending again,
and the next drain must not double it in Microsoft 365 (docs/deploy.md, Backups and restore).

SQLite file copies (``sqlite3``'s backup API, as the docs say to take one); the sandbox with
``Chat.Read.All`` so a card can be looked for before it is posted again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.outbox import after_restore
from connector.store.db import get_store
from sandbox.config import ALL_ROLES
from sandbox.server import RunningSandbox, start_sandbox
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
