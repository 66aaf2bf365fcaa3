"""A Graph request and answer, independent of Flask (a `$batch` item is a request too)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox import timezones
from sandbox.errors import GraphError

ODATA_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)
_PREFERENCE = re.compile(r'\s*([A-Za-z][\w.-]*)\s*(?:=\s*("[^"]*"|[^,;]*))?\s*[,;]?')


@dataclass
class Prefer:
    """The `Prefer` preferences Graph honours for Outlook: page size, time zone, body type."""

    max_page_size: int | None = None
    time_zone: str | None = None
    body_content_type: str | None = None

    @classmethod
    def parse(cls, header: str | None) -> Prefer:
        """Read one or more comma-separated preferences; unknown ones are ignored, as Graph does."""
        found = cls()
        for name, raw in _PREFERENCE.findall(header or ""):
            value = raw.strip().strip('"')
            key = name.lower()
            if key == "odata.maxpagesize" and value.isdigit() and int(value) > 0:
                found.max_page_size = int(value)
            elif key == "outlook.timezone" and value:
                found.time_zone = value
            elif key == "outlook.body-content-type" and value.lower() in ("text", "html"):
                found.body_content_type = value.lower()
        return found


@dataclass
class GraphRequest:
    """One Graph call: method, path after `/v1.0`, query (names lower-cased), headers, body."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    base_url: str
    claims: dict[str, Any]
    query_string: str = ""
    in_batch: bool = False
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def prefer(self) -> Prefer:
        """The client's preferences."""
        return Prefer.parse(self.headers.get("prefer"))

    @property
    def graph_base(self) -> str:
        """Where links in answers point: the sandbox's `/v1.0`, as the client reached it."""
        return f"{self.base_url}/v1.0"

    @property
    def client_request_id(self) -> str:
        """The client's id for the call, echoed back (or ours when it sent none)."""
        return self.headers.get("client-request-id") or self.request_id

    def line(self) -> str:
        """'METHOD /v1.0/path?query': what fault rules are matched against."""
        tail = f"?{self.query_string}" if self.query_string else ""
        return f"{self.method} /v1.0{self.path}{tail}"


@dataclass
class GraphResponse:
    """An answer: status, JSON body (or None), headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False
    """A `lost_reset` fault: close the connection instead of sending this answer."""


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> GraphResponse:
    """A JSON answer."""
    return GraphResponse(status, body, dict(headers or {}))


def no_content() -> GraphResponse:
    """204."""
    return GraphResponse(204)


def error_response(error: GraphError, request: GraphRequest) -> GraphResponse:
    """Graph's error body: code, message, and innerError with the date and request ids."""
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "innerError": {
                "date": timezones.format_utc_seconds(datetime.now(UTC)),
                "request-id": request.request_id,
                "client-request-id": request.client_request_id,
            },
        }
    }
    return GraphResponse(error.status, body, dict(error.headers))


def applied_preferences(request: GraphRequest, page_size: int | None = None) -> dict[str, str]:
    """`Preference-Applied` for the preferences that shaped an answer."""
    prefer = request.prefer
    applied = []
    if page_size is not None and prefer.max_page_size is not None:
        applied.append(f"odata.maxpagesize={page_size}")
    if prefer.time_zone:
        applied.append(f'outlook.timezone="{prefer.time_zone}"')
    return {"Preference-Applied": ", ".join(applied)} if applied else {}
