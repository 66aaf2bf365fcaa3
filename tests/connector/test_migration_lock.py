"""Migrations under concurrency (issue 14): one upgrade at a time, whatever process runs it.

Two `dealbridge db upgrade` at once on SQLite crashed 1 in 3; two WSGI workers auto-migrating
a fresh database raced. Real subprocesses, on both databases: the second upgrade waits,
saying so, and then finds nothing to do; presets are installed once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from connector.store import locks
from connector.store.db import Store
from connector.store.models import Pipeline
from tests.databases import Template

SRC = str(Path(__file__).resolve().parents[2] / "src")
WAITING = "is upgrading this database; waiting"


def _env(url: str, folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALBRIDGE_")}
    env.update(
        DEALBRIDGE_DATABASE_URL=url,
        DEALBRIDGE_INSTANCE_PATH=str(folder),
        PYTHONPATH=SRC,
    )
    return env


def _upgrade(url: str, folder: Path, name: str) -> tuple[subprocess.Popen[str], Path]:
    err = folder / f"{name}.err"
    with err.open("w") as handle:  # the child has its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "connector", "db", "upgrade"],
            env=_env(url, folder),
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=handle,
            text=True,
        )
    return process, err


def _pipelines(url: str) -> int:
    store = Store(url)
    try:
        with store.session() as session:
            return int(session.scalar(select(func.count()).select_from(Pipeline)) or 0)
    finally:
        store.dispose()


def test_a_second_upgrade_waits_for_the_first_says_so_and_finds_nothing_to_do(
    tmp_path: Path, migrated_template: Template
) -> None:
    url = migrated_template.empty(tmp_path / "fresh.db")
    store = Store(url)
    try:
        with locks.hold(store, "migrations", "schema") as held:  # an upgrade under way
            assert held
            runs = [_upgrade(url, tmp_path, name) for name in ("one", "two")]
            for _process, err in runs:
                for _ in range(600):  # bounded: each says it waits
                    if WAITING in err.read_text():
                        break
                    time.sleep(0.1)
                assert WAITING in err.read_text()
            assert all(process.poll() is None for process, _ in runs)  # both still wait
        outs = [process.communicate(timeout=120)[0] for process, _ in runs]
        assert [process.returncode for process, _ in runs] == [0, 0], outs
        assert sum("nothing left to do" in out for out in outs) == 1, outs
        assert store.is_current()
    finally:
        store.dispose()


def test_two_upgrades_at_once_on_a_fresh_database_both_succeed_presets_once(
    tmp_path: Path, migrated_template: Template
) -> None:
    counts = []
    for attempt in range(3):
        folder = tmp_path / f"try{attempt}"
        folder.mkdir()
        url = migrated_template.empty(folder / "fresh.db")
        runs = [_upgrade(url, folder, name) for name in ("one", "two")]
        for process, err in runs:
            process.communicate(timeout=180)
            assert process.returncode == 0, err.read_text()[-2000:]
        counts.append(_pipelines(url))
    assert len(set(counts)) == 1
    assert counts[0] > 0


def test_two_workers_migrating_at_start_on_a_fresh_database_both_boot(
    tmp_path: Path, migrated_template: Template
) -> None:
    url = migrated_template.empty(tmp_path / "fresh.db")
    boot = (
        "from connector.app import create_app\n"
        "app = create_app({'auto_migrate': True, 'scheduler_enabled': False})\n"
        "print('booted')\n"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", boot],
            env=_env(url, tmp_path),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [worker.communicate(timeout=180) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in outs]
    assert all("booted" in out for out, _ in outs)
    store = Store(url)
    try:
        assert store.is_current()
    finally:
        store.dispose()
