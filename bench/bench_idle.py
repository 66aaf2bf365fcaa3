"""Idle rounds and memory against mailbox size: a 20,000-event mailbox and a 200-event one.

The sandbox runs in its own process. Each mailbox's first round is read (the big one first,
so the process's max RSS before it is its baseline); then idle rounds (nothing changed) of
each, five times. Printed: the CPU of an idle round of each (the least of five) and their
ratio (target <= 2x), and the peak RSS above the baseline during the 20,000-event first
round (target <= 100 MiB). Sizes: ``BENCH_BIG_MAILBOX`` (default 20,000 events).
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_meetings import CLIENT_ID, SECRET, TENANT, SandboxProcess
from bench.serving import fresh_app

BIG = int(os.environ.get("BENCH_BIG_MAILBOX", "20000"))
SMALL = 200
IDLE_ROUNDS = 5


def seed(sandbox: SandboxProcess, name: str, events: int, start: dt.datetime) -> str:
    user = sandbox.control(
        "POST", "/users", {"userPrincipalName": f"{name}@contoso.example", "displayName": name}
    )
    batch: list[dict[str, Any]] = []
    for n in range(events):
        begins = start + dt.timedelta(minutes=25 * n)
        batch.append(
            {
                "subject": f"Check-in {n}",
                "start": {"dateTime": begins.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "end": {
                    "dateTime": (begins + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"),
                    "timeZone": "UTC",
                },
                "attendees": [
                    {
                        "emailAddress": {"address": f"buyer{n % 40}@customer{n % 40}.com"},
                        "type": "required",
                    }
                ],
            }
        )
        if len(batch) == 500:
            sandbox.control("POST", f"/users/{user['id']}/events", {"value": batch})
            batch = []
    if batch:
        sandbox.control("POST", f"/users/{user['id']}/events", {"value": batch})
    return str(user["id"])


def main() -> dict[str, Any]:
    from connector.meetings.sync import sync_mailbox
    from connector.microsoft365 import close, graph_client
    from connector.store.db import get_store
    from connector.store.models import Rep

    sandbox = SandboxProcess()
    folder = Path(tempfile.mkdtemp())
    try:
        now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
        # 20,000 events 25 minutes apart span 347 days: from 300 days back, in the window.
        days = 300
        start = now - dt.timedelta(days=days - 1)
        big = seed(sandbox, "big", BIG, start)
        small = seed(sandbox, "small", SMALL, now - dt.timedelta(days=10))
        app = fresh_app(
            folder,
            tenant_id=TENANT,
            client_id=CLIENT_ID,
            client_secret=SECRET,
            login_base_url=sandbox.base_url,
            graph_base_url=sandbox.base_url,
            reminder_channels=["calendar", "teams"],
            sync_days_back=days,
        )
        with get_store(app).session() as session:
            for name, entra in (("big", big), ("small", small)):
                session.add(Rep(email=f"{name}@contoso.example", display_name=name, entra_id=entra))
        graph_client(app).get_json(f"/users/{big}")  # the token and msgraph's import
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cpu = time.process_time()
        first = sync_mailbox(app, "big@contoso.example")
        first_cpu = time.process_time() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cpu = time.process_time()
        sync_mailbox(app, "small@contoso.example")
        small_first_cpu = time.process_time() - cpu
        idle: dict[str, float] = {}
        for name in ("big", "small"):
            spent = []
            for _ in range(IDLE_ROUNDS):
                cpu = time.process_time()
                report = sync_mailbox(app, f"{name}@contoso.example")
                spent.append(time.process_time() - cpu)
                assert report.error is None, report
                assert report.meetings == 0, report
            idle[name] = min(spent)
        close(app)
    finally:
        sandbox.stop()
    figures = {
        "idle_big_ms": idle["big"] * 1e3,
        "idle_small_ms": idle["small"] * 1e3,
        "idle_ratio": idle["big"] / max(idle["small"], 1e-9),
        "first_round_rss_above_baseline_mib": (peak - baseline) / 1024,
        "baseline_mib": baseline / 1024,
        # At a 15-minute poll every mailbox has an idle round per poll; its window slides (a
        # full re-read, a first round) once a day: all in the same poll when every window
        # slides at UTC midnight, spread over the day's 96 polls when staggered per mailbox.
        "mailboxes_per_process_midnight": 900 / small_first_cpu,
        "mailboxes_per_process_staggered": 900 / (idle["small"] + small_first_cpu / 96),
    }
    print(
        f"   idle round CPU: {BIG:,}-event mailbox {figures['idle_big_ms']:.1f} ms, "
        f"{SMALL}-event mailbox {figures['idle_small_ms']:.1f} ms -> "
        f"{figures['idle_ratio']:.1f}x (target <= 2x; least of {IDLE_ROUNDS})\n"
        f"   first round of the {BIG:,}-event mailbox: {first.meetings:,} meetings, CPU "
        f"{first_cpu:.1f} s, error {first.error}; peak RSS "
        f"{figures['first_round_rss_above_baseline_mib']:.0f} MiB above the baseline of "
        f"{figures['baseline_mib']:.0f} MiB (target <= 100 MiB)\n"
        f"   mailboxes per process at a 15-minute poll ({SMALL}-event mailboxes, CPU): "
        f"{figures['mailboxes_per_process_midnight']:,.0f} if every window slides in the same "
        f"poll, {figures['mailboxes_per_process_staggered']:,.0f} with the slide spread over "
        f"the day's 96 polls (first round {small_first_cpu * 1e3:.0f} ms, idle "
        f"{figures['idle_small_ms']:.1f} ms)"
    )
    return figures


if __name__ == "__main__":
    main()
