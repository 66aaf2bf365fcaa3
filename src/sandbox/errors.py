"""The one error the sandbox's Graph side raises; the Graph layer renders it as Graph does."""

from __future__ import annotations

from typing import Any


class GraphError(Exception):
    """A Graph error answer: HTTP status, the `error.code` and `error.message` Graph would send."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    """400 with Graph's generic code unless a service-specific one is given."""
    return GraphError(400, code, message)


def item_not_found() -> GraphError:
    """Exchange's answer for an event id that is well formed but not in the mailbox."""
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def malformed_id() -> GraphError:
    """Exchange's answer for an id it cannot decode."""
    return GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")


def without_annotations(body: Any) -> Any:
    """A JSON body without OData annotations (`@odata.type`...), which Graph accepts anywhere."""
    if isinstance(body, dict):
        return {k: without_annotations(v) for k, v in body.items() if not k.startswith("@")}
    if isinstance(body, list):
        return [without_annotations(item) for item in body]
    return body
