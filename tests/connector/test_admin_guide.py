"""The admin guide keeps up with the code: every setting, permission, public URL, doctor line
and command it must name."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from flask import Flask

from connector.admin.cli import cli
from connector.admin.doctor import run_checks
from connector.settings import ENV_PREFIX, Settings
from graph_sync.directory import MAILBOX_SETTINGS_READ, ORGANIZATION_READ, USER_READ
from graph_sync.online_meetings import ARTIFACTS_PERMISSION, MEETINGS_PERMISSION
from graph_sync.teams import ACTIVITY_PERMISSION, INSTALL_PERMISSION
from manifest.build import template

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "admin-guide.md"


@pytest.fixture(scope="module")
def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = re.search(r"^## ", text[start + len(heading) :], re.MULTILINE)
    return text[start : start + len(heading) + following.start()] if following else text[start:]


def test_the_settings_table_has_a_row_for_every_setting(guide: str) -> None:
    table = _section(guide, "## 5. Configure DealBridge")
    rows = set(re.findall(r"^\| `(DEALBRIDGE_[A-Z0-9_]+)` \|", table, re.MULTILINE))

    wanted = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}

    assert wanted - rows == set()
    assert rows - wanted == set()


def test_every_graph_permission_we_call_with_is_in_the_permissions_table(guide: str) -> None:
    table = _section(guide, "## 2. Graph permissions")
    resource_specific = [
        p["name"] for p in template()["authorization"]["permissions"]["resourceSpecific"]
    ]
    used = [
        "Calendars.ReadWrite",
        MAILBOX_SETTINGS_READ,
        USER_READ,
        ORGANIZATION_READ,
        INSTALL_PERMISSION,
        ACTIVITY_PERMISSION,
        "AppCatalog.Submit",
        *resource_specific,
        MEETINGS_PERMISSION,  # Teams attendance (optional)
        ARTIFACTS_PERMISSION,
    ]

    missing = [p for p in used if f"| `{p}` |" not in table]

    assert missing == []


def test_every_public_url_graph_and_teams_call_is_listed(guide: str) -> None:
    table = _section(guide, "## 6. Run it behind HTTPS")
    paths = ["/api/messages", "/api/graph/notifications", "/api/graph/lifecycle", "/healthz"]

    missing = [p for p in [*paths, "/privacy", "/terms"] if f"`{p}`" not in table]

    assert missing == []


def test_troubleshooting_covers_every_line_doctor_prints(guide: str, app: Flask) -> None:
    troubleshooting = _section(guide, "## Troubleshooting")
    names = [result.name for result in run_checks(app)]

    missing = [
        name
        for name in names
        if name not in troubleshooting and name.removeprefix("Graph permission ") == name
    ]
    permissions = [n for n in names if n.startswith("Graph permission ")]

    assert len(names) == 15
    assert missing == []
    assert "### ✗ Graph permission …" in troubleshooting
    assert all(n.removeprefix("Graph permission ") in guide for n in permissions)


def test_every_dealbridge_command_the_guide_names_exists(guide: str) -> None:
    named = set(re.findall(r"dealbridge ((?:[a-z][a-z-]* ?)+)", guide))
    unknown = []
    for words in sorted(named):
        command: click.Command | None = cli
        for word in words.split():
            if not isinstance(command, click.Group):
                break
            command = command.get_command(click.Context(command), word)
            if command is None:
                unknown.append(words)
                break

    assert len(named) >= 8
    assert unknown == []
