"""Every card, in every state, parsed by Microsoft's adaptivecards library at schema 1.5."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cards.builders import build_card

from .card_walk import every_view

HERE = Path(__file__).parent
NODE_MODULES = HERE.parent / "node_modules"
VALIDATOR = HERE / "validate_cards.js"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(NODE is None, reason="node is not installed (make test installs it)"),
    pytest.mark.skipif(
        not (NODE_MODULES / "adaptivecards" / "dist" / "adaptivecards.js").exists(),
        reason="tests/node_modules is missing: run `make npm`",
    ),
]


def validate(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """Runs all cards through one node process; the events of each card by name."""
    assert NODE is not None
    result = subprocess.run(
        [NODE, str(VALIDATOR)],
        input=json.dumps(entries),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return {r["name"]: r["events"] for r in json.loads(result.stdout)}


def test_every_card_in_every_state_parses_at_1_5_without_validation_events(
    record_property: Any,
) -> None:
    cards = {name: build_card(view) for name, view in every_view().items()}

    events = validate([{"name": name, "card": card} for name, card in cards.items()])

    sizes = {
        name: len(json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode())
        for name, card in cards.items()
    }
    record_property("card_sizes_bytes", json.dumps(sizes))
    assert set(events) == set(cards)
    assert {name: e for name, e in events.items() if e} == {}
    assert {name: s for name, s in sizes.items() if s >= 40 * 1024} == {}


def test_the_validator_reports_what_1_5_does_not_allow() -> None:
    broken = {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [
            {"type": "Carousel", "pages": []},
            {"type": "Input.Text"},
            {"type": "Input.Text", "id": "note"},
            {"type": "Input.Text", "id": "note"},
        ],
    }

    events = validate([{"name": "broken", "card": broken}])["broken"]

    kinds = {e["event"] for e in events}
    assert "UnknownElementType" in kinds
    assert "DuplicateId" in kinds
