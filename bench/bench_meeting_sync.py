"""Meetings logged end to end: 200 mailboxes × 200 events against 5,000 deals.

The sandbox runs in its own process. DealBridge (SQLite, the real msal and msgraph-sdk) reads
every mailbox's first delta round, matches each meeting to a deal, stores one interaction per
meeting and re-plans the deals' reminders; then an idle round (nothing changed). Printed:
events/s end to end, Graph requests per mailbox for the first and the idle round (target 1),
the CPU time of parsing the pages with our models vs msgraph-sdk's typed models (the baseline,
measured in the same run on a sample: it costs milliseconds per event), and peak memory
(the process's max RSS; tracemalloc would slow the round 3x).
"""

from __future__ import annotations

import datetime as dt
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_meetings import (
    CLIENT_ID,
    SECRET,
    TENANT,
    SandboxProcess,
    collect_pages,
    parse_ours,
    parse_typed,
)
from bench.serving import fresh_app

MAILBOXES = 200
EVENTS_PER_MAILBOX = 200
DEALS = 5_000
TYPED_SAMPLE_PAGES = 4


def seed_tenant(sandbox: SandboxProcess, start: dt.datetime) -> list[tuple[str, str]]:
    """200 reps; each meets customers of 25 deals, 200 times over the window."""
    reps = []
    for m in range(MAILBOXES):
        email = f"rep{m}@contoso.example"
        user = sandbox.control(
            "POST", "/users", {"userPrincipalName": email, "displayName": f"Rep {m}"}
        )
        reps.append((email, user["id"]))
        events = []
        for n in range(EVENTS_PER_MAILBOX):
            deal = (m * 25 + n % 25) % DEALS
            begins = start + dt.timedelta(hours=11 * n + m % 7)
            attendees = [
                {
                    "emailAddress": {"address": f"buyer{deal}@customer{deal % 1000}.com"},
                    "type": "required",
                }
            ]
            if n % 10 == 0:  # now and then a colleague comes along
                attendees.append(
                    {
                        "emailAddress": {"address": f"rep{(m + 1) % MAILBOXES}@contoso.example"},
                        "type": "optional",
                    }
                )
            events.append(
                {
                    "subject": f"Deal {deal} check-in {n}",
                    "start": {"dateTime": begins.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                    "end": {
                        "dateTime": (begins + dt.timedelta(minutes=30)).strftime(
                            "%Y-%m-%dT%H:%M:%S"
                        ),
                        "timeZone": "UTC",
                    },
                    "attendees": attendees,
                }
            )
        sandbox.control("POST", f"/users/{user['id']}/events", {"value": events})
    return reps


def seed_store(app: Any, reps: list[tuple[str, str]]) -> None:
    from connector.deals.changes import upsert_deal
    from connector.deals.models import DealIn
    from connector.store.db import get_store
    from connector.store.models import Rep, utcnow

    now = utcnow() - dt.timedelta(days=40)
    with get_store(app).session() as session:
        for email, entra_id in reps:
            session.add(Rep(email=email, display_name=email, entra_id=entra_id))
        session.flush()
        pipelines: dict[str, Any] = {}
        for i in range(DEALS):
            owner = reps[(i // 25) % MAILBOXES][0]
            body = DealIn.model_validate(
                {
                    "title": f"Deal {i}",
                    "pipeline": "classic5",
                    "stage": "negotiation",
                    "owner": owner,
                    "account": {
                        "name": f"Customer {i % 1000}",
                        "domains": [f"customer{i % 1000}.com"],
                    },
                    "contacts": [{"email": f"buyer{i}@customer{i % 1000}.com"}],
                }
            )
            upsert_deal(
                session,
                f"D{i}",
                body,
                actor="bench",
                now=now,
                default_pipeline="classic5",
                pipelines=pipelines,
            )


def main() -> dict[str, Any]:
    from connector.meetings.sync import sync_mailbox
    from connector.microsoft365 import close, graph_client
    from connector.store.db import get_store
    from connector.store.models import Interaction

    sandbox = SandboxProcess()
    folder = Path(tempfile.mkdtemp())
    try:
        start = dt.datetime.now(dt.UTC).replace(
            hour=8, minute=0, second=0, microsecond=0
        ) - dt.timedelta(days=28)
        t0 = time.perf_counter()
        reps = seed_tenant(sandbox, start)
        app = fresh_app(
            folder,
            tenant_id=TENANT,
            client_id=CLIENT_ID,
            client_secret=SECRET,
            login_base_url=sandbox.base_url,
            graph_base_url=sandbox.base_url,
            reminder_channels=["calendar"],
        )
        seed_store(app, reps)
        seeded = time.perf_counter() - t0
        events = MAILBOXES * EVENTS_PER_MAILBOX
        print(f"   seeded {events:,} events, {DEALS:,} deals in {seeded:.1f} s")
        # The token and msgraph's import happen before the timing starts.
        graph_client(app).get_json(f"/users/{reps[0][1]}")
        sandbox.control("DELETE", "/requests")

        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started, cpu = time.perf_counter(), time.process_time()
        first = [sync_mailbox(app, email) for email, _ in reps]
        first_s, first_cpu = time.perf_counter() - started, time.process_time() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        first_requests = sandbox.control("GET", "/requests")["total"]
        sandbox.control("DELETE", "/requests")

        started = time.perf_counter()
        idle = [sync_mailbox(app, email) for email, _ in reps]
        idle_s = time.perf_counter() - started
        idle_requests = sandbox.control("GET", "/requests")["total"]

        read = sum(r.meetings for r in first)
        failed = sum(1 for r in first + idle if r.error)
        with get_store(app).session() as session:
            stored = session.query(Interaction).filter(Interaction.kind == "meeting").count()
            on_deals = (
                session.query(Interaction)
                .filter(Interaction.kind == "meeting", Interaction.deal_id.is_not(None))
                .count()
            )

        pages = [
            p
            for email, user in reps[:TYPED_SAMPLE_PAGES]
            for p in collect_pages(graph_client(app), user)
        ]
        ours_count, ours_cpu = parse_ours(pages)
        typed_count, typed_cpu = parse_typed(pages)
        close(app)
    finally:
        sandbox.stop()

    ours_per = ours_cpu / max(ours_count, 1)
    typed_per = typed_cpu / max(typed_count, 1)
    figures = {
        "events_per_s": read / first_s,
        "first_round_requests_per_mailbox": first_requests / MAILBOXES,
        "idle_round_requests_per_mailbox": idle_requests / MAILBOXES,
        "parse_ratio": typed_per / ours_per if ours_per else 0.0,
        "peak_mib": peak / 2**20,
    }
    lines = [
        f"first round: {read:,} events from {MAILBOXES} mailboxes in {first_s:.1f} s = "
        f"{figures['events_per_s']:,.0f} events/s end to end (CPU {first_cpu:.1f} s); "
        f"failures {failed}",
        f"stored: {stored:,} interactions ({on_deals:,} on deals; one per meeting)",
        f"Graph requests per mailbox: first round "
        f"{figures['first_round_requests_per_mailbox']:.1f}, idle round "
        f"{figures['idle_round_requests_per_mailbox']:.1f} (target 1) in {idle_s:.1f} s",
        f"parsing: ours {ours_per * 1e3:.3f} ms/event vs msgraph typed models "
        f"{typed_per * 1e3:.2f} ms/event on {typed_count} events -> "
        f"{figures['parse_ratio']:.0f}x faster (target >= 50x)",
        f"peak memory (max RSS of the process): {figures['peak_mib']:.0f} MiB, "
        f"{rss_before / 1024:.0f} MiB before the first round",
    ]
    for line in lines:
        print(f"   {line}")
    return figures


if __name__ == "__main__":
    main()
