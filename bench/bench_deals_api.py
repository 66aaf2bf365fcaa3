"""Bulk upsert and list of 10,000 deals through the HTTP API, against plain SQLAlchemy Core.

Baseline, measured in the same run: inserting the same rows (deals, contacts, domains, the
first stage change, and the reminders and outbox rows the API run wrote, copied from its
database) with SQLAlchemy Core executemany on a fresh, migrated database.

The two alternate, a batch of 1,000 each, so that a drift in the machine's speed (a shared
host) falls on both. Both sides get their input ready before the clock starts: the baseline
its rows, the API run its request bodies, encoded (a CRM's client builds them, not
DealBridge). Each side is timed in wall time and in CPU time (this process: the client and
the server's threads for the API run); the CPU ratio does not move with the disk's fsync
times, the wall ratio does.
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
Timed = tuple[float, float]  # wall seconds, CPU seconds


def written_since(app: Any, deal_ids: set[str], outbox_after: int) -> tuple[Rows, Rows, int]:
    """The reminders of these deals (with the deal's CRM id for ``deal_id``) and the outbox
    rows after id ``outbox_after`` in the API run's database, and the last outbox id."""
    from sqlalchemy import select

    from connector.store.db import get_store
    from connector.store.models import Deal, OutboxItem, Reminder

    with get_store(app).engine.connect() as connection:
        crm = {
            i: crm_id
            for i, crm_id in connection.execute(select(Deal.id, Deal.crm_id))
            if crm_id in deal_ids
        }
        reminders = [
            {k: v for k, v in row._mapping.items() if k != "id"} | {"deal_id": crm[row.deal_id]}
            for row in connection.execute(select(Reminder.__table__))
            if row.deal_id in crm
        ]
        outbox = [
            dict(row._mapping)
            for row in connection.execute(
                select(OutboxItem.__table__).where(OutboxItem.id > outbox_after)
            )
        ]
    last = max((row.pop("id") for row in outbox), default=outbox_after)
    return reminders, outbox, last


class CoreBaseline:
    """The same rows inserted with SQLAlchemy Core ``executemany`` into a fresh, migrated
    database, one transaction a batch as the API commits one a call."""

    def __init__(self, folder: Path) -> None:
        from connector.store.db import get_store

        self.engine = get_store(fresh_app(folder)).engine
        self.now = dt.datetime.now(dt.UTC)

    def insert(self, chunk: Rows, reminders: Rows, outbox: Rows) -> None:
        from sqlalchemy import insert

        from connector.store.models import (
            Deal,
            DealContact,
            DealDomain,
            OutboxItem,
            Reminder,
            StageChange,
        )

        now = self.now
        with self.engine.begin() as connection:
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
            ids_of = {r["id"]: i for i, r in zip(ids, chunk, strict=True)}
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
            connection.execute(
                insert(Reminder), [r | {"deal_id": ids_of[r["deal_id"]]} for r in reminders]
            )
            connection.execute(insert(OutboxItem), outbox)


def run(api_dir: Path, core_dir: Path) -> tuple[Timed, Timed, float, int, tuple[int, int]]:
    """Each batch through the API, then the same rows with Core, alternately: a machine whose
    speed drifts (a shared host) drifts under both. Returns the API's and Core's wall and CPU
    seconds, the listing's seconds and count, and the reminders and outbox rows counted."""
    app = fresh_app(api_dir)
    core = CoreBaseline(core_dir)
    headers = {"Authorization": "Bearer bench-key-0123456789", "Content-Type": "application/json"}
    batches = [
        [deal(i) for i in range(offset, offset + BATCH)] for offset in range(0, DEALS, BATCH)
    ]
    bodies = [json.dumps({"deals": batch}).encode() for batch in batches]
    api_wall = api_cpu = core_wall = core_cpu = 0.0
    outbox_after, counts = 0, [0, 0]
    with running_app(app) as base, requests.Session() as http:
        for batch, body in zip(batches, bodies, strict=True):
            started, cpu = time.perf_counter(), time.process_time()
            answer = http.post(f"{base}/api/v1/deals:bulk", data=body, headers=headers, timeout=120)
            answer.raise_for_status()
            api_wall += time.perf_counter() - started
            api_cpu += time.process_time() - cpu
            assert answer.json()["created"] == BATCH, answer.json()
            reminders, outbox, outbox_after = written_since(
                app, {d["id"] for d in batch}, outbox_after
            )
            counts[0] += len(reminders)
            counts[1] += len(outbox)
            started, cpu = time.perf_counter(), time.process_time()
            core.insert(batch, reminders, outbox)
            core_wall += time.perf_counter() - started
            core_cpu += time.process_time() - cpu
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
    return (api_wall, api_cpu), (core_wall, core_cpu), listing, seen, (counts[0], counts[1])


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as api_dir, tempfile.TemporaryDirectory() as core_dir:
        (upsert, upsert_cpu), (core, core_cpu), listing, listed, written = run(
            Path(api_dir), Path(core_dir)
        )
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
        f"   the Core baseline includes the API run's {written[0]:,} reminders and "
        f"{written[1]:,} outbox rows; the two alternate batch by batch"
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
