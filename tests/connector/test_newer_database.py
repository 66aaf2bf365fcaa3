"""A database from a newer DealBridge (a revision this code does not know) is refused, on
both databases (issue 14: PostgreSQL's was served and written to): `serve` and `worker` stop
with one line naming the revision, `db upgrade` too, and /readyz says it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from connector.store.db import Store
from tests.connector.conftest import _free_port, make_app
from tests.connector.test_readyz import COMPLETE
from tests.databases import Template

SRC = str(Path(__file__).resolve().parents[2] / "src")
NEWER = "0099_from_the_future"


def _newer(tmp_path: Path, template: Template) -> str:
    url = template.fresh(tmp_path / "newer.db")
    store = Store(url)
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": NEWER})
    store.dispose()
    return url


def _run(url: str, folder: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALBRIDGE_")}
    env.update(
        DEALBRIDGE_DATABASE_URL=url, DEALBRIDGE_INSTANCE_PATH=str(folder), PYTHONPATH=SRC, **extra
    )
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _refused(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if NEWER in line]
    assert len(lines) == 1, result.stderr
    assert "newer" in lines[0]


@pytest.mark.parametrize("command", ["worker", "serve", "db-upgrade"])
def test_a_newer_database_is_refused_with_one_line(
    tmp_path: Path, migrated_template: Template, command: str
) -> None:
    url = _newer(tmp_path, migrated_template)
    m365 = {f"DEALBRIDGE_{k.upper()}": v for k, v in COMPLETE.items()}
    if command == "serve":
        result = _run(url, tmp_path, "serve", "--port", str(_free_port()), **m365)
    elif command == "worker":
        result = _run(url, tmp_path, "worker", **m365)
    else:
        result = _run(url, tmp_path, "db", "upgrade")
    _refused(result)


def test_readyz_names_the_unknown_revision(tmp_path: Path, migrated_template: Template) -> None:
    app = make_app(tmp_path / "x.db", migrated_template, **COMPLETE)
    url = app.extensions["dealbridge.settings"].effective_database_url
    store = Store(url)
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": NEWER})
    store.dispose()
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503
    migrations = {c["name"]: c for c in answer.json["checks"]}["migrations"]
    assert not migrations["ok"]
    assert NEWER in migrations["detail"]
    assert "newer DealBridge" in migrations["detail"]
