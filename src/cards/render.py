"""Render every sample card to a PNG the way Teams (light theme) draws it.

    python -m cards.render --out cards-out

For each card: `<name>.json` (the card), `<name>.html` (a page that renders it with Microsoft's
adaptivecards.js and the Teams light host config) and `<name>.png` (headless Chromium's
screenshot, cropped to the card). Needs the npm tools under tests/node_modules (`make npm`),
Chromium (Debian: `apt-get install chromium`) and Pillow (a dev dependency).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cards.builders import CardJson, build_card
from cards.samples import sample_views

HOST_CONFIG = Path("adaptivecards-designer/lib/hostConfigs/microsoft-teams-light.json")
RENDERER = Path("adaptivecards/dist/adaptivecards.js")
TEAMS_CSS = Path("adaptivecards-designer/dist/containers/teams-container-light.css")
"""The designer's Teams light styles for buttons and inputs."""
CARD_WIDTH = 500
"""Width of a card in a Teams 1:1 chat, in CSS pixels."""
WINDOW = (CARD_WIDTH + 80, 2400)
BACKGROUND = (245, 245, 245)
"""Teams' light chat background, #f5f5f5."""
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--allow-file-access-from-files",
    "--virtual-time-budget=3000",
    "--lang=en-US",
    "--force-device-scale-factor=2",
)


class RenderError(Exception):
    """A card could not be rendered (missing tool, Chromium failure)."""


def card_page(card: CardJson, host_config: dict[str, Any], renderer_url: str, css_url: str) -> str:
    """An HTML page that renders `card` with adaptivecards.js inside a Teams-like message."""
    payload = json.dumps({"card": card, "hostConfig": host_config}).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>card</title>
<style>
  html, body {{ margin: 0; background: rgb{BACKGROUND}; }}
  body {{ padding: 24px 40px; font-family: "Segoe UI", "Liberation Sans", sans-serif; }}
  #card {{ width: {CARD_WIDTH}px; background: #fff; overflow: hidden; }}
  #error {{ color: #c4314b; white-space: pre-wrap; }}
</style>
<link rel="stylesheet" href="{html.escape(css_url)}">
<script src="{html.escape(renderer_url)}"></script>
</head><body><div id="card" class="teams-card"></div><div id="error"></div>
<script>
  const input = {payload};
  try {{
    const card = new AdaptiveCards.AdaptiveCard();
    card.hostConfig = new AdaptiveCards.HostConfig(input.hostConfig);
    card.parse(input.card, new AdaptiveCards.SerializationContext(AdaptiveCards.Versions.v1_5));
    document.getElementById("card").appendChild(card.render());
  }} catch (e) {{
    document.getElementById("error").textContent = String(e);
  }}
</script></body></html>
"""


def render_all(
    out: Path, node_modules: Path, chromium: str, only: list[str] | None = None
) -> dict[str, int]:
    """Writes JSON, HTML and PNG for each sample card; the card sizes in bytes by name."""
    host_config_path = node_modules / HOST_CONFIG
    renderer_path = node_modules / RENDERER
    css_path = node_modules / TEAMS_CSS
    for needed in (host_config_path, renderer_path, css_path):
        if not needed.exists():
            raise RenderError(f"{needed} is missing: run `make npm`")
    host_config = json.loads(host_config_path.read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, int] = {}
    for name, view in sample_views().items():
        if only and name not in only:
            continue
        card = build_card(view)
        card_json = json.dumps(card, ensure_ascii=False, separators=(",", ":"))
        sizes[name] = len(card_json.encode())
        (out / f"{name}.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
        page = out / f"{name}.html"
        page.write_text(
            card_page(
                card, host_config, renderer_path.resolve().as_uri(), css_path.resolve().as_uri()
            )
        )
        screenshot(page, out / f"{name}.png", chromium)
    return sizes


def screenshot(page: Path, png: Path, chromium: str) -> None:
    """Headless Chromium's screenshot of `page`, cropped to the card with a small margin."""
    from PIL import Image, ImageChops

    with tempfile.TemporaryDirectory(prefix="dealbridge-chromium-") as profile:
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--screenshot={png.resolve()}",
            page.resolve().as_uri(),
        ]
        # Our own argument list, no shell; the time zone makes DATE()/TIME() repeatable.
        result = subprocess.run(  # noqa: S603
            command,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "TZ": "Europe/London"},
        )
    if result.returncode != 0 or not png.exists():
        raise RenderError(f"chromium failed on {page.name}: {result.stderr.strip()[-500:]}")
    with Image.open(png) as shot:
        image = shot.convert("RGB")
    box = ImageChops.difference(image, Image.new("RGB", image.size, BACKGROUND)).getbbox()
    if box is None:
        raise RenderError(f"{page.name} rendered nothing")
    margin = 32
    left, top, right, bottom = box
    image.crop(
        (
            max(left - margin, 0),
            max(top - margin, 0),
            min(right + margin, image.width),
            min(bottom + margin, image.height),
        )
    ).save(png, optimize=True)


def _default_node_modules() -> Path:
    local = Path("tests/node_modules")
    if local.exists():
        return local
    return Path(__file__).resolve().parents[2] / "tests" / "node_modules"


def main(argv: list[str] | None = None) -> int:
    """`python -m cards.render --out DIR`: render the sample cards to PNGs."""
    parser = argparse.ArgumentParser(prog="python -m cards.render", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="where to write the files")
    parser.add_argument("--node-modules", type=Path, default=None, help="the npm tools")
    parser.add_argument("--chromium", default=None, help="the Chromium binary")
    parser.add_argument("--only", action="append", help="render only this card (repeatable)")
    args = parser.parse_args(argv)

    chromium = args.chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("Chromium not found: apt-get install chromium, or pass --chromium", file=sys.stderr)
        return 2
    try:
        sizes = render_all(
            args.out, args.node_modules or _default_node_modules(), chromium, args.only
        )
    except RenderError as e:
        print(f"render failed: {e}", file=sys.stderr)
        return 1
    for name, size in sizes.items():
        print(f"{name:28} {size:6,d} bytes  {args.out / (name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
