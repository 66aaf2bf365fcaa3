"""`dealbridge import deals`: the dry run checks what the import checks, the columns are
documented with an example file, and an import coexists with a running service on SQLite."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from connector.admin.cli import cli
from connector.store.db import get_store
from connector.store.models import ApiKey, Deal

ROOT = Path(__file__).resolve().parents[2]
HEADER = "id,title,pipeline,stage,owner,amount,currency\n"


@pytest.fixture
def env(app: Flask, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "DEALBRIDGE_DATABASE_URL": app.extensions["dealbridge.settings"].effective_database_url,
        "DEALBRIDGE_SCHEDULER_ENABLED": "false",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def _refusals(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith("✗")]


def test_a_dry_run_refuses_what_the_import_refuses(
    app: Flask, env: dict[str, str], tmp_path: Path
) -> None:
    file = tmp_path / "deals.csv"
    file.write_text(
        HEADER + "A1,Good,classic5,negotiation,ann@contoso.com,100,EUR\n"
        "A2,Bad stage,classic5,limbo,,,\n"
        "A3,Bad pipeline,nosuch,negotiation,,,\n"
    )
    dry = CliRunner().invoke(cli, ["import", "deals", str(file), "--dry-run"])
    assert "1 valid, 2 invalid" in dry.output, dry.output
    assert dry.exit_code == 1
    with get_store(app).session() as session:
        assert session.scalar(select(func.count()).select_from(Deal)) == 0
    real = CliRunner().invoke(cli, ["import", "deals", str(file)])
    assert "1 created" in real.output, real.output
    assert _refusals(dry.output) == _refusals(real.output)
    assert any("limbo" in line and "line 3" in line for line in _refusals(dry.output))
    assert any("nosuch" in line and "line 4" in line for line in _refusals(dry.output))


def test_an_unknown_column_is_reported_once_for_the_header(
    app: Flask, env: dict[str, str], tmp_path: Path
) -> None:
    file = tmp_path / "deals.csv"
    rows = "".join(f"U{i},Deal {i},classic5,negotiation,,,,blue\n" for i in range(5))
    file.write_text(HEADER.strip() + ",colour\n" + rows)
    for args in (["--dry-run"], []):
        result = CliRunner().invoke(cli, ["import", "deals", str(file), *args])
        assert result.exit_code == 1
        assert result.output.count("colour") == 1, result.output
        assert "header" in result.output
    with get_store(app).session() as session:
        assert session.scalar(select(func.count()).select_from(Deal)) == 0


def test_the_documented_example_file_imports(app: Flask, env: dict[str, str]) -> None:
    example = ROOT / "docs" / "examples" / "deals.csv"
    result = CliRunner().invoke(cli, ["import", "deals", str(example)])
    assert result.exit_code == 0, result.output
    assert "0 rows refused" in result.output
    with open(example, newline="") as handle:
        header = next(csv.reader(handle))
    api_doc = (ROOT / "docs" / "api.md").read_text()
    for column in header:
        assert f"`{column}`" in api_doc, f"column {column} is not documented in docs/api.md"
    assert "docs/examples/deals.csv" in api_doc


@pytest.mark.sqlite_only(
    "SQLite's one writer at a time is what an import must share; PostgreSQL locks rows"
)
@pytest.mark.timeout(600)
def test_an_import_coexists_with_a_service_writing_to_the_same_sqlite_file(
    app: Flask, env: dict[str, str], tmp_path: Path
) -> None:
    rows = 5_000
    file = tmp_path / "many.csv"
    with file.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "title", "pipeline", "stage", "owner", "amount", "currency"])
        stages = ["lead_generation", "first_interaction", "negotiation", "deal_closing"]
        for i in range(rows):
            owner = f"rep{i % 7}@contoso.com"
            writer.writerow([f"M{i}", f"Deal {i}", "classic5", stages[i % 4], owner, i, "EUR"])
    store = get_store(app)
    # The service's own connection, waiting at most 3 s for the write lock (the store waits
    # 30 s): an import that starves other writers shows here as "database is locked".
    service_engine = create_engine(store.url, connect_args={"timeout": 3})
    stop = threading.Event()
    failures: list[BaseException] = []
    written = 0

    def service() -> None:  # what a running `serve` does meanwhile: short write transactions
        nonlocal written
        while not stop.is_set():
            try:
                with Session(service_engine) as session, session.begin():
                    session.add(
                        ApiKey(
                            name="svc", prefix=f"p{written}", key_hash=f"h{written}", scopes="read"
                        )
                    )
                    session.flush()
                    session.scalar(select(func.count()).select_from(Deal))
                written += 1
            except Exception as exc:  # any failure of the service's write is the finding
                failures.append(exc)
            stop.wait(0.01)

    thread = threading.Thread(target=service)
    thread.start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "connector", "import", "deals", str(file)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        stop.set()
        thread.join()
        service_engine.dispose()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"{rows} created" in result.stdout
    assert [str(f).splitlines()[0] for f in failures] == []
    assert written > 0
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Deal)) == rows
    again = CliRunner().invoke(cli, ["import", "deals", str(file)])
    assert f"{rows} unchanged" in again.output  # resumable: a second run changes nothing
