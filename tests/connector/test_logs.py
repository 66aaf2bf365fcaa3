"""Logs an operator can read: one format, structured fields, and never a secret."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from connector import logs
from connector.settings import load_settings
from sandbox.config import DEMO_CLIENT_SECRET
from tests.connector.conftest import _free_port


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _capture(fmt: str, restore_root: None) -> io.StringIO:
    stream = io.StringIO()
    os.environ.pop("DEALBRIDGE_LOG_FORMAT", None)
    settings = load_settings(
        {"log_level": "DEBUG", "log_format": fmt, "webhook_secret": "whsec-0123456789abcdef"},
        env_file=False,
    )
    logs.configure(settings, stream=stream)
    return stream


def test_json_is_one_object_a_line_with_the_fields(restore_root: None) -> None:
    stream = _capture("json", restore_root)
    log = logging.getLogger("connector.meetings.sync")
    log.info("sync round ok", extra={"mailbox": "ann@contoso.com", "logged": 2, "skipped": {}})
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        log.exception("job failed", extra={"job": "meetings"})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "sync round ok"
    assert first["level"] == "INFO"
    assert first["logger"] == "connector.meetings.sync"
    assert (first["mailbox"], first["logged"], first["skipped"]) == ("ann@contoso.com", 2, {})
    assert second["job"] == "meetings"
    assert "ValueError: boom" in second["exception"]


def test_text_appends_the_fields_as_key_value(restore_root: None) -> None:
    stream = _capture("text", restore_root)
    logging.getLogger("connector.outbox").info(
        "delivery delivered", extra={"kind": "calendar", "key": "rem:1", "attempt": 1}
    )
    line = stream.getvalue().strip()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO connector.outbox: ", line)
    assert line.endswith("delivery delivered kind=calendar key=rem:1 attempt=1")


def test_secrets_and_tokens_are_masked_whoever_logs_them(restore_root: None) -> None:
    stream = _capture("text", restore_root)
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    key = "dbk_0a1b2c3d_Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"
    other = logging.getLogger("urllib3.anything")
    other.warning("sent Authorization: Bearer %s with key %s", jwt, key)
    other.warning("body client_secret=s3cr3t-value&grant_type=client_credentials")
    other.warning("signed with whsec-0123456789abcdef")
    text = stream.getvalue()
    for secret in (jwt, "Zm9vYmFyYmF6", "s3cr3t-value", "whsec-0123456789abcdef"):
        assert secret not in text
    assert "dbk_0a1b2c3d_***" in text  # the public prefix stays: it names the key


def test_the_database_password_is_masked() -> None:
    url = "postgresql+psycopg://dealbridge:hunter2-pw@db.internal:5432/dealbridge"
    assert logs.masked_url(url) == "postgresql+psycopg://dealbridge:***@db.internal:5432/dealbridge"
    assert logs.masked_url("sqlite:////var/lib/db.sqlite") == "sqlite:////var/lib/db.sqlite"


# ---- the demo, as a process: its whole log at DEBUG, scanned for every secret ---------------


def _wait_for(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_a_demo_run_logs_readable_json_with_no_secret(tmp_path: Path) -> None:
    port, sandbox_port, crm_port = _free_port(), _free_port(), _free_port()
    api_key = "demo-api-key-" + "k" * 24
    webhook_secret = "demo-webhook-secret-" + "w" * 16
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "DEALBRIDGE_LOG_LEVEL": "DEBUG",
        "DEALBRIDGE_LOG_FORMAT": "json",
        "DEALBRIDGE_API_KEY": api_key,
        "DEALBRIDGE_WEBHOOK_URL": f"http://127.0.0.1:{crm_port}/hooks",  # nobody listens
        "DEALBRIDGE_WEBHOOK_SECRET": webhook_secret,
    }
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout.open("w") as out, stderr.open("w") as err:
        demo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "connector",
                "demo",
                "--port",
                str(port),
                "--sandbox-port",
                str(sandbox_port),
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=err,
        )
        try:
            assert _wait_for(lambda: "Serving." in stdout.read_text(), 180), stderr.read_text()
            base = f"http://127.0.0.1:{port}"
            auth = {"Authorization": f"Bearer {api_key}"}
            moved = requests.post(
                f"{base}/api/v1/deals/OPP-1001/stage",
                json={"stage": "proposal"},
                headers=auth,
                timeout=30,
            )
            assert moved.status_code < 500, moved.text
            requests.get(f"{base}/api/v1/deals", headers=auth, timeout=30).raise_for_status()
            # the jobs run: the outbox drains (webhooks fail: nobody listens), cards go out
            assert _wait_for(lambda: '"job outbox done"' in stderr.read_text(), 30)
            at_rest = _copy_databases(tmp_path, tmp_path / "at-rest")  # the WAL while it lives
        finally:
            demo.send_signal(signal.SIGTERM)
            demo.wait(timeout=30)
    log = stderr.read_text()
    records = []
    for line in log.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a log line that is not one JSON object: {line[:200]!r}")
    messages = [r["message"] for r in records]
    start = next(r for r in records if r["message"].startswith("dealbridge "))
    assert start["role"] == "leader"
    assert start["database"].startswith("sqlite:///")
    assert start["public_url"] == f"http://127.0.0.1:{port}"
    rounds = [r for r in records if r["message"].startswith("sync round")]
    assert rounds
    assert {"mailbox", "events", "logged", "skipped", "duration_s"} <= set(rounds[0])
    deliveries = [r for r in records if r["message"].startswith("delivery ")]
    assert {"kind", "key", "status", "attempt"} <= set(deliveries[0])
    assert any(m.startswith("job ") for m in messages)
    for secret in (DEMO_CLIENT_SECRET, api_key, webhook_secret):
        assert secret not in log
    printed_keys = re.findall(r"dbk_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}", stdout.read_text())
    for key in printed_keys:
        assert key not in log
    assert not re.search(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.", log), "a token is logged"

    # ---- at rest: the SQLite file and its WAL, as they were while running and after ----
    at_rest += _copy_databases(tmp_path, tmp_path / "after")
    assert any(p.name.endswith(".db") for p in at_rest), sorted(tmp_path.rglob("*"))
    secrets = {
        "the client secret": DEMO_CLIENT_SECRET,
        "the API key": api_key,
        "the webhook secret": webhook_secret,
        **{f"printed key {n}": key for n, key in enumerate(printed_keys)},
    }
    for path in at_rest:
        raw = path.read_bytes()
        for what, secret in secrets.items():
            assert secret.encode() not in raw, f"{what} is stored in {path.name}"
        assert not re.search(rb"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.", raw), (
            f"a token (an access or bot token) is stored in {path.name}"
        )
    # ---- the demo's own output: the keys it prints once, never a secret it was given ----
    printed = stdout.read_text()
    for secret in (api_key, webhook_secret):
        assert secret not in printed
    if DEMO_CLIENT_SECRET in printed:  # the sandbox's own demo secret, if shown, says so
        line = next(line for line in printed.splitlines() if DEMO_CLIENT_SECRET in line)
        assert "sandbox" in line.lower() or "demo" in line.lower(), line


def _copy_databases(folder: Path, into: Path) -> list[Path]:
    """Copies of every SQLite file (and -wal, -shm) under ``folder``, byte for byte."""
    into.mkdir(exist_ok=True)
    copies = []
    for path in sorted(folder.rglob("*.db*")):
        if into in path.parents or path.parent.name in {"at-rest", "after"}:
            continue
        if path.suffix in {".db", ".db-wal", ".db-shm"} or path.name.endswith(
            (".db-wal", ".db-shm")
        ):
            target = into / f"{len(copies)}-{path.name}"
            shutil.copyfile(path, target)
            copies.append(target)
    return copies
