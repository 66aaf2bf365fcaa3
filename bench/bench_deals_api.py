"""Bulk upsert and list of 10,000 deals through the HTTP API, against plain SQLAlchemy Core.

Baseline, measured in the same run: inserting the same rows (deals, contacts, domains, the
first stage change, and the reminders and outbox rows the API run wrote, copied from its
database) with SQLAlchemy Core executemany on a fresh, migrated database.

Both sides get their input ready before the clock starts: the baseline its rows, the API
run its request bodies, encoded (a CRM's client builds them, not DealBridge). Each side is
timed in wall time and in CPU time (this process: the client and the server's threads for
the API run); the CPU ratio does not move with the disk's fsync times, the wall ratio does.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.serving import fresh_app, running_app

DEALS = 10_000
BATCH = 1_000
STAGES = ["lead_generation", "first_interaction", "solution_presentation", "negotiation"]


def deal(i: int) -> dict[str, Any]:
    return {
        "id": f"OPP-{i:06d}",
        "title": f"Opportunity {i}",
        "pipeline": "classic5",
        "stage": STAGES[i % len(STAGES)],
        "owner": f"rep{i % 25}@contoso.com",
        "account": {"name": f"Account {i % 900}", "domains": [f"account{i % 900}.com"]},
        "contacts": [{"name": f"Contact {i}", "email": f"contact{i}@account{i % 900}.com"}],
        "amount": f"{1000 + i % 97 * 250}.00",
        "currency": "EUR",
        "expected_close_date": "2027-03-31",
    }


Rows = list[dict[str, Any]]


def written(app: Any) -> tuple[Rows, Rows]:
    """The reminders (with their deal's CRM id for ``deal_id``) and outbox rows of a run."""
    from sqlalchemy import select

    from connector.store.db import get_store
    from connector.store.models import Deal, OutboxItem, Reminder

    with get_store(app).engine.connect() as connection:
        crm = dict(connection.execute(select(Deal.id, Deal.crm_id)).tuples().all())
        reminders = [
            {k: v for k, v in row._mapping.items() if k != "id"} | {"deal_id": crm[row.deal_id]}
            for row in connection.execute(select(Reminder.__table__))
        ]
        outbox = [
            {k: v for k, v in row._mapping.items() if k != "id"}
            for row in connection.execute(select(OutboxItem.__table__))
        ]
    return reminders, outbox


Timed = tuple[float, float]  # wall seconds, CPU seconds


def through_api(folder: Path) -> tuple[Timed, float, int, tuple[Rows, Rows]]:
    app = fresh_app(folder)
    headers = {"Authorization": "Bearer bench-key-0123456789", "Content-Type": "application/json"}
    bodies = [
        json.dumps({"deals": [deal(i) for i in range(offset, offset + BATCH)]}).encode()
        for offset in range(0, DEALS, BATCH)
    ]
    with running_app(app) as base, requests.Session() as http:
        started, cpu = time.perf_counter(), time.process_time()
        for body in bodies:
            answer = http.post(f"{base}/api/v1/deals:bulk", data=body, headers=headers, timeout=120)
            answer.raise_for_status()
            assert answer.json()["created"] == BATCH, answer.json()
        upsert = (time.perf_counter() - started, time.process_time() - cpu)
        started = time.perf_counter()
        seen, cursor = 0, None
        while True:
            params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
            page = http.get(f"{base}/api/v1/deals", params=params, headers=headers, timeout=60)
            page.raise_for_status()
            seen += len(page.json()["items"])
            cursor = page.json()["next_cursor"]
            if not cursor:
                break
        listing = time.perf_counter() - started
    return upsert, listing, seen, written(app)


def with_core(folder: Path, extra: tuple[Rows, Rows]) -> Timed:
    from sqlalchemy import insert

    from connector.store.db import get_store
    from connector.store.models import (
        Deal,
        DealContact,
        DealDomain,
        OutboxItem,
        Reminder,
        StageChange,
    )

    reminders, outbox = extra

    app = fresh_app(folder)
    engine = get_store(app).engine
    now = dt.datetime.now(dt.UTC)
    rows = [deal(i) for i in range(DEALS)]
    started, cpu = time.perf_counter(), time.process_time()
    ids_of: dict[str, int] = {}
    with engine.begin() as connection:
        for offset in range(0, DEALS, BATCH):
            chunk = rows[offset : offset + BATCH]
            ids = (
                connection.execute(
                    insert(Deal).returning(Deal.id),
                    [
                        {
                            "crm_id": r["id"],
                            "title": r["title"],
                            "pipeline_id": r["pipeline"],
                            "stage_key": r["stage"],
                            "status": "open",
                            "owner_email": r["owner"],
                            "account_name": r["account"]["name"],
                            "amount": r["amount"],
                            "currency": r["currency"],
                            "expected_close_date": dt.date(2027, 3, 31),
                            "stage_entered_at": now,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for r in chunk
                    ],
                )
                .scalars()
                .all()
            )
            ids_of.update((r["id"], i) for i, r in zip(ids, chunk, strict=True))
            connection.execute(
                insert(DealContact),
                [
                    {
                        "deal_id": i,
                        "name": r["contacts"][0]["name"],
                        "email": r["contacts"][0]["email"],
                    }
                    for i, r in zip(ids, chunk, strict=True)
                ],
            )
            connection.execute(
                insert(DealDomain),
                [
                    {"deal_id": i, "domain": r["account"]["domains"][0]}
                    for i, r in zip(ids, chunk, strict=True)
                ],
            )
            connection.execute(
                insert(StageChange),
                [
                    {
                        "deal_id": i,
                        "pipeline_id": "classic5",
                        "from_stage": None,
                        "to_stage": r["stage"],
                        "changed_at": now,
                        "changed_by": "bench",
                    }
                    for i, r in zip(ids, chunk, strict=True)
                ],
            )
        for offset in range(0, len(reminders), BATCH):
            chunk = reminders[offset : offset + BATCH]
            connection.execute(
                insert(Reminder), [r | {"deal_id": ids_of[r["deal_id"]]} for r in chunk]
            )
        for offset in range(0, len(outbox), BATCH):
            connection.execute(insert(OutboxItem), outbox[offset : offset + BATCH])
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as api_dir, tempfile.TemporaryDirectory() as core_dir:
        upsert_timed, listing, listed, extra = through_api(Path(api_dir))
        core_timed = with_core(Path(core_dir), extra)
    (upsert, upsert_cpu), (core, core_cpu) = upsert_timed, core_timed
    figures = {
        "api_upsert_deals_per_s": DEALS / upsert,
        "api_list_deals_per_s": listed / listing,
        "core_insert_deals_per_s": DEALS / core,
    }
    for label, count, seconds, cpu in [
        ("bulk upsert over HTTP", DEALS, upsert, upsert_cpu),
        ("baseline: Core insert", DEALS, core, core_cpu),
    ]:
        print(
            f"   {label:<22}: {count:,} deals in {seconds:.2f} s = {count / seconds:,.0f} deals/s"
            f" (CPU {cpu:.2f} s)"
        )
    print(
        f"   {'list over HTTP':<22}: {listed:,} deals in {listing:.2f} s"
        f" = {listed / listing:,.0f} deals/s"
    )
    print(
        f"   the Core baseline includes the API run's {len(extra[0]):,} reminders and "
        f"{len(extra[1]):,} outbox rows"
    )
    print(
        f"   throughput, share of Core's (target >= 0.5x): wall {core / upsert:.2f}x,"
        f" CPU {core_cpu / upsert_cpu:.2f}x"
    )
    figures["ratio"] = upsert / core
    figures["cpu_share"] = core_cpu / upsert_cpu
    return figures


if __name__ == "__main__":
    main()
