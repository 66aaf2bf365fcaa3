"""The security headers of every answer, set in one place.

- ``X-Content-Type-Options: nosniff`` on every answer: the Graph validation handshake echoes
  the caller's text as ``text/plain``, which a browser must never sniff into HTML.
- ``Cache-Control: no-store`` on every answer under ``/api/v1/`` and on any answer to a
  request that carried credentials: what a key may read must not stay in a shared cache.
- On HTML pages, a Content Security Policy: only our own origin (``default-src 'self'``), the
  page's own inline styles by hash (no ``'unsafe-inline'``), and ``frame-ancestors 'none'``
  (with ``X-Frame-Options: DENY`` for old browsers), except on the views marked
  :func:`teams_tab`, which only Teams may frame.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, Response, current_app, request

from connector.settings import SETTINGS_EXTENSION

TEAMS_FRAME_ANCESTORS = (
    "https://teams.microsoft.com https://*.teams.microsoft.com https://*.skype.com"
)
"""The origins that frame a Teams tab (the Teams web and desktop clients)."""

_STYLE = re.compile(rb"<style[^>]*>(.*?)</style>", re.DOTALL | re.IGNORECASE)
_TAB_VIEWS: set[Callable[..., object]] = set()
V = TypeVar("V", bound=Callable[..., object])


def teams_tab(view: V) -> V:
    """Mark a view as a Teams tab page: Teams may frame it, nothing else may."""
    _TAB_VIEWS.add(view)
    return view


def _is_tab() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return view is not None and view in _TAB_VIEWS


def page_policy(html: bytes, *, tab: bool, extra_framers: tuple[str, ...] = ()) -> str:
    """The CSP of an HTML page: self, its inline styles by hash, who may frame it
    (``extra_framers``: DEALBRIDGE_TAB_FRAME_ANCESTORS, for a tab only)."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(style).digest()).decode() + "'"
        for style in _STYLE.findall(html)
    ]
    framers = " ".join([TEAMS_FRAME_ANCESTORS, *extra_framers]) if tab else "'none'"
    return "; ".join(
        [
            "default-src 'self'",
            " ".join(["style-src 'self'", *dict.fromkeys(hashes)]),
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {framers}",
        ]
    )


def _tab_framers() -> list[str]:
    settings = current_app.extensions.get(SETTINGS_EXTENSION)
    found = getattr(settings, "tab_frame_ancestors", None) or []
    return [origin for origin in found if isinstance(origin, str) and " " not in origin]


def init_app(app: Flask) -> None:
    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers["X-Content-Type-Options"] = "nosniff"
        if request.path.startswith("/api/v1/") or "Authorization" in request.headers:
            headers["Cache-Control"] = "no-store"
        if response.mimetype == "text/html":
            tab = _is_tab()
            html = b"" if response.direct_passthrough else response.get_data()
            extra = tuple(_tab_framers()) if tab else ()
            headers["Content-Security-Policy"] = page_policy(html, tab=tab, extra_framers=extra)
            if not tab:
                headers["X-Frame-Options"] = "DENY"
        return response
