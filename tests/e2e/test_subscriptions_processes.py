"""Two ``dealbridge serve`` processes on one PostgreSQL database, against the sandbox: one
Graph subscription per mailbox (issue 14: the same run left two for 3 of 6 mailboxes).

Both processes are web, worker and leader candidate (the jobs on, as an admin scaling out by
hand starts them). Each of 6 reps gets a ``subscribe`` outbox item, and a ``subscriptions``
job run is made due, twice over: the two workers take them at the same time, so every
mailbox's subscription is asked for by several runs at once. Then the sandbox's
``GET /subscriptions`` (through its state) must hold exactly one per mailbox, the one stored.
Runs under ``pytest --database=postgresql`` only; about half a minute.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from connector.meetings.notifications import SUBSCRIPTION_KIND, SubscriptionChange
from connector.outbox import enqueue
from connector.store.db import Store
from connector.store.models import JobRun, Mailbox, Rep
from sandbox.server import start_sandbox
from tests.connector.conftest import _free_port
from tests.databases import Template
from tests.e2e.test_processes import Process, _env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
REPS = 6


def _live_per_mailbox(base_url: str) -> Counter[str]:
    state = requests.get(f"{base_url}/_sandbox/state", timeout=30).json()
    return Counter(s["resource"] for s in state["subscriptions"])


def test_two_serve_processes_make_one_subscription_per_mailbox(
    tmp_path: Path, database_kind: str, migrated_template: Template
) -> None:
    if database_kind != "postgresql":
        pytest.skip("two processes on one database need PostgreSQL: --database=postgresql")
    url = migrated_template.fresh(tmp_path / "unused.db")
    store = Store(url)
    processes: list[Process] = []
    with start_sandbox(seed=7) as sandbox:
        try:
            reps = []
            for n in range(REPS):
                email = f"rep{n}@{sandbox.domain}"
                user = requests.post(
                    f"{sandbox.base_url}/_sandbox/users",
                    json={"userPrincipalName": email, "displayName": f"Rep {n}"},
                    timeout=30,
                )
                assert user.status_code == 201, user.text
                reps.append((email, str(user.json()["id"])))
            ports = [_free_port(), _free_port()]
            public = f"http://127.0.0.1:{ports[0]}"
            for n, port in enumerate(ports):
                process = Process(
                    f"serve{n}",
                    ["serve", "--port", str(port)],
                    _env(sandbox, url, public, web=False),  # jobs on: web+worker+leader
                    tmp_path / f"serve{n}.log",
                )
                process.port = port
                process.start()
                processes.append(process)

            now = dt.datetime.now(dt.UTC)
            with store.session() as session:
                for email, entra_id in reps:
                    session.add(Rep(email=email, display_name=email, entra_id=entra_id))
                    enqueue(
                        session,
                        SUBSCRIPTION_KIND,
                        f"{SUBSCRIPTION_KIND}:{email}",
                        SubscriptionChange(action="subscribe", rep=email, at=now.isoformat()),
                    )
                for n in range(2):  # as two leaders' periods would make them
                    session.add(
                        JobRun(
                            job="subscriptions", run_key=f"subscriptions@test{n}", status="due",
                            due_at=now,
                        )
                    )  # fmt: skip

            def settled() -> bool:
                with store.sessions() as session:
                    stored = list(session.scalars(select(Mailbox.subscription_id)))
                    runs = list(session.scalars(select(JobRun.status)))
                return (
                    len([s for s in stored if s]) == REPS
                    and all(s in {"done", "failed"} for s in runs)
                    and len(runs) >= 2
                )

            deadline = time.monotonic() + 120
            while not settled() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert settled(), [p.log.read_text()[-2000:] for p in processes]
            time.sleep(2)  # the last deletions of duplicates, if any are on their way
            live = _live_per_mailbox(sandbox.base_url)
            per_mailbox = {email: live[f"/users/{entra_id}/events"] for email, entra_id in reps}
            with store.sessions() as session:
                stored = {m.rep_email: m.subscription_id for m in session.scalars(select(Mailbox))}
            state = requests.get(f"{sandbox.base_url}/_sandbox/state", timeout=30).json()
            ids = {s["id"] for s in state["subscriptions"]}
            print("live subscriptions per mailbox:", dict(per_mailbox))
            assert per_mailbox == {email: 1 for email, _ in reps}
            assert set(stored.values()) == ids
        finally:
            for process in processes:
                process.stop()
            store.dispose()
