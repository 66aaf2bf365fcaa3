"""Draws the two Teams app icons, color.png and outline.png, next to this file.

Run it after changing the mark: `.venv/bin/python src/manifest/icons/draw.py`. Pillow is a
development dependency only; at run time the package just copies the committed PNGs.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

#: The default accent colour (DEALBRIDGE_ACCENT_COLOR): the colour icon's background.
BACKGROUND = "#0E7C86"
#: Drawing at this multiple of the final size, then downsampling, gives smooth edges.
SUPERSAMPLE = 8

Box = tuple[float, float, float, float]


def _draw_mark(draw: ImageDraw.ImageDraw, box: Box, fill: int | str) -> None:
    """A bridge arc and its deck over a pipeline of three stages, fitted into `box`."""
    left, top, right, bottom = box
    width, height = right - left, bottom - top

    def x(u: float) -> float:
        return left + u * width

    def y(v: float) -> float:
        return top + v * height

    stroke = round(0.10 * width)
    deck = 0.52
    # The arch springs from below the deck at both ends, as on a through-arch bridge.
    spring = 0.70
    arc_box = (x(0.04), y(0.08), x(0.96), y(2 * spring - 0.08))
    draw.arc(arc_box, start=180, end=360, fill=fill, width=stroke)
    draw.rectangle((x(0.0), y(deck) - stroke / 2, x(1.0), y(deck) + stroke / 2), fill=fill)
    # Hangers between arch and deck make it read as a bridge rather than a dome.
    for u in (0.3, 0.5, 0.7):
        draw.rectangle((x(u) - stroke / 4, y(0.14), x(u) + stroke / 4, y(deck)), fill=fill)
    # The pipeline: three stage dots joined by a thin line.
    line_y = y(0.90)
    draw.rectangle((x(0.14), line_y - stroke / 4, x(0.86), line_y + stroke / 4), fill=fill)
    radius = 0.10 * width
    for u in (0.14, 0.5, 0.86):
        draw.ellipse((x(u) - radius, line_y - radius, x(u) + radius, line_y + radius), fill=fill)


def draw_color(size: int = 192) -> Image.Image:
    """Full-bleed accent background with the white mark inside the central 96×96 safe area."""
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), BACKGROUND)
    margin = big / 4
    _draw_mark(ImageDraw.Draw(image), (margin, margin, big - margin, big - margin), "#FFFFFF")
    return image.resize((size, size), Image.Resampling.LANCZOS)


def draw_outline(size: int = 32) -> Image.Image:
    """The white mark on a transparent background; only alpha varies, the colour is white."""
    big = size * SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    margin = big / 16
    _draw_mark(ImageDraw.Draw(mask), (margin, margin, big - margin, big - margin), 255)
    alpha = mask.resize((size, size), Image.Resampling.LANCZOS)
    image = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    image.putalpha(alpha)
    return image


def main() -> None:
    here = Path(__file__).resolve().parent
    draw_color().save(here / "color.png", optimize=True)
    draw_outline().save(here / "outline.png", optimize=True)


if __name__ == "__main__":
    main()
