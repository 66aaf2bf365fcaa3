"""The admin console in a real browser (Debian's Chromium through Playwright) on the demo: one
click signs the admin in through the sandbox's Entra; every page is walked and photographed; a
dead delivery is retried, a rep deactivated, an exclusion added, each checked in the store.

Screenshots go to the test's tmp folder; with ``DEALBRIDGE_TEST_SCREENSHOTS=<folder>`` also
there (how docs/images/admin-console/ was made)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from connector.admin.demo import DEMO_ADMIN, DEMO_DOMAIN, DemoRun, console_sign_in_url, prepare_demo
from connector.microsoft365 import close
from connector.store.db import get_store
from connector.store.models import AuditEntry, OutboxItem, PrivacyExclusion, Rep
from connector.store.types import OutboxStatus

pytestmark = pytest.mark.sqlite_only(
    "the demo is the embedded default: its own SQLite file in instance/demo, by design"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoRun, str]]:
    from sandbox.server import serve_in_background, start_sandbox

    folder = tmp_path_factory.mktemp("console-demo")
    port = _free_port()
    with start_sandbox(domain=DEMO_DOMAIN) as sandbox:
        run = prepare_demo(folder=folder / "instance", port=port, sandbox=sandbox)
        server = make_server("127.0.0.1", port, run.app, threaded=True)
        thread = serve_in_background(server)
        try:
            yield run, f"http://127.0.0.1:{port}"
        finally:
            server.shutdown()
            thread.join(timeout=5)
            close(run.app)
            get_store(run.app).dispose()


def _dead_delivery(run: DemoRun) -> int:
    with get_store(run.app).session() as session:
        item = OutboxItem(
            kind="webhook",
            idempotency_key="webhook:interaction.logged:demo-1",
            payload={},
            status=OutboxStatus.DEAD,
            attempts=15,
            last_error="the CRM answered 410 Gone for https://crm.example.com/hooks/dealbridge",
        )
        session.add(item)
        session.flush()
        return item.id


class Shots:
    """Each page's screenshot, in the test's folder (and the docs' when asked)."""

    def __init__(self, folder: Path) -> None:
        self.folders = [folder]
        wanted = os.environ.get("DEALBRIDGE_TEST_SCREENSHOTS")
        if wanted:
            self.folders.append(Path(wanted))
        for each in self.folders:
            each.mkdir(parents=True, exist_ok=True)

    def take(self, page: Any, name: str) -> None:
        data = page.screenshot(full_page=True)
        for each in self.folders:
            (each / f"{name}.png").write_bytes(data)


def test_an_admin_walks_the_console_in_a_browser(
    browser: Any, demo: tuple[DemoRun, str], tmp_path: Path
) -> None:
    run, base = demo
    item_id = _dead_delivery(run)
    rep = "ann.lee@" + DEMO_DOMAIN
    shots = Shots(tmp_path / "screenshots")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(  # what the pages' Content Security Policy refused (an inline style, a script)
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )

    page.goto(console_sign_in_url(base))  # one click: Entra (the sandbox) signs the admin in

    assert page.url == f"{base}/admin/setup"
    assert page.locator("h1").inner_text() == "Setup"
    assert "Dana Admin" in page.locator("header").inner_text()
    shots.take(page, "setup")

    page.get_by_role("link", name="Sync health").click()
    assert page.locator("h1").inner_text() == "Sync health"
    assert rep in page.locator("table").inner_text()
    shots.take(page, "sync")

    page.get_by_role("link", name="Deliveries").click()
    page.locator(f"#item-{item_id}").get_by_role("button", name="Retry").click()
    assert f"Delivery #{item_id} will be tried again now." in page.locator(".notice").inner_text()
    shots.take(page, "deliveries")

    page.get_by_role("link", name="Reps").click()
    row = page.locator("#reps tr", has_text=rep)
    row.get_by_role("button", name="Deactivate").click()
    assert f"{rep} is inactive." in page.locator(".notice").inner_text()
    shots.take(page, "reps")

    page.get_by_role("link", name="Meetings").click()
    assert page.locator("#meetings tbody tr").count() > 0
    shots.take(page, "meetings")
    page.get_by_role("link", name="Waiting for a choice").click()
    shots.take(page, "meetings-waiting")
    page.locator("select[name=rep]").select_option("raj.patel@" + DEMO_DOMAIN)
    page.get_by_role("button", name="Show what is skipped").click()
    assert page.locator("#skipped").is_visible()
    shots.take(page, "meetings-skipped")

    page.get_by_role("link", name="Funnel").click()
    assert page.locator("svg.funnel rect").count() > 0
    shots.take(page, "funnel")

    page.get_by_role("link", name="Privacy").click()
    page.locator("select[name=kind]").select_option("domain")
    page.locator("input[name=value]").fill("not a domain")
    page.get_by_role("button", name="Add").click()
    assert page.locator("#value-error").is_visible()  # shown next to the field
    page.locator("input[name=value]").fill("Competitor.example")
    page.get_by_role("button", name="Add").click()
    assert "competitor.example" in page.locator("#exclusions").inner_text()
    shots.take(page, "privacy")

    page.get_by_role("link", name="Audit").click()
    audit_text = page.locator("#audit").inner_text()
    for action in ("delivery.retry", "rep.deactivate", "exclusion.add"):
        assert action in audit_text
    shots.take(page, "audit")

    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{base}/admin/reps")
    assert "/admin/sign-in" in page.url or "/oauth2/v2.0/authorize" in page.url
    context.close()

    assert problems == []  # nothing the page's policy refused, no script errors
    with get_store(run.app).session() as session:
        item = session.get(OutboxItem, item_id)
        assert item is not None
        assert item.status in (OutboxStatus.PENDING, OutboxStatus.IN_FLIGHT, OutboxStatus.DONE)
        assert session.scalar(select(Rep.active).where(Rep.email == rep)) is False
        exclusion = session.scalar(select(PrivacyExclusion))
        assert exclusion is not None
        assert (exclusion.kind, exclusion.value) == ("domain", "competitor.example")
        actors = set(session.scalars(select(AuditEntry.actor)))
        assert actors == {DEMO_ADMIN}


def test_the_demos_console_link_signs_the_admin_in_with_one_click(
    demo: tuple[DemoRun, str],
) -> None:
    import requests

    _, base = demo
    http = requests.Session()

    page = http.get(console_sign_in_url(base), timeout=60)  # redirects: Entra and back

    assert page.status_code == 200
    assert page.url == f"{base}/admin/setup"
    assert "Dana Admin" in page.text
