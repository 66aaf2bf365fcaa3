"""/metrics after real work over the sandbox: Graph calls and a 429, a round, the outbox."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import REGISTRY

from connector.api.keys import create_key
from connector.meetings.notifications import ensure_subscriptions
from connector.meetings.sync import sync_mailbox
from connector.outbox import drain
from connector.store.db import get_store
from connector.store.models import utcnow
from tests.connector.conftest import Tenant, meeting
from tests.connector.test_meeting_sync import add_deal

FUTURE = utcnow().replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=2)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _before(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _key(m365: Tenant, scope: str) -> str:
    with get_store(m365.app).session() as session:
        return create_key(session, f"prometheus-{scope}", scope)  # type: ignore[arg-type]


def test_metrics_after_a_round_a_429_and_deliveries(
    m365: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    m365.add_event(ann, meeting("Pricing call", FUTURE, ["dana@fabrikam.com"]))
    route = "/users/{id}/calendarView/delta"
    labels = {"method": "GET", "route": route}
    before_ok = _before("dealbridge_graph_requests_total", **labels, status="200")
    before_429 = _before("dealbridge_graph_throttled_total", route=route)
    before_rounds = _before("dealbridge_sync_rounds_total", outcome="ok")
    before_delivered = _before("dealbridge_deliveries_total", kind="calendar", outcome="delivered")
    m365.control(
        "POST",
        "/faults",
        {"route": r"GET .*/calendarView", "status": 429, "retryAfter": 0.2, "count": 1},
    )
    with caplog.at_level(logging.INFO):
        report = sync_mailbox(m365.app, ann)
    assert report.error is None
    assert report.logged == 1
    throttled = [r for r in caplog.records if r.getMessage().startswith("graph throttled")]
    assert throttled, "the 429 is logged"
    assert throttled[0].route == route  # type: ignore[attr-defined]
    assert throttled[0].retry_after == pytest.approx(0.2)  # type: ignore[attr-defined]
    round_line = next(r for r in caplog.records if r.getMessage() == "sync round ok")
    assert round_line.mailbox == ann
    assert round_line.logged == 1
    assert ensure_subscriptions(m365.app) == {ann: "created"}
    latency_before = _before("dealbridge_notification_to_logged_seconds_count")
    m365.add_event(ann, meeting("Follow-up", FUTURE + dt.timedelta(hours=2), ["dana@fabrikam.com"]))
    assert _wait_for_notification(m365, ann)
    assert sync_mailbox(m365.app, ann).logged == 1

    key = _key(m365, "metrics")
    scrape = requests.get(
        f"{m365.base_url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert scrape.status_code == 200, scrape.text
    assert scrape.headers["Content-Type"].startswith("text/plain")
    first = _samples(scrape.text)
    assert _value(first, "dealbridge_graph_requests_total", **labels, status="429") >= 1
    assert _value(first, "dealbridge_graph_requests_total", **labels, status="200") > before_ok
    assert _value(first, "dealbridge_graph_throttled_total", route=route) == before_429 + 1
    assert _value(first, "dealbridge_sync_rounds_total", outcome="ok") == before_rounds + 2
    latency = _value(first, "dealbridge_notification_to_logged_seconds_count")
    assert latency == latency_before + 1
    assert _value(first, "dealbridge_sync_round_duration_seconds_count") >= 1
    assert _value(first, "dealbridge_subscriptions") == 1
    assert 0 < _value(first, "dealbridge_subscription_nearest_expiry_seconds") < 4300 * 60
    assert _value(first, "dealbridge_mailboxes_failing") == 0
    # the deal's stage reminders wait in the outbox: counted, and the oldest due has an age
    waiting = _value(first, "dealbridge_outbox_depth", kind="calendar", status="pending")
    assert waiting >= 1
    assert _value(first, "dealbridge_outbox_oldest_due_age_seconds", kind="calendar") > 0

    with m365.app.app_context():
        drained = drain(m365.app, limit=1000)
    assert drained.delivered >= 1
    second = _samples(
        requests.get(
            f"{m365.base_url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30
        ).text
    )
    delivered = _value(second, "dealbridge_deliveries_total", kind="calendar", outcome="delivered")
    assert delivered - before_delivered == drained.delivered
    assert _value(second, "dealbridge_outbox_oldest_due_age_seconds", kind="calendar") == 0
    # what is left waits for its time (reminders later than the calendar lead): not due yet
    left = _value(second, "dealbridge_outbox_depth", kind="calendar", status="pending")
    assert left == waiting - drained.delivered


def _wait_for_notification(m365: Tenant, email: str) -> bool:
    from sqlalchemy import select

    from connector.store.models import Mailbox

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with get_store(m365.app).session() as session:
            box = session.scalar(select(Mailbox).where(Mailbox.rep_email == email))
            if box is not None and box.needs_sync and box.notified_at is not None:
                return True
        time.sleep(0.1)
    return False


def test_metrics_need_a_key_with_the_metrics_scope(m365: Tenant) -> None:
    url = f"{m365.base_url}/metrics"
    missing = requests.get(url, timeout=30)
    assert missing.status_code == 401
    assert missing.headers["Content-Type"] == "application/problem+json"
    for scope in ("read", "write"):
        answer = requests.get(
            url, headers={"Authorization": f"Bearer {_key(m365, scope)}"}, timeout=30
        )
        assert answer.status_code == 403, scope
        assert "metrics" in answer.json()["detail"]


_RECORD = """
from connector import metrics
for _ in range({n}):
    metrics.graph_call("GET", "/users/{{id}}", 200, None)
"""


def test_counters_add_up_across_processes(tmp_path: Path) -> None:
    """PROMETHEUS_MULTIPROC_DIR: two processes count, a third scrapes the sum."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    for n in (3, 4):
        subprocess.run([sys.executable, "-c", _RECORD.format(n=n)], env=env, check=True)
    scrape = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from connector import metrics; "
            "sys.stdout.write(metrics.process_metrics().decode())",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    samples = _samples(scrape)
    labels = {"method": "GET", "route": "/users/{id}", "status": "200"}
    assert _value(samples, "dealbridge_graph_requests_total", **labels) == 7
