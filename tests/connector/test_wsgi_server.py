"""Healthy must mean working under any WSGI server (issue 14): served by ``waitress-serve``
(or gunicorn) the app runs no scheduler and no worker. The process says so, loudly and once,
and ``/readyz`` fails naming ``leader`` while no leader has been seen (docs/deploy.md, "Under
gunicorn or waitress"). gunicorn is not a dependency; ``waitress-serve --call`` is the same
factory in a foreign server.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.connector.conftest import _free_port
from tests.databases import Template

SAYS = "this process serves the web app only"


def test_a_foreign_wsgi_server_says_once_that_deliveries_need_a_worker(
    tmp_path: Path, migrated_template: Template
) -> None:
    serve = shutil.which("waitress-serve") or str(Path(sys.executable).parent / "waitress-serve")
    if not Path(serve).exists():
        pytest.skip("waitress-serve is not installed")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DEALBRIDGE_")},
        "PYTHONPATH": os.pathsep.join(sys.path),
        "DEALBRIDGE_DATABASE_URL": migrated_template.fresh(tmp_path / "web.db"),
        "DEALBRIDGE_INSTANCE_PATH": str(tmp_path),
        "DEALBRIDGE_AUTO_MIGRATE": "false",
        "DEALBRIDGE_REMINDER_CHANNELS": "[]",
    }
    log = tmp_path / "web.log"
    with log.open("w") as out:
        web = subprocess.Popen(
            [
                serve,
                "--listen",
                f"127.0.0.1:{port}",
                "--threads",
                "2",
                "--call",
                "connector.app:create_app",
            ],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline and answer is None:
            try:
                answer = requests.get(f"{base}/readyz", timeout=5)
            except requests.ConnectionError:
                assert web.poll() is None, log.read_text()
                time.sleep(0.2)
        assert answer is not None, log.read_text()
        assert answer.status_code == 503
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert "leader: no scheduler leader ever seen" in answer.json()["detail"]
        for _ in range(3):
            requests.get(f"{base}/healthz", timeout=5)
        time.sleep(0.5)
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=20)
    text = log.read_text()
    assert text.count(SAYS) == 1, text
    line = next(line for line in text.splitlines() if SAYS in line)
    assert "dealbridge worker" in line
