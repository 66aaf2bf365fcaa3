"""What makes a client robust: `$batch` rules, faults, Outlook throttling, the request log."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from sandbox.server import RunningSandbox

from .conftest import Control, meeting


@pytest.fixture
def batch(
    sandbox: RunningSandbox, graph_http: requests.Session
) -> Callable[..., requests.Response]:
    def send(items: list[dict[str, Any]]) -> requests.Response:
        return graph_http.post(
            f"{sandbox.base_url}/v1.0/$batch", json={"requests": items}, timeout=30
        )

    return send


def _post_event(item_id: str, user: str, subject: str, **more: Any) -> dict[str, Any]:
    return {
        "id": item_id,
        "method": "POST",
        "url": f"/users/{user}/events",
        "headers": {"Content-Type": "application/json"},
        "body": meeting(subject, "2026-11-20T09:00:00", "2026-11-20T09:15:00"),
        **more,
    }


def test_a_batch_of_twenty_one_is_refused(
    batch: Callable[..., requests.Response], control: Control
) -> None:
    control.add_user("ann", "Ann Rep")
    answer = batch([_post_event(str(i), "ann@contoso.example", f"R{i}") for i in range(21)])
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BadRequest"
    assert control.stored_events("ann@contoso.example") == []


def test_a_batch_with_duplicate_ids_or_a_body_without_content_type_is_refused(
    batch: Callable[..., requests.Response], control: Control
) -> None:
    control.add_user("ann", "Ann Rep")
    duplicate = batch(
        [_post_event("1", "ann@contoso.example", "A"), _post_event("1", "ann@contoso.example", "B")]
    )
    no_type = _post_event("1", "ann@contoso.example", "A")
    no_type["headers"] = {}
    untyped = batch([no_type])
    assert duplicate.status_code == 400
    assert untyped.status_code == 400
    assert "Content-Type" in untyped.json()["error"]["message"]


def test_a_batch_of_twenty_for_five_mailboxes_creates_twenty_events_answered_in_some_order(
    batch: Callable[..., requests.Response], control: Control
) -> None:
    reps = [f"rep{r}@contoso.example" for r in range(5)]
    for r in range(5):
        control.add_user(f"rep{r}", f"Rep {r}")
    answer = batch([_post_event(str(i), reps[i % 5], f"R{i}") for i in range(20)])
    responses = answer.json()["responses"]
    assert answer.status_code == 200
    assert sorted(int(r["id"]) for r in responses) == list(range(20))
    assert [r["id"] for r in responses] != [str(i) for i in range(20)]
    assert {r["status"] for r in responses} == {201}
    assert {r["body"]["subject"] for r in responses} == {f"R{i}" for i in range(20)}
    assert [len(control.stored_events(rep)) for rep in reps] == [4] * 5


def test_a_batch_alone_runs_a_mailboxs_items_4_at_a_time_without_a_429(
    batch: Callable[..., requests.Response], control: Control
) -> None:
    # M365_NOTES: "Outlook runs up to 4 items of a batch in parallel"; the rest wait their turn.
    control.add_user("ann", "Ann Rep")
    control.add_user("bob", "Bob Rep")
    items = [_post_event(str(i), "ann@contoso.example", f"A{i}") for i in range(17)]
    items += [_post_event(f"b{i}", "bob@contoso.example", f"B{i}") for i in range(3)]
    answer = batch(items)
    assert answer.status_code == 200
    assert {r["status"] for r in answer.json()["responses"]} == {201}
    assert len(control.stored_events("ann@contoso.example")) == 17
    assert len(control.stored_events("bob@contoso.example")) == 3
    assert "429" not in control.requests_served()["byStatus"]


def test_batch_items_running_with_other_requests_on_their_mailbox_beyond_4_get_their_own_429(
    batch: Callable[..., requests.Response], control: Control
) -> None:
    control.add_user("ann", "Ann Rep")
    control.settings(latencySeconds=0.4)
    # Another call keeps one request on ann in flight for 2.4 s: a chain runs one at a time.
    chain = [_post_event("c0", "ann@contoso.example", "C0")] + [
        _post_event(f"c{i}", "ann@contoso.example", f"C{i}", dependsOn=[f"c{i - 1}"])
        for i in range(1, 6)
    ]
    with ThreadPoolExecutor(max_workers=1) as pool:
        other = pool.submit(batch, chain)
        time.sleep(0.2)
        # Outlook runs these 4 together; with the chain's item that makes 5 on ann at the 4th.
        answer = batch([_post_event(str(i), "ann@contoso.example", f"A{i}") for i in range(4)])
        assert {r["status"] for r in other.result().json()["responses"]} == {201}
    statuses = {r["id"]: r["status"] for r in answer.json()["responses"]}
    throttled = [r for r in answer.json()["responses"] if r["status"] == 429]
    assert answer.status_code == 200
    assert statuses == {"0": 201, "1": 201, "2": 201, "3": 429}
    assert throttled[0]["body"]["error"]["code"] == "ApplicationThrottled"
    assert float(throttled[0]["headers"]["Retry-After"]) > 0
    assert len(control.stored_events("ann@contoso.example")) == 6 + 3


def test_a_depends_on_chain_runs_one_item_at_a_time_on_its_mailbox(
    batch: Callable[..., requests.Response], control: Control
) -> None:
    control.add_user("ann", "Ann Rep")
    chain = [_post_event("0", "ann@contoso.example", "A0")] + [
        _post_event(str(i), "ann@contoso.example", f"A{i}", dependsOn=[str(i - 1)])
        for i in range(1, 8)
    ]
    answer = batch(chain)
    assert {r["status"] for r in answer.json()["responses"]} == {201}
    assert len(control.stored_events("ann@contoso.example")) == 8


def test_depends_on_runs_in_order_and_dependants_of_a_failure_get_424(
    batch: Callable[..., requests.Response], control: Control
) -> None:
    control.add_user("ann", "Ann Rep")
    answer = batch(
        [
            _post_event("3", "ann@contoso.example", "third", dependsOn=["2"]),
            _post_event("2", "nobody@contoso.example", "second", dependsOn=["1"]),
            _post_event("1", "ann@contoso.example", "first"),
        ]
    )
    statuses = {r["id"]: r["status"] for r in answer.json()["responses"]}
    assert statuses == {"1": 201, "2": 404, "3": 424}


def test_a_throttled_batch_item_carries_its_own_retry_after(
    batch: Callable[..., requests.Response], control: Control
) -> None:
    control.add_user("ann", "Ann Rep")
    control.fault(route=r"^POST /v1\.0/users/[^/]+/events$", status=429, retryAfter=7, count=2)
    answer = batch([_post_event(str(i), "ann@contoso.example", f"R{i}") for i in range(4)])
    throttled = [r for r in answer.json()["responses"] if r["status"] == 429]
    assert len(throttled) == 2
    assert {r["headers"]["Retry-After"] for r in throttled} == {"7"}
    assert len(control.stored_events("ann@contoso.example")) == 2


def test_the_sdk_retry_honours_an_injected_429(
    graph_client: Any, run: Callable[[Any], Any], control: Control
) -> None:
    control.add_user("ann", "Ann Rep")
    control.fault(route=r"^GET /v1\.0/users/ann@", status=429, retryAfter=1, count=1)
    user = run(graph_client.users.by_user_id("ann@contoso.example").get())
    log = control.requests_served()
    assert user.display_name == "Ann Rep"
    assert log["byRoute"]["GET /v1.0/users/{user}"] == 2
    assert [r["status"] for r in log["recent"] if r["route"] == "/v1.0/users/{user}"] == [429, 200]


def test_faults_hit_the_matching_route_at_the_seeded_rate(
    sandbox: RunningSandbox, graph_http: requests.Session, control: Control
) -> None:
    control.add_user("ann", "Ann Rep")

    def statuses() -> list[int]:
        control.fault(route="mailboxSettings", status=503, rate=0.5)
        url = f"{sandbox.base_url}/v1.0/users/ann@contoso.example/mailboxSettings"
        return [graph_http.get(url, timeout=10).status_code for _ in range(20)]

    first = statuses()
    assert control.post("/reset", {}).status_code == 200
    control.add_user("ann", "Ann Rep")
    again = statuses()
    other = graph_http.get(f"{sandbox.base_url}/v1.0/users", timeout=10)
    assert set(first) == {200, 503}
    assert again == first
    assert other.status_code == 200


def test_a_timeout_fault_holds_the_request_then_answers_504(
    sandbox: RunningSandbox, graph_http: requests.Session, control: Control
) -> None:
    control.fault(route="/organization", status="timeout", timeoutSeconds=0.2, count=1)
    held = graph_http.get(f"{sandbox.base_url}/v1.0/organization", timeout=10)
    assert held.status_code == 504


def test_the_token_endpoint_can_fail_too(sandbox: RunningSandbox, control: Control) -> None:
    control.fault(route="oauth2/v2.0/token", status=503, count=1)
    answer = requests.post(
        f"{sandbox.base_url}/{sandbox.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "scope": "https://graph.microsoft.com/.default",
        },
        timeout=10,
    )
    assert answer.status_code == 503
    assert answer.json()["error"] == "temporarily_unavailable"


def test_more_than_four_concurrent_requests_on_a_mailbox_are_throttled(
    sandbox: RunningSandbox, graph_http: requests.Session, control: Control
) -> None:
    control.add_user("ann", "Ann Rep")
    control.add_user("bob", "Bob Buyer")
    control.settings(latencySeconds=0.5)
    url = f"{sandbox.base_url}/v1.0/users/ann@contoso.example/events"
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(
                lambda _: requests.get(url, headers=dict(graph_http.headers), timeout=10), range(8)
            )
        )
    throttled = [a for a in answers if a.status_code == 429]
    other = graph_http.get(f"{sandbox.base_url}/v1.0/users/bob@contoso.example/events", timeout=10)
    assert sum(a.status_code == 200 for a in answers) >= 4
    assert throttled
    assert throttled[0].headers["Retry-After"] == "1"
    assert throttled[0].json()["error"]["code"] == "ApplicationThrottled"
    assert other.status_code == 200


def test_a_mailbox_over_its_request_budget_waits_for_the_window(
    sandbox: RunningSandbox, graph_http: requests.Session, control: Control
) -> None:
    control.add_user("ann", "Ann Rep")
    control.settings(mailboxRequestBudget=3, mailboxBudgetWindowSeconds=60)
    url = f"{sandbox.base_url}/v1.0/users/ann@contoso.example/events"
    answers = [graph_http.get(url, timeout=10) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 60


def test_the_request_log_counts_by_route_and_mailbox(
    sandbox: RunningSandbox,
    graph_http: requests.Session,
    batch: Callable[..., requests.Response],
    control: Control,
) -> None:
    control.add_user("ann", "Ann Rep")
    graph_http.get(f"{sandbox.base_url}/v1.0/users/ann@contoso.example/events", timeout=10)
    batch([_post_event(str(i), "ann@contoso.example", f"R{i}") for i in range(3)])
    log = control.requests_served()
    assert log["byRoute"]["POST /v1.0/users/{user}/events"] == 3
    assert log["byRoute"]["POST /v1.0/$batch"] == 1
    assert log["byMailbox"] == {"ann@contoso.example": 4}
