"""A plain HTML preview of an Adaptive Card for the sandbox's chats page (no CDN, no script).

Not a renderer Teams would recognise: enough to see a card's text, facts, inputs and buttons
while watching the demo. The JSON stays one click away.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

# Adaptive Cards' date functions, which Teams formats in the viewer's locale and zone.
_DATE_FUNCTION = re.compile(r"\{\{(DATE|TIME)\(([^,)]+)(?:,\s*(\w+))?\)\}\}")


def _dates(text: str) -> str:
    def formatted(match: re.Match[str]) -> str:
        try:
            moment = dt.datetime.fromisoformat(match[2].replace("Z", "+00:00"))
        except ValueError:
            return match[0]
        if match[1] == "TIME":
            return moment.strftime("%H:%M UTC")
        style = (match[3] or "COMPACT").upper()
        return moment.strftime("%a, %b %d, %Y" if style in ("SHORT", "LONG") else "%Y-%m-%d")

    return _DATE_FUNCTION.sub(formatted, text)


_SIZES = {
    "small": ".8rem",
    "default": ".9rem",
    "medium": "1rem",
    "large": "1.2rem",
    "extralarge": "1.4rem",
}
_COLORS = {"accent": "#5b5fc7", "good": "#237b4b", "warning": "#835b00", "attention": "#c4314b"}


def card_html(card: Any) -> str:
    """The card's body and actions as HTML."""
    if not isinstance(card, dict):
        return ""
    parts = [_elements(card.get("body") or [])]
    actions = card.get("actions") or []
    if actions:
        parts.append(_actions(actions))
    return f"<div class='ac'>{''.join(parts)}</div>"


def _elements(items: Any) -> str:
    return "".join(_element(item) for item in items if isinstance(item, dict))


def _element(item: dict[str, Any]) -> str:
    kind = item.get("type")
    if item.get("isVisible") is False:
        return ""
    if kind == "TextBlock":
        style = [f"font-size:{_SIZES.get(str(item.get('size', 'default')).lower(), '.9rem')}"]
        if str(item.get("weight", "")).lower() == "bolder":
            style.append("font-weight:600")
        color = _COLORS.get(str(item.get("color", "")).lower())
        if color:
            style.append(f"color:{color}")
        if item.get("isSubtle"):
            style.append("color:#666")
        text = html.escape(_dates(str(item.get("text", ""))))
        return f"<div style='{';'.join(style)}'>{text}</div>"
    if kind == "RichTextBlock":
        runs = "".join(
            html.escape(str(r.get("text", "")))
            for r in item.get("inlines") or []
            if isinstance(r, dict)
        )
        return f"<div>{runs}</div>"
    if kind == "FactSet":
        rows = "".join(
            f"<tr><td class='k'>{html.escape(str(f.get('title', '')))}</td>"
            f"<td>{html.escape(_dates(str(f.get('value', ''))))}</td></tr>"
            for f in item.get("facts") or []
            if isinstance(f, dict)
        )
        return f"<table class='facts'>{rows}</table>"
    if kind in ("Container", "Column"):
        return f"<div class='box'>{_elements(item.get('items') or [])}</div>"
    if kind == "ColumnSet":
        columns = "".join(
            f"<div style='flex:1'>{_element({**c, 'type': 'Column'})}</div>"
            for c in item.get("columns") or []
            if isinstance(c, dict)
        )
        return f"<div style='display:flex;gap:.6rem'>{columns}</div>"
    if kind == "ActionSet":
        return _actions(item.get("actions") or [])
    if kind and str(kind).startswith("Input."):
        label = item.get("label") or item.get("placeholder") or item.get("id", "")
        return f"<div class='input'>{html.escape(str(label))} ▢</div>"
    if kind == "Image":
        return "<div class='k'>[image]</div>"
    return ""


def _actions(actions: Any) -> str:
    buttons = "".join(
        f"<span class='btn' title='{html.escape(str(a.get('verb') or a.get('url') or ''))}'>"
        f"{html.escape(str(a.get('title', '')))}</span>"
        for a in actions
        if isinstance(a, dict)
    )
    return f"<div class='actions'>{buttons}</div>"
