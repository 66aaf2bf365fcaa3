"""Deal search and link unfurling from Microsoft's own Teams client, the Agents Playground.

The playground (0.2.28) sends message-extension invokes (`composeExtension/query`,
`queryLink`, `anonymousQueryLink`, `fetchTask`, `submitAction`) from
`POST /_conversation/v1/invoke`, as Teams does: `channelData.source` `compose`, the user's
`aadObjectId`. It passes on only the answer's `composeExtension` (and `task`), without
checking its shape. It has no tab host and no SSO. The invokes reach our bot through the
sandbox's signing relay (see test_e2e_playground.py for why).
"""

from __future__ import annotations

from typing import Any

from connector.settings import SETTINGS_EXTENSION
from tests.connector.samples import deal_body
from tests.e2e.test_e2e_playground import CARD, CHAT, REP, TEAMS_USER, playground_world

__all__ = ["playground_world"]


def _invoke(world: dict[str, Any], name: str, value: dict[str, Any]) -> dict[str, Any]:
    answer = world["http"].post(
        f"{world['base']}/_conversation/v1/invoke",
        json={
            "name": name,
            "value": value,
            "from": {"id": TEAMS_USER},
            "conversation": {"id": CHAT},
        },
        timeout=20,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_the_playground_searches_deals_and_unfurls_a_deal_link(
    playground_world: dict[str, Any],
) -> None:
    world = playground_world
    app, client = world["app"], world["app"].test_client()
    settings = app.extensions[SETTINGS_EXTENSION]
    app.extensions[SETTINGS_EXTENSION] = settings.model_copy(
        update={"crm_link_pattern": "https://crm.contoso.example/deals/{deal_id}"}
    )
    for crm_id, title in (("OPP-1", "Fleet telematics renewal"), ("OPP-2", "Fabrikam ERP")):
        body = deal_body(owner=REP, title=title, account={"name": title.split()[0]})
        answer = client.put(f"/api/v1/deals/{crm_id}", json=body, headers=world["auth"])
        assert answer.status_code in (200, 201), answer.json
    world["http"].post(f"{world['base']}/_debug/conversation/{CHAT}/installation", json={})

    found = _invoke(
        world,
        "composeExtension/query",
        {
            "commandId": "searchDeals",
            "parameters": [{"name": "searchText", "value": "telematics"}],
            "queryOptions": {"skip": 0, "count": 25},
        },
    )

    envelope = found["composeExtension"]
    assert (envelope["type"], envelope["attachmentLayout"]) == ("result", "list")
    [result] = envelope["attachments"]
    assert result["contentType"] == CARD
    assert result["preview"]["content"]["title"] == "Fleet telematics renewal"

    opened = _invoke(
        world,
        "composeExtension/query",
        {"commandId": "searchDeals", "parameters": [{"name": "initialRun", "value": "true"}]},
    )
    assert len(opened["composeExtension"]["attachments"]) == 2

    unfurled = _invoke(
        world, "composeExtension/queryLink", {"url": "https://crm.contoso.example/deals/OPP-1"}
    )
    [card] = unfurled["composeExtension"]["attachments"]
    assert card["content"]["version"] == "1.3"
    nothing = _invoke(
        world, "composeExtension/queryLink", {"url": "https://crm.contoso.example/deals/OPP-9"}
    )
    assert nothing["composeExtension"]["attachments"] == []
