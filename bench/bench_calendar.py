"""Deliver 1,000 reminder events to 10 reps' calendars through CalendarWriter (`$batch`).

The sandbox tenant runs in its own process. Four runs on a fresh tenant each: the writer as is;
the writer with 20 % of batch items answered 429 (Retry-After 0.05 s), counting duplicates per
reminder key from the stored calendars (must be 0); 200 reminders spread over 100 reps (2 each,
the outbox's usual round: calls shared across mailboxes); the baseline, the same 1,000 creates
as single POSTs (16 in flight, at most 4 per mailbox). Each run prints its `$batch` calls next to
the target ceil(n / 20) (+ retried items): at most 20 a call whatever the mailboxes, as "Outlook
runs up to 4 items of a batch in parallel" (M365_NOTES.md) and lets the rest wait their turn.
The sandbox adds no service time, so times measure our client and the local transport.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.bench_meetings import SandboxProcess
from graph_sync.calendar import REMINDER_PROPERTY, CalendarWriter, CreateReminder, ReminderEvent
from graph_sync.client import GraphClient

REPS = 10
REMINDERS = 1_000
RETRY_AFTER = 0.05
DUE = datetime(2026, 12, 1, 8, tzinfo=UTC)


SPREAD_REPS = 100
SPREAD_REMINDERS = 200


def reps(sandbox: SandboxProcess, count: int = REPS) -> list[str]:
    sandbox.control("POST", "/reset", {})
    return [
        sandbox.control(
            "POST",
            "/users",
            {"userPrincipalName": f"rep{n}@contoso.example", "displayName": f"Rep {n}"},
        )["id"]
        for n in range(count)
    ]


def ops_for(mailboxes: list[str], reminders: int = REMINDERS) -> list[CreateReminder]:
    count = len(mailboxes)
    return [
        CreateReminder(
            mailbox=mailboxes[n % count],
            event=ReminderEvent(
                key=f"deal-{n}:proposal-answered:0",
                subject=f"Call back about deal {n}",
                body_html=f"<p>Deal {n}: Proposal, 3 days in stage.</p>",
                start=DUE + timedelta(minutes=30 * (n // count)),
                time_zone="W. Europe Standard Time",
            ),
        )
        for n in range(reminders)
    ]


def target_calls(ops: list[CreateReminder]) -> int:
    """The fewest `$batch` calls for these creates: ceil(n / 20), whatever the mailboxes."""
    return math.ceil(len(ops) / 20)


def top_level_requests(sandbox: SandboxProcess) -> int:
    """Graph requests the client sent, a `$batch` counting once. The sandbox counts batch items
    under their own routes too, so a run that batches counts its `$batch` calls only (no run
    here mixes batches and single requests)."""
    by_route: dict[str, int] = sandbox.control("GET", "/requests")["byRoute"]
    batches = by_route.get("POST /v1.0/$batch", 0)
    if batches:
        return batches
    return sum(count for route, count in by_route.items() if "oauth2" not in route)


def duplicates(sandbox: SandboxProcess, mailboxes: list[str]) -> tuple[int, int]:
    """(events beyond the first per reminder key, reminder keys present)."""
    per_key: Counter[str] = Counter()
    for mailbox in mailboxes:
        for event in sandbox.control("GET", f"/users/{mailbox}/events")["value"]:
            for prop in event.get("singleValueExtendedProperties") or []:
                if prop["id"].lower() == REMINDER_PROPERTY.lower():
                    per_key[prop["value"]] += 1
    return sum(n - 1 for n in per_key.values()), len(per_key)


def deliver(
    sandbox: SandboxProcess,
    client: GraphClient,
    fault: dict[str, Any] | None,
    rep_count: int = REPS,
    reminders: int = REMINDERS,
) -> dict[str, Any]:
    mailboxes = reps(sandbox, rep_count)
    if fault:
        sandbox.control("POST", "/faults", fault)
    writer = CalendarWriter(client)
    ops = ops_for(mailboxes, reminders)
    started = time.perf_counter()
    results = writer.apply(ops)
    elapsed = time.perf_counter() - started
    extra, keys = duplicates(sandbox, mailboxes)
    return {
        "seconds": round(elapsed, 2),
        "requests": top_level_requests(sandbox),
        "target_calls": target_calls(ops),
        "throttled_items": int(sandbox.control("GET", "/requests")["byStatus"].get("429", 0)),
        "done": sum(r.outcome == "done" for r in results),
        "retried_items": sum(r.attempts - 1 for r in results),
        "duplicates": extra,
        "keys_on_calendars": keys,
    }


def single_posts(sandbox: SandboxProcess, client: GraphClient) -> dict[str, Any]:
    mailboxes = reps(sandbox)
    ops = ops_for(mailboxes)

    def post(op: CreateReminder) -> str:
        answer = client.post_json(
            f"/users/{op.mailbox}/events", op.event.graph_body(create=True), mailbox=op.mailbox
        )
        return str(answer["id"])

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(post, ops))
    elapsed = time.perf_counter() - started
    return {
        "seconds": round(elapsed, 2),
        "requests": top_level_requests(sandbox),
        "done": len(ids),
    }


def main() -> dict[str, Any]:
    sandbox = SandboxProcess()
    try:
        with GraphClient(sandbox.credentials(), sandbox.base_url) as client:
            client.get_json("/organization")  # token and SDK import outside the timings
            batched = deliver(sandbox, client, None)
            throttled = deliver(
                sandbox,
                client,
                {"route": "POST .*/events$", "status": 429, "rate": 0.2, "retryAfter": RETRY_AFTER},
            )
            spread = deliver(sandbox, client, None, SPREAD_REPS, SPREAD_REMINDERS)
            baseline = single_posts(sandbox, client)
    finally:
        sandbox.stop()
    figures = {
        "reminders": REMINDERS,
        "reps": REPS,
        "batched": batched,
        "with_20pct_429": throttled,
        "spread_200_over_100_reps": spread,
        "baseline_single_posts": baseline,
        "requests_ratio_baseline_vs_batched": round(baseline["requests"] / batched["requests"], 1),
        "time_ratio_baseline_vs_batched": round(baseline["seconds"] / batched["seconds"], 2),
    }
    print(
        f"   batched: {batched['done']:,}/{REMINDERS:,} done in {batched['seconds']} s with "
        f"{batched['requests']} $batch calls (target ceil(n/20) = {batched['target_calls']}, "
        f"+ retried items), "
        f"{batched['throttled_items']} items throttled; duplicates {batched['duplicates']}\n"
        f"   20 % 429 on items (Retry-After {RETRY_AFTER} s): {throttled['done']:,} done in "
        f"{throttled['seconds']} s, {throttled['requests']} $batch calls (target "
        f"ceil(n/20) = {throttled['target_calls']} + retried items), "
        f"{throttled['retried_items']} retried items, duplicates {throttled['duplicates']}, "
        f"{throttled['keys_on_calendars']:,} keys on calendars\n"
        f"   {SPREAD_REMINDERS} over {SPREAD_REPS} reps: {spread['done']} done in "
        f"{spread['seconds']} s with {spread['requests']} $batch calls (target "
        f"{spread['target_calls']} = ceil(n/20); one call per rep before: {SPREAD_REPS}), "
        f"{spread['throttled_items']} items throttled, duplicates {spread['duplicates']}\n"
        f"   baseline single POSTs: {baseline['done']:,} in {baseline['seconds']} s with "
        f"{baseline['requests']} requests -> batching uses "
        f"{figures['requests_ratio_baseline_vs_batched']}x fewer requests, "
        f"{figures['time_ratio_baseline_vs_batched']}x the speed"
    )
    return figures


if __name__ == "__main__":
    main()
