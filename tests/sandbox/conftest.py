"""Fixtures: one sandbox tenant per session (reset before each test), the real msal and msgraph-sdk
pointed at it, a control-API client, and a webhook receiver for change notifications."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs

import msal
import pytest
import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from sandbox.server import RunningSandbox, start_sandbox

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
MICROSOFT_LOGIN = "https://login.microsoftonline.com"
T = TypeVar("T")


class AuthorityRewrite(requests.Session):
    """MSAL's http_client: sends what MSAL addresses to login.microsoftonline.com to the sandbox."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:  # type: ignore[override]
        text = url.decode() if isinstance(url, bytes) else url
        if text.startswith(MICROSOFT_LOGIN):
            text = self.base_url + text[len(MICROSOFT_LOGIN) :]
        return super().request(method, text, *args, **kwargs)


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


@pytest.fixture(scope="session")
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(validation_timeout_seconds=3.0, fault_timeout_seconds=2.0) as running:
        yield running


@dataclass
class Control:
    """The control API, for arranging a test."""

    base_url: str
    http: requests.Session = field(default_factory=requests.Session)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.http.post(f"{self.base_url}/_sandbox{path}", json=body, timeout=10)

    def get(self, path: str) -> Any:
        answer = self.http.get(f"{self.base_url}/_sandbox{path}", timeout=10)
        answer.raise_for_status()
        return answer.json()

    def add_user(self, alias: str, name: str, time_zone: str = "UTC") -> dict[str, Any]:
        answer = self.post(
            "/users",
            {
                "userPrincipalName": f"{alias}@contoso.example",
                "displayName": name,
                "mailboxSettings": {"timeZone": time_zone},
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

    def settings(self, **changes: Any) -> None:
        answer = self.http.patch(f"{self.base_url}/_sandbox/settings", json=changes, timeout=10)
        assert answer.status_code == 200, answer.text

    def requests_served(self) -> dict[str, Any]:
        summary: dict[str, Any] = self.get("/requests")
        return summary


@pytest.fixture
def control(sandbox: RunningSandbox) -> Iterator[Control]:
    ctl = Control(sandbox.base_url)
    assert ctl.post("/reset", {}).status_code == 200
    yield ctl
    ctl.http.close()


@pytest.fixture(scope="session")
def msal_app(sandbox: RunningSandbox) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        sandbox.client_id,
        client_credential=sandbox.client_secret,
        authority=f"{MICROSOFT_LOGIN}/{sandbox.tenant_id}",
        http_client=AuthorityRewrite(sandbox.base_url),
    )


@pytest.fixture
def token(msal_app: msal.ConfidentialClientApplication, control: Control) -> str:
    result = msal_app.acquire_token_for_client([GRAPH_SCOPE])
    assert "access_token" in result, result.get("error_description")
    access: str = result["access_token"]
    return access


@pytest.fixture
def graph_http(sandbox: RunningSandbox, token: str) -> Iterator[requests.Session]:
    """Plain HTTP with a bearer token, for raw wire checks."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    yield session
    session.close()


# --- msgraph-sdk (imported lazily: the first import costs over a second) ----------------------


@pytest.fixture(scope="session")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    yield running
    running.close()


@pytest.fixture(scope="session")
def run(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, T]], T]:
    def run_until_complete(coroutine: Coroutine[Any, Any, T]) -> T:
        return loop.run_until_complete(coroutine)

    return run_until_complete


@pytest.fixture(scope="session")
def graph_client(
    sandbox: RunningSandbox,
    msal_app: msal.ConfidentialClientApplication,
    loop: asyncio.AbstractEventLoop,
) -> Iterator[Any]:
    """The real GraphServiceClient on msgraph's request adapter, its base URL the sandbox."""
    from kiota_abstractions.authentication import (
        AccessTokenProvider,
        AllowedHostsValidator,
        BaseBearerTokenAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient

    class MsalTokenProvider(AccessTokenProvider):  # type: ignore[misc]
        """Tokens from msal, only for the sandbox's host (kiota sends none elsewhere)."""

        def __init__(self) -> None:
            self._hosts = AllowedHostsValidator(["127.0.0.1"])

        async def get_authorization_token(
            self, uri: str, additional_authentication_context: dict[str, Any] | None = None
        ) -> str:
            if not self._hosts.is_url_host_valid(uri):
                return ""
            result = msal_app.acquire_token_for_client([GRAPH_SCOPE])
            access: str = result["access_token"]
            return access

        def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
            return self._hosts

    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(MsalTokenProvider()))
    adapter.base_url = f"{sandbox.base_url}/v1.0"
    client = GraphServiceClient(request_adapter=adapter)
    yield client
    loop.run_until_complete(adapter._http_client.aclose())


# --- a subscriber's webhook endpoint -----------------------------------------------------------


@dataclass
class Receiver:
    """An HTTP endpoint that answers Graph's validation and records notifications."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    validations: list[str] = field(default_factory=list)
    echo_validation: bool = True

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The first `count` notification items (from every POST), waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = [item for post in self.received for item in post["value"]]
            if len(items) >= count:
                return items
            time.sleep(0.02)
        items = [item for post in self.received for item in post["value"]]
        raise AssertionError(f"expected {count} notifications, got {len(items)}: {items}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}
    lock = threading.Lock()

    @Request.application  # type: ignore[misc]
    def endpoint(request: Request) -> Response:
        box = state["receiver"]
        token = parse_qs(request.query_string.decode()).get("validationToken")
        if token:
            box.validations.append(token[0])
            if not box.echo_validation:
                return Response("no", status=403)
            return Response(token[0], content_type="text/plain")
        with lock:
            box.received.append(json.loads(request.get_data()))
        return Response(status=202)

    server: BaseWSGIServer = make_server(
        "127.0.0.1", 0, endpoint, threaded=True, request_handler=_Quiet
    )
    state["receiver"] = Receiver(f"http://127.0.0.1:{server.server_port}/notifications")
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield state["receiver"]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def meeting(subject: str, start: str, end: str, *attendees: str, **extra: Any) -> dict[str, Any]:
    """An event body as a client would POST it (times in UTC)."""
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
