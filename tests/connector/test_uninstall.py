"""`dealbridge uninstall`: a dry run lists DealBridge's reminder events and subscriptions and
changes nothing; the real run removes them from the tenant (the sandbox, over real Graph)."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select, update

from connector.admin.cli import cli
from connector.admin.uninstall import uninstall
from connector.meetings.notifications import ensure_subscriptions
from connector.outbox import drain
from connector.store.db import get_store
from connector.store.models import Mailbox, OutboxItem, Reminder
from tests.connector.conftest import Tenant
from tests.connector.samples import deal_body


def _state(m365: Tenant) -> dict[str, object]:
    answer = requests.get(f"{m365.sandbox.base_url}/_sandbox/state", timeout=30)
    answer.raise_for_status()
    state: dict[str, object] = answer.json()
    return state


def _events(m365: Tenant, rep: str) -> int:
    counts = _state(m365)["eventsByMailbox"]
    assert isinstance(counts, dict)
    return int(counts.get(rep, 0))


def test_uninstall_dry_run_then_for_real(m365: Tenant, capsys: pytest.CaptureFixture[str]) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    from connector.api.keys import create_key

    with get_store(m365.app).session() as session:
        key = create_key(session, "t", "write")
    body = deal_body(owner=ann, stage="negotiation")
    answer = m365.app.test_client().put(
        "/api/v1/deals/OPP-1", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 201
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with get_store(m365.app).session() as session:
        session.execute(update(OutboxItem).values(next_attempt_at=past))
    drain(m365.app)
    assert ensure_subscriptions(m365.app) == {ann: "created"}
    events = _events(m365, ann)
    assert events > 0
    assert len(_state(m365)["subscriptions"]) == 1  # type: ignore[arg-type]

    uninstall(m365.app, dry_run=True)
    said = capsys.readouterr().out
    assert f"would remove {events} reminder events, 1 subscriptions" in said
    assert _events(m365, ann) == events
    assert len(_state(m365)["subscriptions"]) == 1  # type: ignore[arg-type]

    uninstall(m365.app, dry_run=False)
    said = capsys.readouterr().out
    assert f"removed {events} reminder events, 1 subscriptions" in said
    assert _events(m365, ann) == 0
    assert _state(m365)["subscriptions"] == []
    with get_store(m365.app).session() as session:
        assert session.scalars(select(Reminder.calendar_event_id)).all() == [None] * events
        assert session.scalars(select(Mailbox.subscription_id)).all() == [None]

    uninstall(m365.app, dry_run=False)  # again: nothing left to do
    assert "removed 0 reminder events, 0 subscriptions" in capsys.readouterr().out


def test_the_commands_are_there() -> None:
    for command in ("uninstall", "erase-person"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0
        assert "--dry-run" in result.output
