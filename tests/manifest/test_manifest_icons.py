"""The two icons Teams requires, checked the way Teams describes them."""

from __future__ import annotations

from importlib.resources import files
from typing import cast

from PIL import Image

from manifest.build import DEFAULT_ACCENT_COLOR
from manifest.icons import draw

WHITE = (255, 255, 255)


def _open(name: str) -> Image.Image:
    path = files("manifest") / "icons" / name
    with path.open("rb") as stream:
        image = Image.open(stream)
        image.load()
    assert image.format == "PNG"
    return image


def _pixels(image: Image.Image) -> list[tuple[int, ...]]:
    return list(cast("tuple[tuple[int, ...], ...]", image.get_flattened_data()))


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return (int(hex_color[1:3], 16), int(hex_color[3:5], 16), int(hex_color[5:7], 16))


def test_color_icon_is_an_opaque_192_png_with_a_full_bleed_accent_background() -> None:
    image = _open("color.png")

    assert image.size == (192, 192)
    assert image.mode == "RGB"
    accent = _rgb(DEFAULT_ACCENT_COLOR)
    corners = [(0, 0), (191, 0), (0, 191), (191, 191)]
    assert all(image.getpixel(corner) == accent for corner in corners)
    edges = [image.getpixel((i, 0)) for i in range(192)] + [
        image.getpixel((0, i)) for i in range(192)
    ]
    assert set(edges) == {accent}


def test_color_icon_draws_a_white_mark_inside_the_central_safe_area() -> None:
    image = _open("color.png")
    pixels = _pixels(image)
    white = [i for i, pixel in enumerate(pixels) if pixel == WHITE]

    assert len(white) > 192 * 192 // 20
    rows = {i // 192 for i in white}
    columns = {i % 192 for i in white}
    # Teams crops the colour icon; its guidance keeps the symbol in the central 96×96.
    assert min(rows) >= 48
    assert max(rows) < 144
    assert min(columns) >= 48
    assert max(columns) < 144


def test_outline_icon_is_a_32_png_of_white_on_transparent_only() -> None:
    image = _open("outline.png")

    assert image.size == (32, 32)
    assert image.mode == "RGBA"
    pixels = _pixels(image)
    not_white = [pixel for pixel in pixels if pixel[3] > 0 and pixel[:3] != WHITE]
    assert not_white == []
    assert sum(1 for pixel in pixels if pixel[3] == 0) > 32 * 32 // 4
    assert sum(1 for pixel in pixels if pixel[3] == 255) > 32 * 32 // 10


def test_committed_icons_are_what_the_drawing_script_makes() -> None:
    assert _pixels(draw.draw_color()) == _pixels(_open("color.png"))
    assert _pixels(draw.draw_outline()) == _pixels(_open("outline.png"))
