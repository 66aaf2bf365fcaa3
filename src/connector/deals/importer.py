"""Deal import from CSV or JSON: plan (validate every row), then apply in one transaction.

CSV columns: id, title, pipeline, stage, status, owner, account_name, account_domains
(separated by ``;``), contacts (``Name <email>; ...``), amount, currency,
expected_close_date, crm_url, lead_source, product. JSON: a list of deals (or
``{"deals": [...]}``) shaped like the bulk API's items.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from flask import Flask
from pydantic import ValidationError

from connector.deals.changes import upsert_deal
from connector.deals.models import BulkDeal, DealIn
from connector.errors import DealBridgeError
from connector.store.db import get_store
from connector.store.models import utcnow

_CONTACT = re.compile(r"^\s*(?P<name>[^<]*?)\s*<(?P<email>[^>]+)>\s*$")


@dataclass
class ImportReport:
    valid: list[tuple[int, BulkDeal]] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return len(self.problems)


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            line = reader.line_num
            yield line, _from_csv(row)


_DIRECT = {
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
}
_COLUMNS = {*_DIRECT, "account_name", "account_domains", "contacts"}


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
    for column in set(clean) - _COLUMNS:
        deal[column] = clean[column]  # an unknown column: validation names it
    return deal


def _json_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    items = data.get("deals") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise click.ClickException('a JSON import is a list of deals or {"deals": [...]}')
    for index, item in enumerate(items, start=1):
        yield index, item if isinstance(item, dict) else {"_": item}


def plan_import(path: Path) -> ImportReport:
    """Validate every row; nothing is written."""
    report = ImportReport()
    if path.suffix.lower() == ".json":
        rows, unit = _json_rows(path), "item"
    elif path.suffix.lower() == ".csv":
        rows, unit = _csv_rows(path), "line"
    else:
        raise click.ClickException("the file must end in .csv or .json")
    seen: dict[str, int] = {}
    try:
        for line, raw in rows:
            try:
                deal = BulkDeal.model_validate(raw)
            except ValidationError as exc:
                reasons = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'row'}: "
                    f"{str(e['msg']).removeprefix('Value error, ')}"
                    for e in exc.errors(include_url=False)
                )
                report.problems.append((line, f"{unit} {line}: {reasons}"))
                continue
            if deal.id in seen:
                report.problems.append(
                    (line, f"{unit} {line}: id {deal.id!r} already on {unit} {seen[deal.id]}")
                )
                continue
            seen[deal.id] = line
            report.valid.append((line, deal))
    except (ValueError, csv.Error, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {path.name}: {exc}") from exc
    return report


def import_file(
    app: Flask,
    path: Path,
    *,
    default_pipeline: str,
    dry_run: bool = False,
    echo: Callable[[str], None] = click.echo,
) -> ImportReport:
    """Plan, then apply the valid rows in one transaction, with a progress bar."""
    report = plan_import(path)
    now = utcnow()
    pipelines: dict[str, Any] = {}
    if not dry_run and report.valid:
        with (
            app.app_context(),
            get_store(app).session() as session,
            click.progressbar(report.valid, label="Importing deals", file=None) as bar,
        ):
            for line, item in bar:
                try:
                    with session.begin_nested():
                        data = DealIn.model_validate(item.model_dump(exclude={"id"}))
                        _, outcome = upsert_deal(
                            session,
                            item.id,
                            data,
                            actor=f"import:{path.name}",
                            now=now,
                            default_pipeline=default_pipeline,
                            pipelines=pipelines,
                        )
                except DealBridgeError as exc:
                    report.problems.append((line, f"line {line}: {exc.detail}"))
                    continue
                report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
    for _, message in sorted(report.problems):
        echo(f"  ✗ {message}")
    if dry_run:
        echo(f"dry run: {len(report.valid)} valid, {report.failed} invalid; nothing written")
    else:
        done = ", ".join(f"{n} {k}" for k, n in sorted(report.outcomes.items())) or "nothing"
        echo(f"imported: {done}; {report.failed} rows refused")
    return report
