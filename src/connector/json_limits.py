"""Deep JSON is refused before anything parses it.

Python's ``json`` recurses once per level: a body nested 10,000 deep raises ``RecursionError``
(a 500) in whichever route parses it. :func:`init_app` checks every request body, whatever
its content type (the Graph and bot routes parse what they are sent), before any view runs,
and answers 400 problem+json naming the limit. The check does not parse: strings are cut out
and brackets counted, in C (``re``, ``bytes.translate``, ``bytes.replace``): at most 65 passes
over what is left (the worst 5 MiB body: under 1 s, less than ``json.loads`` of it; figures in
docs/deploy.md), and one ``count`` for a body with fewer brackets than the limit.
"""

from __future__ import annotations

import re

from flask import Flask, request

from connector.errors import BadRequest

MAX_JSON_DEPTH = 64
"""The deepest nesting of arrays and objects a body may have: far above what the API, Graph
or Teams send, far below where ``json`` runs out of stack (about 1,000)."""

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")


def nesting_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``raw`` nests arrays/objects deeper than ``limit`` (or may: an unclosed
    bracket counts as a level, as it does for a recursive parser).

    Each pass removes every innermost ``[]`` pair, so the nesting falls by at least one per
    pass: a balanced body is exactly as deep as the passes that empty it. What no pass can
    remove is unbalanced (``]]][[[``); its opening brackets are levels a parser would enter
    before it failed, so they count on top."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", raw).translate(_AS_SQUARE, _NOT_BRACKETS)
    passes = 0
    while passes <= limit:
        shorter = brackets.replace(b"[]", b"")
        if shorter == brackets:
            break
        brackets, passes = shorter, passes + 1
    return passes + brackets.count(b"[") > limit


def init_app(app: Flask) -> None:
    @app.before_request
    def _refuse_deep_json() -> None:
        if request.content_length == 0:
            return
        raw = request.get_data(cache=True)  # within MAX_CONTENT_LENGTH, or 413 before this
        if nesting_exceeds(raw):
            raise BadRequest(
                f"the body is nested more than {MAX_JSON_DEPTH} levels deep "
                f"(arrays and objects within each other): the limit is {MAX_JSON_DEPTH}"
            )
