"""`make cards`: the HTML page per card, and (when Chromium is here) the PNG."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cards import samples
from cards.builders import reminder_card
from cards.render import BACKGROUND, card_page, main

NODE_MODULES = Path(__file__).parent.parent / "node_modules"


def test_the_page_embeds_the_card_the_host_config_and_the_renderer() -> None:
    card = reminder_card(samples.reminder(deal_title="</script><b>Fleet</b>"))

    page = card_page(
        card, {"fontFamily": "Segoe UI"}, "file:///r/adaptivecards.js", "file:///t.css"
    )

    assert '<script src="file:///r/adaptivecards.js"></script>' in page
    assert '<link rel="stylesheet" href="file:///t.css">' in page
    assert "AdaptiveCards.Versions.v1_5" in page
    assert "</script><b>" not in page
    payload = page.split("const input = ", 1)[1].split(";\n", 1)[0]
    assert json.loads(payload)["card"] == card


@pytest.mark.slow
@pytest.mark.node
@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Chromium is not installed: apt-get install chromium"
)
@pytest.mark.skipif(not NODE_MODULES.exists(), reason="tests/node_modules is missing")
def test_the_reminder_renders_to_a_cropped_png(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    from PIL import Image

    code = main(["--out", str(tmp_path), "--node-modules", str(NODE_MODULES), "--only", "reminder"])

    assert code == 0
    with Image.open(tmp_path / "reminder.png") as image:
        rgb = image.convert("RGB")
        assert 600 < rgb.width < 1400
        assert rgb.height > 300
        colours = rgb.getcolors(maxcolors=1_000_000) or []
        assert len(colours) > 50
        assert rgb.getpixel((0, 0)) == BACKGROUND
    assert json.loads((tmp_path / "reminder.json").read_text())["version"] == "1.5"
