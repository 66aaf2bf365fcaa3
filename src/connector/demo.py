"""``dealbridge demo``: the whole product on a fresh SQLite file and the sandbox tenant."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from flask import Flask

from connector.api.schemas import DealIn
from connector.deals import DealEvents, log_interaction, move_stage, upsert_deal
from connector.keys import create_key
from connector.store.db import get_store
from connector.store.models import Rep

DEMO_DIR = Path("instance") / "demo"
DEMO_DOMAIN = "contoso.com"


@dataclass(frozen=True)
class DemoRep:
    email: str
    name: str
    zone: str


REPS = [
    DemoRep(f"ann.lee@{DEMO_DOMAIN}", "Ann Lee", "Europe/Berlin"),
    DemoRep(f"raj.patel@{DEMO_DOMAIN}", "Raj Patel", "America/New_York"),
    DemoRep(f"mia.chen@{DEMO_DOMAIN}", "Mia Chen", "America/Los_Angeles"),
]

# (id, title, account, domain, contact, stage, amount, days in stage, owner index)
DEALS: list[tuple[str, str, str, str, str, str, int, int, int]] = [
    (
        "OPP-1001",
        "Fabrikam ERP rollout",
        "Fabrikam",
        "fabrikam.com",
        "Dana Ruiz",
        "negotiation",
        84000,
        6,
        0,
    ),
    (
        "OPP-1002",
        "Northwind fleet telematics",
        "Northwind Traders",
        "northwindtraders.com",
        "Omar Haddad",
        "solution_presentation",
        42000,
        3,
        1,
    ),
    (
        "OPP-1003",
        "Tailspin pilot training seats",
        "Tailspin Toys",
        "tailspintoys.com",
        "Grace Kim",
        "first_interaction",
        18500,
        1,
        2,
    ),
    (
        "OPP-1004",
        "Adventure Works data platform",
        "Adventure Works",
        "adventure-works.com",
        "Liam O'Neill",
        "deal_closing",
        156000,
        2,
        0,
    ),
    (
        "OPP-1005",
        "Woodgrove Bank branch kiosks",
        "Woodgrove Bank",
        "woodgrovebank.com",
        "Priya Nair",
        "negotiation",
        97000,
        12,
        1,
    ),
    (
        "OPP-1006",
        "Litware security audit",
        "Litware",
        "litware.com",
        "Tom Becker",
        "lead_generation",
        12000,
        4,
        2,
    ),
    (
        "OPP-1007",
        "Proseware support renewal",
        "Proseware",
        "proseware.com",
        "Sara Lind",
        "deal_closing",
        23000,
        9,
        0,
    ),
    (
        "OPP-1008",
        "Wide World Importers EDI",
        "Wide World Importers",
        "wideworldimporters.com",
        "Ken Mori",
        "solution_presentation",
        38000,
        8,
        1,
    ),
    (
        "OPP-1009",
        "Contoso Pharma LIMS",
        "Contoso Pharmaceuticals",
        "contosopharma.com",
        "Eva Novak",
        "first_interaction",
        64000,
        2,
        2,
    ),
    (
        "OPP-1010",
        "Alpine Ski House booking",
        "Alpine Ski House",
        "alpineskihouse.com",
        "Jonas Berg",
        "negotiation",
        27500,
        15,
        0,
    ),
    (
        "OPP-1011",
        "Blue Yonder Airlines crew app",
        "Blue Yonder Airlines",
        "blueyonderairlines.com",
        "Mei Tan",
        "lead_generation",
        51000,
        1,
        1,
    ),
    (
        "OPP-1012",
        "Coho Winery e-commerce",
        "Coho Winery",
        "cohowinery.com",
        "Luca Rossi",
        "solution_presentation",
        14800,
        5,
        2,
    ),
    (
        "OPP-1013",
        "Fourth Coffee POS upgrade",
        "Fourth Coffee",
        "fourthcoffee.com",
        "Ana Souza",
        "won",
        21000,
        20,
        0,
    ),
    (
        "OPP-1014",
        "Graphic Design Institute licences",
        "Graphic Design Institute",
        "graphicdesigninstitute.com",
        "Noah Fischer",
        "lost",
        9000,
        30,
        1,
    ),
    (
        "OPP-1015",
        "Humongous Insurance claims AI",
        "Humongous Insurance",
        "humongousinsurance.com",
        "Ivy Clarke",
        "negotiation",
        132000,
        4,
        2,
    ),
    (
        "OPP-1016",
        "Lucerne Publishing archive",
        "Lucerne Publishing",
        "lucernepublishing.com",
        "Paul Weber",
        "first_interaction",
        16000,
        7,
        0,
    ),
    (
        "OPP-1017",
        "Margie's Travel CRM sync",
        "Margie's Travel",
        "margiestravel.com",
        "Rosa Diaz",
        "lead_generation",
        8800,
        2,
        1,
    ),
    (
        "OPP-1018",
        "Nod Publishers print hub",
        "Nod Publishers",
        "nodpublishers.com",
        "Sven Olsen",
        "deal_closing",
        45500,
        1,
        2,
    ),
    (
        "OPP-1019",
        "School of Fine Art portal",
        "School of Fine Art",
        "fineartschool.net",
        "Chloe Martin",
        "solution_presentation",
        19900,
        11,
        0,
    ),
    (
        "OPP-1020",
        "Trey Research lab sensors",
        "Trey Research",
        "treyresearch.net",
        "Yusuf Ali",
        "won",
        73000,
        14,
        1,
    ),
]
_PATH = [
    "lead_generation",
    "first_interaction",
    "solution_presentation",
    "negotiation",
    "deal_closing",
]


def seed(app: Flask, now: dt.datetime, api_key: str | None) -> str:
    """Reps, deals with history and a few logged calls; returns the API key to use."""
    events: DealEvents = app.extensions["dealbridge.deal_events"]
    with app.app_context(), get_store(app).session() as session:
        for rep in REPS:
            session.add(
                Rep(
                    email=rep.email, display_name=rep.name, time_zone=rep.zone, holiday_country=None
                )
            )
        session.flush()
        for crm_id, title, account, domain, contact, stage, amount, days, owner in DEALS:
            first = dt.timedelta(days=days + 10)
            body = DealIn(
                title=title,
                pipeline="classic5",
                stage="lead_generation",
                owner=REPS[owner].email,
                account={"name": account, "domains": [domain]},
                contacts=[{"name": contact, "email": _address(contact, domain)}],
                amount=Decimal(amount),
                currency="EUR" if owner == 0 else "USD",
                expected_close_date=(now + dt.timedelta(days=30 - days)).date(),
                crm_url=f"https://crm.example.com/opportunities/{crm_id}",
                lead_source=["website", "referral", "event"][int(crm_id[-1]) % 3],
            )
            deal, _ = upsert_deal(
                session, crm_id, body, actor="demo", now=now - first, default_pipeline="classic5"
            )
            target = stage if stage in _PATH else "deal_closing"
            steps = _PATH[1 : _PATH.index(target) + 1] + ([stage] if stage not in _PATH else [])
            for i, step in enumerate(steps, start=1):
                when = now - first + (first - dt.timedelta(days=days)) * i / len(steps)
                move_stage(session, deal, step, actor="demo", now=when, events=events)
            if days > 5 and stage in _PATH:
                from connector.api.schemas import InteractionIn

                call = InteractionIn(
                    kind="call",
                    subject=f"Call with {contact}",
                    text="Walked through pricing and next steps.",
                    occurred_at=now - dt.timedelta(days=days - 1),
                    by=REPS[owner].email,
                )
                log_interaction(session, deal, call, actor="demo", source="demo", now=now)
        if api_key:
            return api_key
        return create_key(session, "demo", "write")


def _address(name: str, domain: str) -> str:
    first, _, last = name.lower().replace("'", "").partition(" ")
    return f"{first}.{last}@{domain}" if last else f"{first}@{domain}"


def run_demo(*, port: int, sandbox_port: int, seed_only: bool = False) -> None:
    from connector.app import create_app
    from connector.server import serve_app

    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    DEMO_DIR.mkdir(parents=True)
    env_key = os.environ.get("DEALBRIDGE_API_KEY") or None
    overrides: dict[str, Any] = {
        "instance_path": DEMO_DIR,
        "database_url": "",
        "public_url": f"http://127.0.0.1:{port}",
    }
    app = create_app(overrides)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    key = seed(app, now, env_key)
    base = f"http://127.0.0.1:{port}"
    click.echo("")
    click.echo("DealBridge demo")
    click.echo(f"  API docs      {base}/api/docs")
    click.echo(f"  OpenAPI       {base}/api/openapi.json")
    click.echo(f"  Health        {base}/healthz")
    click.echo(f"  Deals         curl -H 'Authorization: Bearer <key>' {base}/api/v1/deals")
    click.echo(f"  Funnel        {base}/api/v1/analytics/funnel?pipeline=classic5")
    click.echo(f"  Database      {DEMO_DIR / 'dealbridge.db'}")
    click.echo(f"  Seeded        {len(REPS)} reps, {len(DEALS)} deals on the classic5 pipeline")
    click.echo("  API key (write scope):" if not env_key else "  API key: DEALBRIDGE_API_KEY")
    if not env_key:
        click.echo(key)
    if seed_only:
        return
    click.echo("Press Ctrl-C to stop.")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        serve_app(app, host="127.0.0.1", port=port)
    except KeyboardInterrupt:
        click.echo("demo stopped")
