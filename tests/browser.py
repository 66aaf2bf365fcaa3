"""A real browser for the page tests: Debian's Chromium driven by Playwright.

Playwright cannot download its own browsers here, so it drives the installed one through
``executable_path``. Where Chromium is missing, the tests that need it skip with one line.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

HOW_TO_GET_CHROMIUM = "Chromium is not installed: apt-get install chromium"


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module; each test opens its own page or context.

    Per module, not per session: Playwright's sync API keeps its event loop marked running on
    the main thread until it stops, so a session-long browser made every later test that
    calls ``asyncio.run`` (msgraph-sdk's) fail with "Cannot run the event loop while another
    loop is running"."""
    path = chromium_path()
    if path is None:
        pytest.skip(HOW_TO_GET_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
