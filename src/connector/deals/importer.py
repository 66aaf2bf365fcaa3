"""Deal import from CSV or JSON: plan (every check, against the database), then apply.

The columns are documented in docs/api.md ("Importing deals"), with docs/examples/deals.csv.
The plan is the one validation path: shape (the bulk API's model), a deal twice in the file,
the pipeline and its stage (``check_deal``, as the bulk API does). ``--dry-run`` prints the
plan; the import applies the valid rows.

Resumable by design, not one transaction: the rows go in batches (:data:`BATCH_ROWS`,
:data:`BATCH_SECONDS`), each its own short transaction that takes SQLite's write lock at its
start (``BEGIN IMMEDIATE``, waiting for a running service's writes instead of failing with
"database is locked"), with a pause between batches so a service on the same file writes
between them (never starved). Every row is an idempotent upsert by its id: if an import
stops partway, the batches before stay and running the same file again finishes it (rows
already in come back ``unchanged``).
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from flask import Flask
from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from connector.deals.changes import check_deal, upsert_deal
from connector.deals.models import BulkDeal, DealIn
from connector.errors import DealBridgeError
from connector.store.db import Store, get_store
from connector.store.models import Pipeline, utcnow

BATCH_ROWS = 250
BATCH_SECONDS = 1.0
"""A batch ends at 250 rows or after a second, whichever comes first: however loaded the
machine, a running service's writes wait about a second, far below its 30 s busy timeout."""
PAUSE_SECONDS = 0.12
"""Between batches the import lets go of the write lock this long. SQLite has no queue for
its lock: a waiting writer polls (at most every 100 ms), and an import starting its next
batch at once would win nearly every time, starving the service into "database is locked"
after its busy timeout."""

_CONTACT = re.compile(r"^\s*(?P<name>[^<]*?)\s*<(?P<email>[^>]+)>\s*$")

_DIRECT = (
    "id",
    "title",
    "pipeline",
    "stage",
    "status",
    "owner",
    "amount",
    "currency",
    "expected_close_date",
    "crm_url",
    "lead_source",
    "product",
)
COLUMNS = (*_DIRECT, "account_name", "account_domains", "contacts")
"""The CSV columns, in the documented order (docs/api.md)."""


class ImportRefused(click.ClickException):
    """The file as a whole cannot be imported (its header, its format); nothing was written."""


@dataclass
class ImportReport:
    valid: list[tuple[int, str, DealIn]] = field(default_factory=list)
    """(line or item, id, the deal) for each row that passed every check."""
    problems: list[tuple[int, str]] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return len(self.problems)


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        unknown = [name for name in header if name and name not in COLUMNS]
        if unknown:
            raise ImportRefused(
                f"{path.name} header: unknown column{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(u) for u in unknown)}; the columns are {', '.join(COLUMNS)} "
                "(docs/api.md, Importing deals). Nothing was imported."
            )
        for row in reader:
            yield reader.line_num, _from_csv(row)


def _from_csv(row: dict[str, str | None]) -> dict[str, Any]:
    clean = {k.strip(): (v or "").strip() for k, v in row.items() if k}
    deal: dict[str, Any] = {k: v for k, v in clean.items() if v and k in _DIRECT}
    name, domains = clean.get("account_name"), clean.get("account_domains")
    if name or domains:
        deal["account"] = {
            "name": name or None,
            "domains": [d.strip() for d in (domains or "").split(";") if d.strip()],
        }
    contacts = []
    for part in (clean.get("contacts") or "").split(";"):
        if not part.strip():
            continue
        match = _CONTACT.match(part)
        contact = {"name": match["name"] or None, "email": match["email"]} if match else None
        contacts.append(contact or {"email": part.strip()})
    if contacts:
        deal["contacts"] = contacts
    return deal


def _json_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    items = data.get("deals") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ImportRefused('a JSON import is a list of deals or {"deals": [...]}')
    for index, item in enumerate(items, start=1):
        yield index, item if isinstance(item, dict) else {"_": item}


def plan_import(path: Path, session: Session, *, default_pipeline: str) -> ImportReport:
    """Every check the import makes, row by row; nothing is written."""
    report = ImportReport()
    if path.suffix.lower() == ".json":
        rows, unit = _json_rows(path), "item"
    elif path.suffix.lower() == ".csv":
        rows, unit = _csv_rows(path), "line"
    else:
        raise ImportRefused("the file must end in .csv or .json")
    pipelines = {p.id: p for p in session.scalars(select(Pipeline))}
    seen: dict[str, int] = {}
    try:
        for line, raw in rows:
            try:
                item = data = BulkDeal.model_validate(raw)  # a BulkDeal is a DealIn
            except ValidationError as exc:
                reasons = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'row'}: "
                    f"{str(e['msg']).removeprefix('Value error, ')}"
                    for e in exc.errors(include_url=False)
                )
                report.problems.append((line, f"{unit} {line}: {reasons}"))
                continue
            if item.id in seen:
                report.problems.append(
                    (line, f"{unit} {line}: id {item.id!r} already on {unit} {seen[item.id]}")
                )
                continue
            try:
                check_deal(pipelines, data, default_pipeline)
            except DealBridgeError as exc:
                report.problems.append((line, f"{unit} {line}: {exc.detail}"))
                continue
            seen[item.id] = line
            report.valid.append((line, item.id, data))
    except (ValueError, csv.Error, UnicodeDecodeError) as exc:
        raise ImportRefused(f"cannot read {path.name}: {exc}") from exc
    return report


def _write_batch(store: Store) -> Session:
    """A session whose transaction holds the write lock from its start (SQLite), so it waits
    (the busy timeout) for other writers instead of failing when it first writes."""
    session = store.sessions()
    if store.engine.dialect.name == "sqlite":
        session.execute(text("BEGIN IMMEDIATE"))
    return session


def import_file(
    app: Flask,
    path: Path,
    *,
    default_pipeline: str,
    dry_run: bool = False,
    echo: Callable[[str], None] = click.echo,
) -> ImportReport:
    """Plan, then apply the valid rows in batches (see the module's docstring)."""
    store = get_store(app)
    with store.sessions() as session:
        report = plan_import(path, session, default_pipeline=default_pipeline)
    for _, message in sorted(report.problems):
        echo(f"  ✗ {message}")
    if dry_run:
        echo(f"dry run: {len(report.valid)} valid, {report.failed} invalid; nothing written")
        return report
    now = utcnow()
    done, planned_problems = 0, len(report.problems)
    with (
        app.app_context(),
        click.progressbar(length=len(report.valid), label="Importing deals", file=None) as bar,
    ):
        while done < len(report.valid):
            try:
                applied = _apply(store, report.valid[done:], report, path, now, default_pipeline)
            except Exception as exc:  # the database refused the batch: say what stays, resume
                first = report.valid[done][0]
                raise click.ClickException(
                    f"the import stopped at line {first}: {exc}\n"
                    f"{done} rows before it are imported and stay. Run the same command again "
                    "to finish: rows already imported come back unchanged."
                ) from exc
            done += applied
            bar.update(applied)
            if done < len(report.valid):
                time.sleep(PAUSE_SECONDS)
    for _, message in report.problems[planned_problems:]:
        echo(f"  ✗ {message}")
    summary = ", ".join(f"{n} {k}" for k, n in sorted(report.outcomes.items())) or "nothing"
    echo(f"imported: {summary}; {report.failed} rows refused")
    return report


def _apply(
    store: Store,
    rows: list[tuple[int, str, DealIn]],
    report: ImportReport,
    path: Path,
    now: Any,
    default_pipeline: str,
) -> int:
    """One batch from the start of ``rows``, committed: how many rows it took."""
    deadline = time.monotonic() + BATCH_SECONDS
    applied = 0
    outcomes: dict[str, int] = {}
    problems: list[tuple[int, str]] = []
    pipelines: dict[str, Pipeline] = {}
    with _write_batch(store) as session:
        for line, crm_id, data in rows:
            applied += 1
            try:
                _, outcome = upsert_deal(
                    session,
                    crm_id,
                    data,
                    actor=f"import:{path.name}",
                    now=now,
                    default_pipeline=default_pipeline,
                    pipelines=pipelines,
                )
            except DealBridgeError as exc:  # a pipeline changed since the plan
                problems.append((line, f"line {line}: {exc.detail}"))
                continue
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if applied >= BATCH_ROWS or time.monotonic() >= deadline:
                break
        session.commit()
    for name, count in outcomes.items():
        report.outcomes[name] = report.outcomes.get(name, 0) + count
    report.problems.extend(problems)
    return applied
