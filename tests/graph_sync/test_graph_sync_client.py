"""The Graph client over real HTTP: msgraph's adapter, errors, `$batch`, retries, limits."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from graph_sync.auth import GraphCredentials
from graph_sync.client import (
    BatchItem,
    GraphClient,
    mailbox_slots_of,
    pack_batches,
    parse_retry_after,
)
from graph_sync.errors import Forbidden, NotFound, SyncStateExpired, Throttled

from .conftest import Control, event_body

BATCH_ROUTE = "POST /v1.0/$batch"


def create_item(n: int, user: str) -> BatchItem:
    body = event_body(f"r{n}", "2026-12-01T09:00:00", "2026-12-01T09:15:00")
    body["transactionId"] = f"00000000-0000-4000-8000-{n:012d}"
    return BatchItem(id=str(n), method="POST", url=f"/users/{user}/events", body=body)


def test_importing_the_client_does_not_import_msgraph() -> None:
    code = (
        "import sys, graph_sync.client, graph_sync.meetings, graph_sync.calendar;"
        "print(any(m.startswith(('msgraph', 'kiota', 'msal')) for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_get_json_reads_a_user_through_the_sdk_adapter(
    graph: GraphClient, control: Control
) -> None:
    user = control.add_user("ann")

    found = graph.get_json(f"/users/{user['userPrincipalName']}")

    assert found["id"] == user["id"]


def test_missing_user_is_not_found_with_a_request_id(graph: GraphClient, control: Control) -> None:
    with pytest.raises(NotFound) as raised:
        graph.get_json("/users/nobody@contoso.example", mailbox="nobody@contoso.example")

    assert raised.value.status == 404
    assert raised.value.request_id
    assert raised.value.mailbox == "nobody@contoso.example"


def test_missing_permission_is_forbidden_naming_the_permission(
    credentials: GraphCredentials, control: Control
) -> None:
    control.settings(roles=["User.Read.All"])
    user = control.add_user("ann")
    # A new client: the session client's cached token still carries every role.
    with (
        GraphClient(credentials, credentials.login_base_url) as client,
        pytest.raises(Forbidden) as raised,
    ):
        client.get_json(f"/users/{user['id']}/mailboxSettings", permission="MailboxSettings.Read")

    assert raised.value.permission == "MailboxSettings.Read"


def test_expired_delta_state_is_sync_state_expired(graph: GraphClient, control: Control) -> None:
    user = control.add_user("ann")
    control.fault(route="GET /v1.0/users/.*/delta", status=410)

    with pytest.raises(SyncStateExpired):
        graph.get_json(
            f"/users/{user['id']}/calendarView/delta",
            params={"startDateTime": "2026-01-01T00:00:00Z", "endDateTime": "2026-02-01T00:00:00Z"},
        )


def test_whole_request_429_is_retried_by_the_sdk_after_retry_after(
    graph: GraphClient, control: Control
) -> None:
    user = control.add_user("ann")
    control.fault(route="GET /v1.0/users/[^/]+$", status=429, retryAfter=0.05, count=2)

    found = graph.get_json(f"/users/{user['id']}")

    assert found["id"] == user["id"]
    assert control.served()["byStatus"].get("429") == 2


def test_persistent_429_is_throttled_with_its_retry_after(
    graph: GraphClient, control: Control
) -> None:
    user = control.add_user("ann")
    control.fault(route="GET /v1.0/users/[^/]+$", status=429, retryAfter=0.01)

    with pytest.raises(Throttled) as raised:
        graph.get_json(f"/users/{user['id']}")

    assert raised.value.retry_after == pytest.approx(0.01)


def test_45_creates_for_one_mailbox_are_sent_as_3_calls_without_a_429(
    graph: GraphClient, control: Control
) -> None:
    user = control.add_user("ann")

    results = graph.batch([create_item(n, user["id"]) for n in range(45)], mailbox=user["id"])

    assert [r.id for r in results] == [str(n) for n in range(45)]
    assert all(r.status == 201 for r in results)
    # Outlook runs up to 4 items of a batch in parallel, the rest wait: 20 a call, no 429.
    assert control.calls(BATCH_ROUTE) == 3
    assert "429" not in control.served()["byStatus"]
    assert len(control.stored_events(user["id"])) == 45


def test_45_creates_for_9_mailboxes_are_sent_as_3_calls(
    graph: GraphClient, control: Control
) -> None:
    users = [control.add_user(f"rep{r}")["id"] for r in range(9)]

    results = graph.batch([create_item(n, users[n % 9]) for n in range(45)])

    assert all(r.status == 201 for r in results)
    assert control.calls(BATCH_ROUTE) == 3
    assert "429" not in control.served()["byStatus"]
    assert [len(control.stored_events(u)) for u in users] == [5] * 9


def test_mixed_batch_calls_sharing_mailboxes_do_not_overrun_outlooks_concurrency(
    graph: GraphClient, control: Control
) -> None:
    users = [control.add_user(f"rep{r}")["id"] for r in range(3)]
    control.settings(latencySeconds=0.01)
    errors: list[BaseException] = []

    def deliver(start: int) -> None:
        try:
            # each thread walks the mailboxes in another order: slots taken sorted, no deadlock
            order = users[start % 3 :] + users[: start % 3]
            graph.batch([create_item(start * 100 + n, order[n % 3]) for n in range(12)])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=deliver, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert "429" not in control.served()["byStatus"]
    assert [len(control.stored_events(u)) for u in users] == [16] * 3


def test_batch_items_answered_429_are_retried_alone_after_retry_after(
    graph: GraphClient, control: Control
) -> None:
    user = control.add_user("ann")
    control.fault(route="POST .*/events$", status=429, retryAfter=0.02, count=5)

    results = graph.batch([create_item(n, user["id"]) for n in range(10)], mailbox=user["id"])

    assert all(r.ok for r in results)
    assert sorted(r.attempts for r in results) == [1] * 5 + [2] * 5
    assert control.calls(BATCH_ROUTE) == 2  # the 10, then the 5 throttled ones
    assert len(control.stored_events(user["id"])) == 10


def test_batch_gives_up_after_its_rounds_and_reports_each_item(
    credentials: GraphCredentials, control: Control
) -> None:
    user = control.add_user("ann")
    control.fault(route="POST .*/events$", status=503, retryAfter=0.01)
    with GraphClient(credentials, credentials.login_base_url, batch_rounds=2) as client:
        results = client.batch([create_item(n, user["id"]) for n in range(3)], user["id"])

    assert [r.status for r in results] == [503, 503, 503]
    assert all(r.attempts == 3 for r in results)
    assert all(isinstance(r.error, Throttled) for r in results)


def test_server_error_on_a_post_without_transaction_id_is_not_retried(
    graph: GraphClient, control: Control
) -> None:
    user = control.add_user("ann")
    control.fault(route="POST .*/events$", status=500, count=1)
    item = BatchItem(
        id="a",
        method="POST",
        url=f"/users/{user['id']}/events",
        body=event_body("x", "2026-12-01T09:00:00", "2026-12-01T09:15:00"),
    )

    (result,) = graph.batch([item], mailbox=user["id"])

    assert result.status == 500
    assert result.attempts == 1


def test_dependent_item_failing_424_is_retried_with_its_dependency(
    graph: GraphClient, control: Control
) -> None:
    user = control.add_user("ann")
    control.fault(route="POST .*/events$", status=429, retryAfter=0.01, count=1)
    first = create_item(1, user["id"])
    second = create_item(2, user["id"]).model_copy(update={"depends_on": ["1"]})

    results = graph.batch([first, second], mailbox=user["id"])

    assert [r.status for r in results] == [201, 201]
    assert [r.attempts for r in results] == [2, 2]


def test_repeated_post_with_the_same_transaction_id_makes_one_event(
    graph: GraphClient, control: Control
) -> None:
    user = control.add_user("ann")
    item = create_item(7, user["id"])
    assert item.body is not None

    first = graph.post_json(item.url, item.body, mailbox=user["id"])
    again = graph.post_json(item.url, item.body, mailbox=user["id"])

    assert first["id"] == again["id"]
    assert len(control.stored_events(user["id"])) == 1


def test_at_most_four_requests_per_mailbox_are_in_flight(
    graph: GraphClient, control: Control
) -> None:
    user = control.add_user("ann")
    control.settings(latencySeconds=0.05)

    def read(_: int) -> str:
        return str(graph.get_json(f"/users/{user['id']}/events", mailbox=user["id"]))

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(read, range(12)))

    assert len(answers) == 12
    assert "429" not in control.served()["byStatus"]


def test_batch_calls_for_one_mailbox_do_not_overrun_outlooks_concurrency(
    graph: GraphClient, control: Control
) -> None:
    user = control.add_user("ann")
    control.settings(latencySeconds=0.02)
    errors: list[BaseException] = []

    def deliver(start: int) -> None:
        try:
            items = [create_item(start + n, user["id"]) for n in range(8)]
            graph.batch(items, mailbox=user["id"])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=deliver, args=(k * 100,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert "429" not in control.served()["byStatus"]
    assert len(control.stored_events(user["id"])) == 24


def test_pack_batches_keeps_dependency_chains_in_one_call() -> None:
    items = [BatchItem(id=str(n), method="GET", url="/me") for n in range(30)]
    items[25] = items[25].model_copy(update={"depends_on": ["3"]})

    calls = pack_batches(items)

    assert all(len(call) <= 20 for call in calls)
    together = next(call for call in calls if any(item.id == "3" for item in call))
    assert any(item.id == "25" for item in together)


def test_pack_batches_fills_calls_of_20_whatever_the_mailboxes() -> None:
    def item(n: int, mailbox: str) -> BatchItem:
        return BatchItem(id=str(n), method="GET", url=f"/users/{mailbox}/events")

    twenty_over_ten = [item(n, f"rep{n % 10}") for n in range(20)]
    forty_five_over_three = [item(n, f"rep{n % 3}") for n in range(45)]
    forty_five_for_one = [item(n, "ann") for n in range(45)]
    one_big_and_many_small = [item(n, "big") for n in range(8)] + [
        item(n, f"rep{n}") for n in range(8, 32)
    ]

    assert [len(c) for c in pack_batches(twenty_over_ten)] == [20]
    calls = pack_batches(forty_five_over_three)
    assert len(calls) == 3  # ceil(45 / 20)
    # each mailbox's items spread over the calls: 5 of each in each call
    assert [Counter(i.target_mailbox() for i in call) for call in calls] == [
        Counter({"rep0": 5, "rep1": 5, "rep2": 5})
    ] * 3
    assert sorted(i.id for c in calls for i in c) == sorted(str(n) for n in range(45))
    assert [len(c) for c in pack_batches(forty_five_for_one)] == [15, 15, 15]
    assert len(pack_batches(one_big_and_many_small)) == 2  # ceil(32 / 20)


def test_a_call_holds_at_most_4_slots_of_a_mailbox_a_chain_1() -> None:
    chain = [BatchItem(id="0", method="GET", url="/users/ann/events")] + [
        BatchItem(id=str(n), method="GET", url="/users/ann/events", depends_on=[str(n - 1)])
        for n in range(1, 8)
    ]
    others = [BatchItem(id=f"x{n}", method="GET", url="/users/ann/events") for n in range(2)]
    many = [
        BatchItem(id=f"m{n}", method="GET", url=f"/users/{u}/events")
        for n, u in enumerate(["bob"] * 15 + ["cy"] * 3)
    ]

    (call,) = pack_batches(chain + others)

    assert len(call) == 10
    assert mailbox_slots_of(chain) == {"ann": 1}
    assert mailbox_slots_of(call) == {"ann": 3}  # the chain's first item and the 2 others
    assert mailbox_slots_of(many) == {"bob": 4, "cy": 3}  # Outlook runs up to 4 at a time


def test_a_batch_call_and_single_requests_on_one_mailbox_stay_within_4_in_flight(
    graph: GraphClient, control: Control
) -> None:
    user = control.add_user("ann")
    control.settings(latencySeconds=0.02)

    def read(_: int) -> str:
        return str(graph.get_json(f"/users/{user['id']}/events", mailbox=user["id"]))

    with ThreadPoolExecutor(max_workers=6) as pool:
        reads = [pool.submit(read, n) for n in range(6)]
        results = graph.batch([create_item(n, user["id"]) for n in range(16)])
        assert all(len(r.result()) > 0 for r in reads)

    assert all(r.status == 201 for r in results)
    assert "429" not in control.served()["byStatus"]
    assert len(control.stored_events(user["id"])) == 16


def test_pack_batches_refuses_a_chain_longer_than_a_batch() -> None:
    items = [BatchItem(id="0", method="GET", url="/me")] + [
        BatchItem(id=str(n), method="GET", url="/me", depends_on=[str(n - 1)]) for n in range(1, 21)
    ]

    with pytest.raises(ValueError, match="exceeds one"):
        pack_batches(items)


def test_retry_after_accepts_fractional_seconds() -> None:
    assert parse_retry_after("2.128") == pytest.approx(2.128)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_http_graph_url_is_refused_outside_loopback(credentials: GraphCredentials) -> None:
    with pytest.raises(ValueError, match="https"):
        GraphClient(credentials, "http://graph.example.com")
