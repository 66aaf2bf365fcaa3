"""A change logged (issue 13): sandbox event created → interaction in the store, through Graph
change notifications, embedded `serve` (SQLite, one process) with default settings.

The sandbox runs in its own process and POSTs its change notifications to the app, served by
waitress on a free port with its scheduler (the embedded leader), as `dealbridge serve` does.
30 meetings, one after another (each created once the one before is logged); the latency of
each is from the event's creation to its interaction row, polled every 5 ms. The same run
measures the floor (`sync_debounce_seconds` 0: every notification read at once) and the
previous default (2 s) for comparison, then a burst: BURST events created at once (one
thread each), and the rounds it took (rounds started by notifications; the 30 s safety net
not counted).
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.bench_meetings import CLIENT_ID, SECRET, TENANT, SandboxProcess
from bench.serving import free_port, fresh_app

MEETINGS = 30
BURST = 10
REP = "ann@contoso.example"
CUSTOMER = "dana@fabrikam.example"


def _event(subject: str, n: int) -> dict[str, Any]:
    begins = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(
        days=1, minutes=30 * n
    )
    return {
        "subject": subject,
        "start": {"dateTime": f"{begins:%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"},
        "end": {
            "dateTime": f"{begins + dt.timedelta(minutes=30):%Y-%m-%dT%H:%M:%S}",
            "timeZone": "UTC",
        },
        "attendees": [{"emailAddress": {"address": CUSTOMER}, "type": "required"}],
    }


class Run:
    def __init__(self, folder: Path, sandbox: SandboxProcess) -> None:
        from connector.admin.server import make_server, start_background

        port = free_port()
        self.app = fresh_app(
            folder,
            tenant_id=TENANT,
            client_id=CLIENT_ID,
            client_secret=SECRET,
            login_base_url=sandbox.base_url,
            graph_base_url=sandbox.base_url,
            public_url=f"http://127.0.0.1:{port}",
            scheduler_enabled=True,
        )
        self.sandbox = sandbox
        self.server = make_server(self.app, host="127.0.0.1", port=port, threads=8)
        threading.Thread(target=self.server.run, daemon=True).start()
        self._seed()
        self.background = start_background(self.app)
        self.rounds = 0
        self._count_rounds()

    def _seed(self) -> None:
        from connector.api.schemas import DealIn
        from connector.deals.changes import upsert_deal
        from connector.meetings.notifications import ensure_subscriptions
        from connector.meetings.sync import sync_mailbox
        from connector.store.db import get_store
        from connector.store.models import Rep, utcnow

        user = self.sandbox.control(
            "POST", "/users", {"userPrincipalName": REP, "displayName": "Ann"}
        )
        with get_store(self.app).session() as session:
            session.add(Rep(email=REP, display_name="Ann", entra_id=user["id"]))
        with get_store(self.app).session() as session:
            body = DealIn.model_validate(
                {
                    "title": "Fabrikam",
                    "pipeline": "classic5",
                    "stage": "negotiation",
                    "owner": REP,
                    "account": {"name": "Fabrikam", "domains": []},
                    "contacts": [{"email": CUSTOMER}],
                }
            )
            upsert_deal(
                session, "OPP-1", body, actor="bench", now=utcnow(), default_pipeline="classic5"
            )
        assert sync_mailbox(self.app, REP).error is None
        assert ensure_subscriptions(self.app)[REP] == "created"

    def _count_rounds(self) -> None:
        from connector.meetings import notifications, sync

        tasks = self.app.extensions["dealbridge.tasks"]
        real_task, real_round = tasks[notifications.MAILBOX_ROUND], sync.sync_mailbox
        notified = threading.local()

        def task(app: Any, email: str) -> None:
            notified.on = True
            try:
                real_task(app, email)
            finally:
                notified.on = False

        def counted(app: Any, email: str, **kwargs: Any) -> Any:
            report = real_round(app, email, **kwargs)
            if getattr(notified, "on", False) and not report.busy:
                self.rounds += 1
            return report

        tasks[notifications.MAILBOX_ROUND] = task
        sync.sync_mailbox = counted  # type: ignore[assignment]
        self._restore: Any = lambda: setattr(sync, "sync_mailbox", real_round)

    def debounce(self, seconds: float | None) -> None:
        from connector.settings import SETTINGS_EXTENSION, Settings

        if seconds is None:
            seconds = Settings.model_fields["sync_debounce_seconds"].default
        settings = self.app.extensions[SETTINGS_EXTENSION]
        self.app.extensions[SETTINGS_EXTENSION] = settings.model_copy(
            update={"sync_debounce_seconds": seconds}
        )

    def logged(self, subjects: set[str]) -> int:
        from sqlalchemy import func, select

        from connector.store.db import get_store
        from connector.store.models import Interaction

        with get_store(self.app).sessions() as session:
            query = select(func.count()).where(Interaction.subject.in_(subjects))
            return int(session.scalar(query) or 0)

    def wait_logged(self, subjects: set[str], seconds: float = 60) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.logged(subjects) == len(subjects):
                return True
            time.sleep(0.005)
        return False

    def latencies(self, label: str, offset: int) -> list[float]:
        found = []
        for n in range(MEETINGS):
            subject = f"{label} {n}"
            started = time.perf_counter()
            self.sandbox.control("POST", f"/users/{REP}/events", _event(subject, offset + n))
            assert self.wait_logged({subject}), f"{subject} never logged"
            found.append(time.perf_counter() - started)
        return found

    def burst(self, offset: int) -> int:
        subjects = {f"Burst {n}" for n in range(BURST)}
        time.sleep(3)  # quiet first: the burst's first notification is a leading edge
        before = self.rounds
        with ThreadPoolExecutor(BURST) as pool:  # at once, as a sync tool or an import would
            for n in range(BURST):
                body = _event(f"Burst {n}", offset + n)
                pool.submit(self.sandbox.control, "POST", f"/users/{REP}/events", body)
        assert self.wait_logged(subjects)
        time.sleep(3)  # a trailing round would have come by now
        return self.rounds - before

    def stop(self) -> None:
        self._restore()
        self.background.stop()
        self.server.close()


def _quantiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return statistics.median(values), cuts[18]


def main() -> None:
    logging.getLogger("connector").setLevel(logging.ERROR)  # default settings: Teams unset
    sandbox = SandboxProcess()
    try:
        with tempfile.TemporaryDirectory(prefix="dealbridge-bench-") as folder:
            run = Run(Path(folder), sandbox)
            try:
                run.latencies("Warm-up", 0)  # the first rounds import and connect
                rows: list[tuple[str, tuple[float, float]]] = []
                for label, seconds in (("default", None), ("floor", 0.0), ("previous", 2.0)):
                    run.debounce(seconds)
                    rows.append((label, _quantiles(run.latencies(label, 100 * len(rows) + 100))))
                run.debounce(None)
                rounds = run.burst(1000)
            finally:
                run.stop()
    finally:
        sandbox.stop()
    from connector.settings import Settings

    default = Settings.model_fields["sync_debounce_seconds"].default
    floor = rows[1][1][1]
    print(f"   change logged over {MEETINGS} meetings, one after another (embedded, SQLite):")
    names = {
        "default": f"default settings (debounce {default:g} s)",
        "floor": "floor (debounce 0)",
        "previous": "previous default (debounce 2 s)",
    }
    for label, (p50, p95) in rows:
        ratio = p95 / floor
        print(f"   {names[label]:<34} p50 {p50:.3f} s  p95 {p95:.3f} s  ({ratio:.1f}× floor p95)")
    print(f"   burst of {BURST} events created at once: {rounds} rounds (default settings)")
