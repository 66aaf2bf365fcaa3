"""Installing the bot's app through Graph makes Teams greet the bot, as Teams does."""

from __future__ import annotations

import time
from typing import Any

import msal
import requests

from sandbox.server import serve_in_background, start_sandbox

MICROSOFT_LOGIN = "https://login.microsoftonline.com"


class _Rewrite(requests.Session):
    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    def request(
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:  # type: ignore[override]
        text = url.decode() if isinstance(url, bytes) else url
        return super().request(method, text.replace(MICROSOFT_LOGIN, self.base), *args, **kwargs)


def test_a_graph_install_sends_the_bot_its_install_activities() -> None:
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    received: list[dict[str, Any]] = []

    @Request.application
    def bot(request: Request) -> Response:
        received.append(request.get_json())
        return Response("{}", mimetype="application/json")

    server = make_server("127.0.0.1", 0, bot, threaded=True)
    serve_in_background(server)
    try:
        with start_sandbox() as sb:
            http = requests.Session()
            user = http.post(
                f"{sb.base_url}/_sandbox/users",
                json={"userPrincipalName": f"ann@{sb.domain}", "displayName": "Ann"},
                timeout=10,
            ).json()
            http.post(
                f"{sb.base_url}/_sandbox/teams/bot",
                json={
                    "endpoint": f"http://127.0.0.1:{server.port}/api/messages",
                    "botId": sb.client_id,
                },
                timeout=10,
            ).raise_for_status()
            app = http.post(
                f"{sb.base_url}/_sandbox/teamsApps",
                json={
                    "externalId": "8c5e4ad4-35a4-4bd6-9ac9-4b2f8d6a3f10",
                    "displayName": "DealBridge",
                },
                timeout=10,
            ).json()
            msal_app = msal.ConfidentialClientApplication(
                sb.client_id,
                client_credential=sb.client_secret,
                authority=f"{MICROSOFT_LOGIN}/{sb.tenant_id}",
                http_client=_Rewrite(sb.base_url),
            )
            token = msal_app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
            answer = http.post(
                f"{sb.base_url}/v1.0/users/{user['id']}/teamwork/installedApps",
                json={
                    "teamsApp@odata.bind": f"{sb.base_url}/v1.0/appCatalogs/teamsApps/{app['id']}"
                },
                headers={"Authorization": f"Bearer {token['access_token']}"},
                timeout=10,
            )
            assert answer.status_code == 201, answer.text
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(received) < 2:
                time.sleep(0.05)
    finally:
        server.shutdown()
    assert [a["type"] for a in received] == ["installationUpdate", "conversationUpdate"]
    assert received[1]["from"]["aadObjectId"] == user["id"]
    assert received[1]["serviceUrl"].endswith("/teams/")
