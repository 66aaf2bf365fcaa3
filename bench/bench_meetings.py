"""Read 10,000 meetings through the calendarView delta reader (initial round).

The sandbox tenant runs in its own process (so CPU and memory figures are the reader's alone),
seeded with 10,000 events over 20 mailboxes through its control API. Printed: events/s and Graph
requests for the initial round of every mailbox read at once; the CPU time of parsing the same
page bytes with our pydantic models vs msgraph-sdk's typed models (the baseline, on a sample:
it costs milliseconds per event); peak memory of a round (tracemalloc).
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from bench.serving import free_port
from graph_sync.auth import GraphCredentials
from graph_sync.client import GraphClient
from graph_sync.errors import GraphSyncError
from graph_sync.meetings import CalendarWindow, DeltaRound, read_delta_async
from graph_sync.models import Meeting, decode_page

EVENTS = 10_000
MAILBOXES = 20
PAGE_SIZE = 100
TYPED_SAMPLE_PAGES = 5
WINDOW = CalendarWindow(
    start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2027, 3, 1, tzinfo=UTC)
)
TENANT = "8d3c1f52-6a0b-4a8e-9a43-2f6f1c0d7e11"
CLIENT_ID = "4b1f2e9a-0c7d-4e35-8f60-9a2b7c3d5e14"
SECRET = "bench-secret"
DELTA_ROUTE = "GET /v1.0/users/{user}/calendarView/delta"


class SandboxProcess:
    """`python -m sandbox.server` on a free port, stopped at the end."""

    def __init__(self) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandbox.server",
                "--port",
                str(port),
                "--tenant",
                TENANT,
                "--client-id",
                CLIENT_ID,
                "--client-secret",
                SECRET,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base_url}/_sandbox/state", timeout=1).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the sandbox did not start")

    def control(self, method: str, path: str, body: Any = None) -> Any:
        answer = requests.request(method, f"{self.base_url}/_sandbox{path}", json=body, timeout=120)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def credentials(self) -> GraphCredentials:
        return GraphCredentials(
            tenant_id=TENANT,
            client_id=CLIENT_ID,
            client_secret=SECRET,
            login_base_url=self.base_url,
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def seed(sandbox: SandboxProcess) -> list[str]:
    """20 reps, 500 meetings each over the window, each with an external attendee."""
    start = WINDOW.start + timedelta(hours=8)
    mailboxes = []
    for m in range(MAILBOXES):
        user = sandbox.control(
            "POST",
            "/users",
            {"userPrincipalName": f"rep{m}@contoso.example", "displayName": f"Rep {m}"},
        )
        mailboxes.append(user["id"])
        per_box = EVENTS // MAILBOXES
        events = []
        for n in range(per_box):
            begins = start + timedelta(hours=5 * n + m % 5)
            events.append(
                {
                    "subject": f"Deal review {m}-{n}",
                    "start": {"dateTime": begins.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                    "end": {
                        "dateTime": (begins + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"),
                        "timeZone": "UTC",
                    },
                    "attendees": [
                        {
                            "emailAddress": {"address": f"buyer{n % 50}@fabrikam.com"},
                            "type": "required",
                        }
                    ],
                    "location": {"displayName": "Teams"},
                }
            )
        for chunk in range(0, per_box, 250):
            sandbox.control(
                "POST", f"/users/{user['id']}/events", {"value": events[chunk : chunk + 250]}
            )
    return mailboxes


def collect_pages(client: GraphClient, mailbox: str) -> list[bytes]:
    """The raw pages of one mailbox's initial round, as the reader receives them."""
    pages: list[bytes] = []
    url: str | None = f"/users/{mailbox}/calendarView/delta"
    params: dict[str, str] | None = WINDOW.query()
    headers = {"Prefer": f'odata.maxpagesize={PAGE_SIZE}, outlook.timezone="UTC"'}
    while url:
        raw = client.get_bytes(url, headers=headers, params=params, mailbox=mailbox)
        pages.append(raw)
        page = decode_page(raw)
        url, params = page.next_link, None
    return pages


def parse_ours(pages: list[bytes]) -> tuple[int, float]:
    """Our models' CPU on the pages, after one untimed pass over the first page and a full
    garbage collection: after a benchmark's round the heap is large, and the collection the
    parse would set off cost about 130 ms, 160 us an event over ``bench_meeting_sync``'s 820."""

    def parse(sample: list[bytes]) -> int:
        count = 0
        for raw in sample:
            for event in decode_page(raw).value:
                whole = event.start is not None and event.end is not None
                if whole and event.type != "seriesMaster":
                    Meeting.from_event("bench", event)
                    count += 1
        return count

    parse(pages[:1])
    gc.collect()
    started = time.process_time()
    count = parse(pages)
    return count, time.process_time() - started


def parse_typed(pages: list[bytes]) -> tuple[int, float]:
    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
    from msgraph.generated.users.item.calendar_view.delta.delta_get_response import (
        DeltaGetResponse,
    )

    factory = JsonParseNodeFactory()
    for raw in pages[:1]:  # warmed as ours is
        factory.get_root_parse_node("application/json", raw).get_object_value(DeltaGetResponse)
    gc.collect()
    started = time.process_time()
    count = 0
    for raw in pages:
        node = factory.get_root_parse_node("application/json", raw)
        response = node.get_object_value(DeltaGetResponse)
        count += len(response.value or [])
    return count, time.process_time() - started


def read_many(
    client: GraphClient, mailboxes: list[str], page_size: int
) -> dict[str, DeltaRound | GraphSyncError]:
    """Initial delta rounds for all mailboxes at once; a mailbox's error takes its place."""

    async def all_rounds() -> list[DeltaRound | BaseException]:
        return await asyncio.gather(
            *(read_delta_async(client, m, WINDOW, None, page_size=page_size) for m in mailboxes),
            return_exceptions=True,
        )

    out: dict[str, DeltaRound | GraphSyncError] = {}
    for mailbox, result in zip(mailboxes, client.bridge.run(all_rounds(), None), strict=True):
        if not isinstance(result, DeltaRound | GraphSyncError):
            raise result
        out[mailbox] = result
    return out


def main() -> dict[str, Any]:
    sandbox = SandboxProcess()
    try:
        seeding = time.perf_counter()
        mailboxes = seed(sandbox)
        seeded_in = time.perf_counter() - seeding
        with GraphClient(sandbox.credentials(), sandbox.base_url) as client:
            client.get_json(f"/users/{mailboxes[0]}")  # token and SDK import outside the timing
            sandbox.control("DELETE", "/requests")

            started = time.perf_counter()
            rounds = read_many(client, mailboxes, PAGE_SIZE)
            elapsed = time.perf_counter() - started
            done = [r for r in rounds.values() if isinstance(r, DeltaRound)]
            failed = len(rounds) - len(done)
            meetings = sum(len(r.meetings) for r in done)
            served = sandbox.control("GET", "/requests")
            delta_requests = served["byRoute"].get(DELTA_ROUTE, 0)
            throttled = served["byStatus"].get("429", 0)

            tracemalloc.start()
            read_many(client, mailboxes, PAGE_SIZE)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()

            pages = collect_pages(client, mailboxes[0])
            all_pages = [p for m in mailboxes for p in collect_pages(client, m)]
        ours_count, ours_cpu = parse_ours(all_pages)
        sample = pages[:TYPED_SAMPLE_PAGES]
        typed_count, typed_cpu = parse_typed(sample)
    finally:
        sandbox.stop()

    ours_per_event = ours_cpu / max(ours_count, 1)
    typed_per_event = typed_cpu / max(typed_count, 1)
    figures: dict[str, Any] = {
        "events": meetings,
        "mailboxes": len(done),
        "mailboxes_failed": failed,
        "seconds": round(elapsed, 2),
        "events_per_s": round(meetings / elapsed),
        "graph_requests": delta_requests,
        "throttled_429": throttled,
        "page_size": PAGE_SIZE,
        "parse_cpu_ms_per_event_ours": round(ours_per_event * 1000, 4),
        "parse_cpu_ms_per_event_msgraph_typed": round(typed_per_event * 1000, 3),
        "parse_cpu_s_all_events_ours": round(ours_cpu, 2),
        "parse_cpu_s_all_events_typed_estimated": round(typed_per_event * ours_count, 1),
        "typed_vs_ours_ratio": round(typed_per_event / ours_per_event, 1),
        "typed_sample_events": typed_count,
        "peak_memory_mib": round(peak / 2**20, 1),
        "seed_seconds": round(seeded_in, 1),
    }
    print(
        f"   {meetings:,} meetings from {len(done)} mailboxes in {elapsed:.2f} s "
        f"= {figures['events_per_s']:,} events/s; {delta_requests} Graph requests "
        f"(page size {PAGE_SIZE}), {throttled} throttled, {failed} mailboxes failed\n"
        f"   parse CPU per event: ours {figures['parse_cpu_ms_per_event_ours']} ms, "
        f"msgraph typed {figures['parse_cpu_ms_per_event_msgraph_typed']} ms "
        f"(on {typed_count} events) -> ours is {figures['typed_vs_ours_ratio']}x faster "
        f"(target >= 100x, issue 13); all {ours_count:,} events: ours {ours_cpu:.2f} s, typed ~"
        f"{figures['parse_cpu_s_all_events_typed_estimated']} s\n"
        f"   peak memory of a round (tracemalloc): {figures['peak_memory_mib']} MiB; "
        f"seeding took {seeded_in:.1f} s"
    )
    return figures


if __name__ == "__main__":
    main()
