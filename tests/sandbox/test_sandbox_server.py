"""The sandbox runs alone (`python -m sandbox.server`), in a thread for tests, and shows a page."""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from sandbox.server import RunningSandbox, start_sandbox

from .conftest import Control, meeting


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_sandbox_runs_alone_and_prints_where_it_is() -> None:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.server",
            "--port",
            str(port),
            "--client-secret",
            "given-secret",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = [process.stdout.readline() for _ in range(3)] if process.stdout else []
        deadline = time.monotonic() + 20
        answer = None
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/_sandbox/state", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert answer is not None
        assert answer.status_code == 200
        assert f"http://127.0.0.1:{port}" in banner[0]
        assert "given-secret" not in "".join(banner)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


@contextlib.contextmanager
def _alone(*args: str) -> Iterator[str]:
    """`python -m sandbox.server` on a free port, until the block ends: its base URL."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.server", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(f"{base}/_sandbox/state", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_sandbox_alone_keeps_a_connection_for_the_next_request() -> None:
    """As Graph does (httpx keeps the connection): a benchmark's thousands of requests do not
    each pay a new TCP connection that production would not."""
    with _alone() as base:
        connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=10)
        try:
            sockets = []
            for _ in range(3):
                connection.request("GET", "/_sandbox/state")
                answer = connection.getresponse()
                assert answer.status == 200
                assert answer.getheader("Connection", "").lower() != "close"
                answer.read()
                sockets.append(connection.sock)
            assert sockets[0] is not None
            assert sockets == [sockets[0]] * 3
        finally:
            connection.close()


def test_the_sandbox_alone_drops_the_connection_of_a_lost_reset_answer() -> None:
    with _alone("--client-secret", "given-secret") as base:
        state = requests.get(f"{base}/_sandbox/state", timeout=5).json()
        token = requests.post(
            f"{base}/{state['tenantId']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": state["clientId"],
                "client_secret": "given-secret",
                "scope": "https://graph.microsoft.com/.default",
            },
            timeout=10,
        ).json()["access_token"]
        rule = {"route": "^GET /v1.0/users$", "status": "lost_reset", "count": 1}
        requests.post(f"{base}/_sandbox/faults", json=rule, timeout=5).raise_for_status()
        with requests.Session() as http:
            graph = {"Authorization": f"Bearer {token}"}
            with pytest.raises(requests.ConnectionError):
                http.get(f"{base}/v1.0/users", headers=graph, timeout=10)
            assert http.get(f"{base}/v1.0/users", headers=graph, timeout=10).status_code == 200


def test_start_sandbox_serves_on_a_free_port_until_stopped() -> None:
    with start_sandbox(
        tenant_id="11111111-2222-3333-4444-555555555555", domain="fabrikam.example"
    ) as sb:
        state = requests.get(f"{sb.base_url}/_sandbox/state", timeout=5).json()
        base = sb.base_url
    assert state["tenantId"] == "11111111-2222-3333-4444-555555555555"
    assert state["domain"] == "fabrikam.example"
    try:
        requests.get(f"{base}/_sandbox/state", timeout=1)
        served_after_stop = True
    except requests.ConnectionError:
        served_after_stop = False
    assert not served_after_stop


def test_the_page_shows_each_mailbox_calendar(sandbox: RunningSandbox, control: Control) -> None:
    control.add_user("ann", "Ann Rep")
    control.add_user("bob", "Bob Buyer")
    soon = time.strftime("%Y-%m-%dT%H:00:00", time.gmtime(time.time() + 86400))
    later = time.strftime("%Y-%m-%dT%H:30:00", time.gmtime(time.time() + 86400))
    control.add_event(
        "ann@contoso.example", meeting("Quarterly <review>", soon, later, "bob@contoso.example")
    )
    page = requests.get(f"{sandbox.base_url}/", timeout=5)
    assert page.status_code == 200
    assert page.text.count("Quarterly &lt;review&gt;") == 2
    assert "bob@contoso.example" in page.text
    assert "<script" not in page.text


def test_control_api_seeds_many_events_in_one_call(control: Control) -> None:
    control.add_user("ann", "Ann Rep")
    bodies = [meeting(f"Seed {i}", "2026-11-20T09:00:00", "2026-11-20T09:30:00") for i in range(3)]
    answer = control.post("/users/ann@contoso.example/events", {"value": bodies})
    assert answer.status_code == 201
    assert [e["subject"] for e in answer.json()["value"]] == ["Seed 0", "Seed 1", "Seed 2"]
    assert len(control.stored_events("ann@contoso.example")) == 3


def test_control_api_refuses_a_duplicate_user_and_an_unknown_mailbox(control: Control) -> None:
    control.add_user("ann", "Ann Rep")
    again = control.post(
        "/users", {"userPrincipalName": "ANN@contoso.example", "displayName": "Ann"}
    )
    unknown = control.post(
        "/users/zed@contoso.example/events",
        meeting("x", "2026-11-20T09:00:00", "2026-11-20T09:30:00"),
    )
    assert again.status_code == 409
    assert unknown.status_code == 404
