"""OData query options over JSON-shaped items: `$filter`, `$orderby`, `$select`, `$top`/`$skip`.

`$filter` covers what Outlook and directory queries use: comparisons (eq ne gt ge lt le) on
property paths, `and`/`or`/`not`, parentheses, `startswith`/`contains`, and lambda `any`/`Any`
over collections, e.g.
`singleValueExtendedProperties/Any(ep: ep/id eq '...' and ep/value eq '...')`.
String comparisons are case-insensitive, as Exchange compares.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.errors import GraphError

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<punct>[(),:/])"
    r"|(?P<datetime>\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?)"
    r"|(?P<number>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_$@][\w.$@]*))"
)
_OPERATORS = {"eq", "ne", "gt", "ge", "lt", "le"}


def invalid_filter(detail: str) -> GraphError:
    """Graph's answer for a `$filter` it cannot parse."""
    return GraphError(400, "BadRequest", f"Invalid filter clause: {detail}")


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def _tokens(text: str) -> list[_Token]:
    found, at = [], 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise invalid_filter(f"syntax error at position {at} in '{text}'.")
        kind = match.lastgroup or ""
        found.append(_Token(kind, match.group(kind)))
        at = match.end()
    return found


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self, offset: int = 0) -> _Token | None:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, text: str | None = None) -> _Token:
        token = self.peek()
        if token is None or (text is not None and token.text.lower() != text.lower()):
            raise invalid_filter(f"expected '{text or 'more'}' in '{self.text}'.")
        self.at += 1
        return token

    def is_word(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text.lower() == word

    def parse(self) -> Callable[[dict[str, Any]], bool]:
        expression = self.or_expression()
        if self.peek() is not None:
            raise invalid_filter(f"unexpected '{self.peek().text}' in '{self.text}'.")  # type: ignore[union-attr]
        return lambda item: expression(item, {})

    def or_expression(self) -> _Expr:
        left = self.and_expression()
        while self.is_word("or"):
            self.take()
            right = self.and_expression()
            left = _either(left, right)
        return left

    def and_expression(self) -> _Expr:
        left = self.unary()
        while self.is_word("and"):
            self.take()
            right = self.unary()
            left = _both(left, right)
        return left

    def unary(self) -> _Expr:
        if self.is_word("not"):
            self.take()
            inner = self.unary()
            return lambda item, scope: not inner(item, scope)
        token = self.peek()
        if token is not None and token.text == "(":
            self.take("(")
            inner = self.or_expression()
            self.take(")")
            return inner
        if (
            token is not None
            and token.kind == "word"
            and token.text.lower() in ("startswith", "contains")
        ):
            return self.function()
        return self.comparison_or_lambda()

    def function(self) -> _Expr:
        name = self.take().text.lower()
        self.take("(")
        path = self.path()
        self.take(",")
        value = self.literal()
        self.take(")")

        def check(item: dict[str, Any], scope: dict[str, Any]) -> bool:
            found = _resolve(item, scope, path)
            if not isinstance(found, str) or not isinstance(value, str):
                return False
            if name == "startswith":
                return found.lower().startswith(value.lower())
            return value.lower() in found.lower()

        return check

    def path(self) -> list[str]:
        parts = [self.take().text]
        while self.peek() is not None and self.peek().text == "/":  # type: ignore[union-attr]
            following = self.peek(1)
            if following is None or following.kind != "word":
                raise invalid_filter(f"bad property path in '{self.text}'.")
            if following.text.lower() == "any" and (self.peek(2) or _Token("", "")).text == "(":
                break
            self.take("/")
            parts.append(self.take().text)
        return parts

    def comparison_or_lambda(self) -> _Expr:
        token = self.peek()
        if token is None or token.kind != "word":
            raise invalid_filter(f"expected a property in '{self.text}'.")
        path = self.path()
        if self.peek() is not None and self.peek().text == "/":  # type: ignore[union-attr]
            self.take("/")
            self.take("any")
            self.take("(")
            variable = self.take().text
            self.take(":")
            body = self.or_expression()
            self.take(")")

            def any_of(item: dict[str, Any], scope: dict[str, Any]) -> bool:
                collection = _resolve(item, scope, path)
                if not isinstance(collection, list):
                    return False
                return any(body(item, {**scope, variable: element}) for element in collection)

            return any_of
        operator = self.take().text.lower()
        if operator not in _OPERATORS:
            raise invalid_filter(f"unknown operator '{operator}' in '{self.text}'.")
        value = self.literal()
        return lambda item, scope: _compare(_resolve(item, scope, path), operator, value)

    def literal(self) -> Any:
        token = self.take()
        if token.kind == "string":
            return token.text[1:-1].replace("''", "'")
        if token.kind == "datetime":
            return token.text
        if token.kind == "number":
            return float(token.text) if "." in token.text else int(token.text)
        if token.kind == "word" and token.text.lower() in ("true", "false"):
            return token.text.lower() == "true"
        if token.kind == "word" and token.text.lower() == "null":
            return None
        raise invalid_filter(f"expected a value, found '{token.text}' in '{self.text}'.")


_Expr = Callable[[dict[str, Any], dict[str, Any]], bool]


def _either(left: _Expr, right: _Expr) -> _Expr:
    return lambda item, scope: left(item, scope) or right(item, scope)


def _both(left: _Expr, right: _Expr) -> _Expr:
    return lambda item, scope: left(item, scope) and right(item, scope)


def _resolve(item: dict[str, Any], scope: dict[str, Any], path: list[str]) -> Any:
    first, rest = path[0], path[1:]
    current: Any = scope[first] if first in scope else _get(item, first)
    for part in rest:
        current = _get(current, part)
    return current


def _get(value: Any, name: str) -> Any:
    if not isinstance(value, dict):
        return None
    if name in value:
        return value[name]
    lowered = name.lower()
    for key, found in value.items():
        if key.lower() == lowered:
            return found
    return None


def _compare(found: Any, operator: str, value: Any) -> bool:
    if isinstance(found, str) and isinstance(value, str):
        found, value = found.lower(), value.lower()
    if operator == "eq":
        return bool(found == value)
    if operator == "ne":
        return bool(found != value)
    if found is None or value is None:
        return False
    try:
        if operator == "gt":
            return bool(found > value)
        if operator == "ge":
            return bool(found >= value)
        if operator == "lt":
            return bool(found < value)
        return bool(found <= value)
    except TypeError:
        return False


def parse_filter(text: str) -> Predicate:
    """A predicate over a JSON-shaped item for a `$filter` expression."""
    return _Parser(text).parse()


def sort_items(items: list[dict[str, Any]], orderby: str) -> list[dict[str, Any]]:
    """Apply `$orderby` ('path [asc|desc], ...'); missing values sort first, as nulls do."""
    keys: list[tuple[list[str], bool]] = []
    for clause in orderby.split(","):
        words = clause.split()
        if (
            not words
            or len(words) > 2
            or (len(words) == 2 and words[1].lower() not in ("asc", "desc"))
        ):
            raise GraphError(400, "BadRequest", f"Invalid $orderby clause: '{orderby}'.")
        keys.append((words[0].split("/"), len(words) == 2 and words[1].lower() == "desc"))
    ordered = list(items)
    for path, descending in reversed(keys):

        def key(item: dict[str, Any], path: list[str] = path) -> tuple[int, Any]:
            return _sort_key(_resolve(item, {}, path))

        ordered.sort(key=key, reverse=descending)
    return ordered


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, str):
        return (1, value.lower())
    return (1, value)


def select_names(text: str | None, known: set[str], type_name: str) -> list[str] | None:
    """`$select` names, refusing an unknown property as Graph does."""
    if not text:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    lowered = {k.lower(): k for k in known}
    chosen = []
    for name in names:
        if name.lower() not in lowered:
            raise GraphError(
                400,
                "BadRequest",
                f"Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'.",
            )
        chosen.append(lowered[name.lower()])
    return chosen


def int_option(query: dict[str, str], name: str, maximum: int | None = None) -> int | None:
    """`$top` or `$skip` as an int; Graph's 400 for anything else."""
    raw = query.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise GraphError(400, "BadRequest", f"Invalid value '{raw}' for query option '{name}'.")
    value = int(raw)
    if maximum is not None and value > maximum:
        raise GraphError(
            400,
            "ErrorInvalidParameter" if name == "$top" else "BadRequest",
            f"The value '{value}' of the query option '{name}' exceeds the maximum of {maximum}.",
        )
    return value
