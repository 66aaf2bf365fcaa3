"""Parse sandbox answers with msgraph-sdk's typed models; flag any field the models do not know.

A property the model lacks lands in `additional_data`: a misspelled or invented field. Only OData
annotations (`@odata.*`, `@removed`) may be there.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

JSON = "application/json"


def parse(model: type[Any], payload: Any) -> Any:
    """The payload (a dict, or JSON bytes) as an instance of an msgraph model class."""
    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory

    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    node = JsonParseNodeFactory().get_root_parse_node(JSON, raw)
    return node.get_object_value(model)


def unknown_fields(parsed: Any, where: str = "$") -> list[str]:
    """Every non-annotation key that landed in an `additional_data`, with its path."""
    found: list[str] = []
    extra = getattr(parsed, "additional_data", None) or {}
    found.extend(f"{where}.{key}" for key in extra if not key.startswith("@"))
    if dataclasses.is_dataclass(parsed):
        for f in dataclasses.fields(parsed):
            if f.name in ("additional_data", "backing_store"):
                continue
            found.extend(_walk(getattr(parsed, f.name), f"{where}.{f.name}"))
    return found


def _walk(value: Any, where: str) -> list[str]:
    if isinstance(value, list):
        return [problem for i, item in enumerate(value) for problem in _walk(item, f"{where}[{i}]")]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return unknown_fields(value, where)
    return []


def assert_typed(model: type[Any], payload: Any) -> Any:
    """Parse with the model and fail on any unknown field; the parsed object for more checks."""
    parsed = parse(model, payload)
    problems = unknown_fields(parsed)
    assert not problems, f"fields unknown to msgraph's {model.__name__}: {problems}"
    return parsed
