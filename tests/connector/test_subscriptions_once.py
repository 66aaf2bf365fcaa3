"""One Graph subscription per mailbox, whatever runs (issue 14).

Two ``dealbridge serve`` processes on one PostgreSQL database left two live subscriptions for
3 of 6 mailboxes, so every change was notified twice. Creating or renewing a mailbox's
subscription is serialised per mailbox across processes (and threads), and a duplicate found
on Graph (``GET /subscriptions``) is deleted. The two-process run is
tests/e2e/test_processes.py's sibling below.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from sqlalchemy import select

from connector.meetings.notifications import ensure_subscriptions
from connector.microsoft365 import graph_client
from connector.settings import SETTINGS_EXTENSION
from connector.store.db import get_store
from connector.store.models import Mailbox, Rep
from graph_sync.meetings import create_subscription
from tests.connector.conftest import Tenant


def _live(m365: Tenant) -> Counter[str]:
    """Live subscriptions on the sandbox, per resource."""
    state = m365.control("GET", "/state")
    return Counter(s["resource"] for s in state["subscriptions"])


def _stored(m365: Tenant, email: str) -> str | None:
    with get_store(m365.app).sessions() as session:
        mailbox = session.scalar(select(Mailbox).where(Mailbox.rep_email == email))
        return None if mailbox is None else mailbox.subscription_id


def _user_id(m365: Tenant, email: str) -> str:
    with get_store(m365.app).sessions() as session:
        rep = session.scalar(select(Rep).where(Rep.email == email))
        assert rep is not None
        assert rep.entra_id
        return rep.entra_id


def test_a_duplicate_on_graph_is_deleted(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    assert ensure_subscriptions(m365.app) == {ann: "created"}
    kept = _stored(m365, ann)
    user = _user_id(m365, ann)
    settings: Any = m365.app.extensions[SETTINGS_EXTENSION]
    base = settings.public_url
    extra = create_subscription(  # as a second process would have left it
        graph_client(m365.app),
        user,
        f"{base}/api/graph/notifications",
        f"{base}/api/graph/lifecycle",
        "another-client-state",
        60,
    )
    assert _live(m365)[f"/users/{user}/events"] == 2

    assert ensure_subscriptions(m365.app) == {ann: "alive"}
    state = m365.control("GET", "/state")
    ids = [s["id"] for s in state["subscriptions"] if s["resource"] == f"/users/{user}/events"]
    assert ids == [kept]
    assert extra.id not in ids


def test_a_subscription_of_another_deployment_is_left_alone(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    user = _user_id(m365, ann)
    # the same Entra app serving a staging copy at another URL: not ours to delete (here
    # that URL is ours with a query, so the sandbox's validation handshake is answered)
    elsewhere = f"{m365.base_url}/api/graph"
    create_subscription(
        graph_client(m365.app),
        user,
        f"{elsewhere}/notifications?copy=staging",
        f"{elsewhere}/lifecycle?copy=staging",
        "staging-state",
        60,
    )
    assert ensure_subscriptions(m365.app) == {ann: "created"}
    assert _live(m365)[f"/users/{user}/events"] == 2


def test_two_at_once_make_one_subscription(m365: Tenant) -> None:
    """Two runs at the same moment (the periodic job in one worker, a rep's outbox item in
    another): one creates, the other finds it alive."""
    reps = [m365.add_rep(f"rep{n}", f"Rep {n}") for n in range(3)]
    results: list[dict[str, str]] = []
    start = threading.Barrier(2)

    def run(only: str | None) -> None:
        start.wait()
        results.append(ensure_subscriptions(m365.app, only=only))

    threads = [threading.Thread(target=run, args=(None,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    live = _live(m365)
    per_rep = {r: live[f"/users/{_user_id(m365, r)}/events"] for r in reps}
    assert per_rep == dict.fromkeys(reps, 1), (per_rep, results)
    outcomes = Counter(v for result in results for v in result.values())
    assert outcomes == {"created": 3, "alive": 3}, results
