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


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session; each test opens its own context."""
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
