"""The demo shows the product working: meetings logged right, reminders on calendars."""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select
from werkzeug.serving import make_server

from connector.admin.demo import DEMO_DOMAIN, DemoRun, demo_data, load_demo_data, prepare_demo
from connector.microsoft365 import close
from connector.store.db import get_store
from connector.store.models import Deal, Interaction, Reminder

pytestmark = pytest.mark.sqlite_only(
    "the demo is the embedded default: its own SQLite file in instance/demo, by design"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoRun, Any]]:
    from sandbox.server import serve_in_background, start_sandbox

    folder = tmp_path_factory.mktemp("demo")
    port = _free_port()
    with start_sandbox(domain=DEMO_DOMAIN) as sandbox:
        run = prepare_demo(folder=folder / "instance", port=port, sandbox=sandbox)
        server = make_server("127.0.0.1", port, run.app, threaded=True)
        thread = serve_in_background(server)
        try:
            yield run, sandbox
        finally:
            server.shutdown()
            thread.join(timeout=5)
            close(run.app)
            get_store(run.app).dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _meetings(run: DemoRun) -> dict[str, Interaction]:
    """The logged meetings by identity: the external key, `outlook:` + iCalUId, plus
    `|` + the occurrence's original start for an occurrence of a series."""
    with get_store(run.app).session() as session:
        rows = list(session.scalars(select(Interaction).where(Interaction.kind == "meeting")))
    by_identity = {i.external_key: i for i in rows}
    assert len(by_identity) == len(rows)
    return by_identity


def _calendar(sandbox: Any, rep: str) -> dict[str, dict[str, Any]]:
    """A rep's events in the sandbox's store (singles and series masters), by subject."""
    url = f"{sandbox.base_url}/_sandbox/users/{rep}@{DEMO_DOMAIN}/events"
    return {e["subject"]: e for e in requests.get(url, timeout=10).json()["value"]}


def _identity(event: dict[str, Any], occurrence: dt.datetime | None = None) -> str:
    if occurrence is None:
        return f"outlook:{event['iCalUId']}"
    return f"outlook:{event['iCalUId']}|{occurrence:%Y-%m-%dT%H:%M:%SZ}"


def _weekly_identities(sandbox: Any) -> list[str]:
    master = _calendar(sandbox, "raj.patel")[WEEKLY]
    assert master["type"] == "seriesMaster"
    first = dt.datetime.fromisoformat(master["start"]["dateTime"][:19])
    return [_identity(master, first + dt.timedelta(weeks=n)) for n in range(6)]


def _with_subject(run: DemoRun, subject: str) -> dict[str, Interaction]:
    return {k: i for k, i in _meetings(run).items() if i.subject == subject}


PRICING = "Fabrikam ERP: pricing review"
WEEKLY = "Northwind telematics: weekly status"
CANCELLED = "Humongous Insurance: claims AI demo"
UPCOMING = "Tailspin: pilot kickoff"
NO_SHOW = "Northwind telematics: contract walk-through"


def test_the_demo_shows_one_held_and_one_no_show_teams_meeting(demo: tuple[DemoRun, Any]) -> None:
    run, _ = demo
    [held] = _with_subject(run, PRICING).values()
    [no_show] = _with_subject(run, NO_SHOW).values()
    assert held.status == "held"
    assert held.details is not None
    assert held.details.attendance is not None
    assert held.details.attendance.result == "held"
    assert [p.email for p in held.details.attendance.customer] == ["dana.ruiz@fabrikam.com"]
    assert no_show.status == "no_show"
    assert any(line.startswith("Teams attendance: 1 held, 1 no-show") for line in run.summary)


def test_the_demo_logs_the_customer_meeting_once_with_both_reps(demo: tuple[DemoRun, Any]) -> None:
    run, sandbox = demo
    ann, raj = _calendar(sandbox, "ann.lee")[PRICING], _calendar(sandbox, "raj.patel")[PRICING]
    assert ann["iCalUId"] == raj["iCalUId"]  # one meeting in two mailboxes
    pricing = _with_subject(run, PRICING)
    assert list(pricing) == [_identity(ann)]
    [logged] = pricing.values()
    assert logged.details is not None
    assert list(logged.details.internal_participants) == [
        f"ann.lee@{DEMO_DOMAIN}",
        f"raj.patel@{DEMO_DOMAIN}",
    ]
    with get_store(run.app).session() as session:
        deal = session.get(Deal, logged.deal_id)
        assert deal is not None
        assert deal.crm_id == "OPP-1001"


def test_the_demo_never_logs_the_private_or_internal_meeting(demo: tuple[DemoRun, Any]) -> None:
    run, sandbox = demo
    calendar = _calendar(sandbox, "ann.lee")
    meetings = _meetings(run)
    for subject in ("Doctor's appointment", "Pipeline review"):
        assert _identity(calendar[subject]) not in meetings
        assert subject not in {i.subject for i in meetings.values()}


def test_the_demo_logs_each_weekly_call_and_keeps_the_cancelled_one(
    demo: tuple[DemoRun, Any],
) -> None:
    run, sandbox = demo
    assert sorted(_with_subject(run, WEEKLY)) == sorted(_weekly_identities(sandbox))
    [cancelled] = _with_subject(run, CANCELLED).values()  # deleted by Mia: no copy to key by
    assert cancelled.status == "cancelled"


def test_the_demo_logs_each_meeting_exactly_once_by_identity(demo: tuple[DemoRun, Any]) -> None:
    run, sandbox = demo
    expected = [
        _identity(_calendar(sandbox, "ann.lee")[PRICING]),
        _identity(_calendar(sandbox, "raj.patel")[NO_SHOW]),
        *_weekly_identities(sandbox),
        _identity(_calendar(sandbox, "mia.chen")[UPCOMING]),
    ]
    meetings = _meetings(run)
    [cancelled] = _with_subject(run, CANCELLED)
    assert sorted(meetings) == sorted([*expected, cancelled])
    moments = [(i.subject, i.started_at) for i in meetings.values()]
    assert len(set(moments)) == len(moments)


def test_the_demo_puts_reminders_on_the_sandbox_calendars(demo: tuple[DemoRun, Any]) -> None:
    run, sandbox = demo
    with get_store(run.app).session() as session:
        on_calendar = list(
            session.scalars(select(Reminder).where(Reminder.calendar_event_id.is_not(None)))
        )
    assert on_calendar
    events = requests.get(
        f"{sandbox.base_url}/_sandbox/users/ann.lee@{DEMO_DOMAIN}/events", timeout=10
    ).json()["value"]
    ours = [e for e in events if "DealBridge" in (e.get("categories") or [])]
    assert ours
    assert any(r.rep_email == f"ann.lee@{DEMO_DOMAIN}" for r in on_calendar)


def test_the_demo_api_key_works(demo: tuple[DemoRun, Any]) -> None:
    run, _ = demo
    client = run.app.test_client()
    answer = client.get("/api/v1/deals", headers={"Authorization": f"Bearer {run.api_key}"})
    assert answer.status_code == 200
    assert len(answer.json["items"]) == 20
    assert Path(run.app.extensions["dealbridge.settings"].instance_path).exists()


def test_a_due_reminder_arrives_as_a_card_and_its_button_works(demo: tuple[DemoRun, Any]) -> None:
    from connector.admin.demo import install_teams_app
    from connector.outbox import drain

    run, sandbox = demo
    bot_endpoint = run.app.extensions["dealbridge.settings"].public_url + "/api/messages"
    assert len(install_teams_app(sandbox, run.app, bot_endpoint)) == 3
    drain(run.app, limit=1000)
    chat = f"{sandbox.base_url}/_sandbox/teams/ann.lee@{DEMO_DOMAIN}/activities"
    cards = [a for a in requests.get(chat, timeout=10).json()["value"] if a.get("attachments")]
    reminder_cards = [a for a in cards if (a.get("summary") or "").startswith("Reminder")]
    assert reminder_cards
    pressed = reminder_cards[0]
    answer = requests.post(f"{chat}/{pressed['id']}/actions", json={"verb": "done"}, timeout=30)
    body = answer.json()["body"]
    assert body["statusCode"] == 200, body
    assert "Done" in str(body["value"])
    with get_store(run.app).session() as session:
        done = session.scalars(select(Reminder).where(Reminder.status == "done")).all()
    assert len(done) == 1
    assert done[0].rep_email == f"ann.lee@{DEMO_DOMAIN}"


def test_a_snooze_from_the_api_shows_on_the_card_at_once(demo: tuple[DemoRun, Any]) -> None:
    from connector.outbox import drain
    from connector.store.models import TeamsCard

    run, sandbox = demo
    with get_store(run.app).session() as session:
        sent = session.scalars(select(TeamsCard).where(TeamsCard.kind == "reminder")).all()
        reminders = {r.id: r for r in session.scalars(select(Reminder))}
        target = next(
            reminders[int(card.key.split(":")[1])]
            for card in sent
            if reminders[int(card.key.split(":")[1])].status == "open"
        )
        activity_id, rep = (
            next(c.activity_id for c in sent if c.key == f"reminder:{target.id}"),
            target.rep_email,
        )
    client = run.app.test_client()
    headers = {"Authorization": f"Bearer {run.api_key}"}
    answer = client.post(
        f"/api/v1/reminders/{target.id}/snooze", json={"option": "next_week"}, headers=headers
    )
    assert answer.status_code == 200
    drain(run.app, limit=1000)
    chat = requests.get(f"{sandbox.base_url}/_sandbox/teams/{rep}/activities", timeout=10).json()
    shown = next(a for a in chat["value"] if a["id"] == activity_id)
    assert "Snoozed" in str(shown["attachments"])


def test_digest_on_in_teams_then_the_digest_card_arrives(demo: tuple[DemoRun, Any]) -> None:
    from connector.admin.demo import install_teams_app
    from connector.outbox import drain
    from connector.teams.digests import queue_digests

    run, sandbox = demo
    rep = f"ann.lee@{DEMO_DOMAIN}"
    bot_endpoint = run.app.extensions["dealbridge.settings"].public_url + "/api/messages"
    install_teams_app(sandbox, run.app, bot_endpoint)
    said = requests.post(
        f"{sandbox.base_url}/_sandbox/teams/{rep}/messages", json={"text": "digest on"}, timeout=30
    )
    assert said.ok, said.text
    chat = f"{sandbox.base_url}/_sandbox/teams/{rep}/activities"
    texts = [a.get("text") or "" for a in requests.get(chat, timeout=10).json()["value"]]
    assert any("digest is on" in t for t in texts)
    monday_ten_berlin = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
    assert queue_digests(run.app, monday_ten_berlin) == [rep]
    drain(run.app, limit=1000)
    shown = requests.get(chat, timeout=10).json()["value"]
    assert any((a.get("summary") or "").startswith("Your day:") for a in shown)


def test_the_demo_data_file_holds_the_reps_deals_and_meetings() -> None:
    data = demo_data()
    assert [r.email for r in data.reps] == [
        f"{name}@{DEMO_DOMAIN}" for name in ("ann.lee", "raj.patel", "mia.chen")
    ]
    assert len(data.deals) == 20
    assert len({d.crm_id for d in data.deals}) == 20
    assert [m.name for m in data.meetings] == [
        "two reps, one customer",
        "no-show",
        "private",
        "internal",
        "weekly",
        "to cancel",
        "upcoming",
    ]


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("amount", "lots", "deals.2.amount"),
        ("stage", "closed", "deals.2.stage"),
        ("owner", "nobody@contoso.com", "not reps: ['nobody@contoso.com']"),
    ],
)
def test_a_bad_demo_data_file_fails_naming_the_field(
    tmp_path: Path, field: str, value: str, named: str
) -> None:
    data = demo_data().model_dump(mode="json")
    data["deals"][2][field] = value
    bad = tmp_path / "demo_data.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError) as failure:
        load_demo_data(bad)
    assert str(bad) in str(failure.value)
    assert named in str(failure.value)
