"""One sandbox tenant per session (reset before each test) and one GraphClient on it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from graph_sync.auth import GraphCredentials
from graph_sync.client import GraphClient
from sandbox.server import RunningSandbox, start_sandbox


@pytest.fixture(scope="session")
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(validation_timeout_seconds=3.0, fault_timeout_seconds=1.0) as running:
        yield running


@dataclass
class Control:
    """The sandbox's control API, to arrange a test and count what Graph served."""

    base_url: str
    domain: str
    http: requests.Session = field(default_factory=requests.Session)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.http.post(f"{self.base_url}/_sandbox{path}", json=body, timeout=30)

    def get(self, path: str) -> Any:
        answer = self.http.get(f"{self.base_url}/_sandbox{path}", timeout=30)
        answer.raise_for_status()
        return answer.json()

    def add_user(
        self, alias: str, time_zone: str = "UTC", **mailbox_settings: Any
    ) -> dict[str, Any]:
        answer = self.post(
            "/users",
            {
                "userPrincipalName": f"{alias}@{self.domain}",
                "displayName": alias.title(),
                "mailboxSettings": {"timeZone": time_zone, **mailbox_settings},
            },
        )
        assert answer.status_code == 201, answer.text
        user: dict[str, Any] = answer.json()
        return user

    def add_event(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.post(f"/users/{user}/events", body)
        assert answer.status_code == 201, answer.text
        event: dict[str, Any] = answer.json()
        return event

    def stored_events(self, user: str) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = self.get(f"/users/{user}/events")["value"]
        return value

    def fault(self, **rule: Any) -> None:
        answer = self.post("/faults", rule)
        assert answer.status_code == 201, answer.text

    def clear_faults(self) -> None:
        self.http.delete(f"{self.base_url}/_sandbox/faults", timeout=10).raise_for_status()

    def settings(self, **changes: Any) -> None:
        answer = self.http.patch(f"{self.base_url}/_sandbox/settings", json=changes, timeout=10)
        assert answer.status_code == 200, answer.text

    def served(self) -> dict[str, Any]:
        summary: dict[str, Any] = self.get("/requests")
        return summary

    def forget_requests(self) -> None:
        self.http.delete(f"{self.base_url}/_sandbox/requests", timeout=10).raise_for_status()

    def calls(self, route: str) -> int:
        """Top-level Graph requests served for a route (batch items not counted)."""
        count: int = self.served()["byRoute"].get(route, 0)
        return count


@pytest.fixture
def control(sandbox: RunningSandbox) -> Iterator[Control]:
    ctl = Control(sandbox.base_url, sandbox.domain)
    assert ctl.post("/reset", {}).status_code == 200
    yield ctl
    ctl.http.close()


@pytest.fixture(scope="session")
def credentials(sandbox: RunningSandbox) -> GraphCredentials:
    return GraphCredentials(
        tenant_id=sandbox.tenant_id,
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        login_base_url=sandbox.base_url,
    )


@pytest.fixture(scope="session")
def graph(sandbox: RunningSandbox, credentials: GraphCredentials) -> Iterator[GraphClient]:
    # Tiny backoff: tests inject tiny Retry-After values and never sleep for long.
    with GraphClient(credentials, sandbox.base_url, backoff_seconds=0.01) as client:
        yield client


def event_body(subject: str, start: str, end: str, *attendees: str, **extra: Any) -> dict[str, Any]:
    """An event as a client POSTs it (times in UTC unless `extra` says otherwise)."""
    body: dict[str, Any] = {
        "subject": subject,
        "start": {"dateTime": start, "timeZone": "UTC"},
        "end": {"dateTime": end, "timeZone": "UTC"},
        "attendees": [
            {"emailAddress": {"address": a, "name": a.split("@")[0]}, "type": "required"}
            for a in attendees
        ],
    }
    body.update(extra)
    return body
