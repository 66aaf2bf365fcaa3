"""`dealbridge demo` twice: the second checks the ports and the folder before touching
anything, so the running demo keeps its database; the demo prints what points the CLI at it."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.connector.conftest import _free_port


def _demo(cwd: Path, port: int, sandbox_port: int, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALBRIDGE_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connector",
            "demo",
            "--port",
            str(port),
            "--sandbox-port",
            str(sandbox_port),
            *extra,
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _until_serving(demo: subprocess.Popen[str]) -> list[str]:
    assert demo.stdout is not None
    lines = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Serving."):
            return lines
    raise AssertionError("the demo did not start:\n" + "\n".join(lines))


def test_a_second_demo_refuses_before_deleting_the_running_ones_database(
    tmp_path: Path,
) -> None:
    port, sandbox_port = _free_port(), _free_port()
    first = _demo(tmp_path, port, sandbox_port)
    try:
        lines = _until_serving(first)
        database = tmp_path / "instance" / "demo" / "dealbridge.db"
        inode = database.stat().st_ino
        for args, says in (
            ((port, _free_port()), "--port"),  # the app's port is taken
            ((_free_port(), sandbox_port), "--sandbox-port"),  # the sandbox's port is taken
            ((_free_port(), _free_port()), "already running"),  # other ports, same folder
        ):
            second = _demo(tmp_path, *args)
            try:
                output, _ = second.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                second.kill()
                raise
            assert second.returncode == 2, output
            assert says in output
            assert "Traceback" not in output
            assert "API key" not in output  # no banner as if it worked
            assert database.stat().st_ino == inode  # never deleted
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200

        exports = dict(
            shlex.split(line.strip().removeprefix("export "))[0].split("=", 1)
            for line in lines
            if line.strip().startswith("export DEALBRIDGE_")
        )
        assert exports["DEALBRIDGE_DATABASE_URL"] == f"sqlite:///{database.resolve()}"
        assert any(line.strip().startswith("curl -H") for line in lines)
        # The printed lines point the CLI, from any folder, at the running demo.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEALBRIDGE_")}
        listed = subprocess.run(
            [sys.executable, "-m", "connector", "keys", "list"],
            cwd=elsewhere,
            env={**env, **exports},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        assert "demo" in listed.stdout
        assert f"Database: sqlite:///{database.resolve()}" in listed.stderr
        assert not (elsewhere / "instance").exists()
        key = exports["DEALBRIDGE_API_KEY"]
        answer = requests.get(
            f"http://127.0.0.1:{port}/api/v1/deals/OPP-1001/interactions",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert answer.status_code == 200
    finally:
        first.terminate()
        first.communicate(timeout=30)
