"""The exception tree of the connector and the one place that turns it into problem+json.

``DealBridgeError`` is the root. Each subclass carries an HTTP status and, where it helps,
the ids involved. :func:`init_app` answers every error of a request as RFC 9457
``application/problem+json``, so no input can produce an HTML page or an unexplained 500.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from flask import Flask, Response, json, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


class FieldProblem(BaseModel):
    """One invalid input: where it was and what is wrong with it."""

    field: str
    """The field, dotted for nested ones (``stages.0.name``); ``(body)`` for the whole body."""
    message: str
    """What is wrong with its value."""
    location: Literal["body", "query", "path"] = "body"
    """Where the field was sent."""


class Problem(BaseModel):
    """RFC 9457 problem details: every error response, and its OpenAPI schema."""

    type: str
    """``/api/problems/<slug>``, or ``about:blank`` for a plain HTTP error."""
    title: str
    """The kind of problem, the same for every occurrence."""
    status: int
    """The HTTP status."""
    detail: str
    """What went wrong this time, naming the field or id."""
    instance: str | None = None
    """The path of the request."""
    errors: list[FieldProblem] | None = None
    """Each invalid input; absent when the problem is not about input."""


class DealBridgeError(Exception):
    status = 500
    title = "Internal error"
    slug = "internal-error"

    def __init__(self, detail: str, *, errors: Sequence[FieldProblem] = (), **ids: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)
        self.ids = ids


class BadRequest(DealBridgeError):
    status, title, slug = 400, "Malformed request", "malformed-request"


class Unauthorized(DealBridgeError):
    status, title, slug = 401, "Missing or invalid API key", "unauthorized"


class Forbidden(DealBridgeError):
    status, title, slug = 403, "Not allowed", "forbidden"


class NotFound(DealBridgeError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(DealBridgeError):
    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(DealBridgeError):
    status, title, slug = 413, "Request too large", "payload-too-large"


class InvalidInput(DealBridgeError):
    status, title, slug = 422, "Invalid input", "validation-error"


def invalid(field: str, message: str, location: str = "body") -> InvalidInput:
    """An :class:`InvalidInput` about one field."""
    return InvalidInput(
        f"{field}: {message}",
        errors=[FieldProblem(field=field, message=message, location=location)],
    )


def from_validation_error(exc: ValidationError, location: str, prefix: str = "") -> InvalidInput:
    problems = []
    for err in exc.errors(include_url=False):
        field = prefix + ".".join(str(p) for p in err["loc"]) if err["loc"] else prefix.rstrip(".")
        message = str(err["msg"]).removeprefix("Value error, ")
        problems.append(FieldProblem(field=field or "(body)", message=message, location=location))
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return InvalidInput(f"{first.field}: {first.message}{more}", errors=problems)


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str = "about:blank",
    errors: Sequence[FieldProblem] = (),
    headers: dict[str, str] | None = None,
) -> Response:
    problem = Problem(
        type=f"/api/problems/{slug}" if slug != "about:blank" else slug,
        title=title,
        status=status,
        detail=detail,
        instance=request.path,
        errors=list(errors) or None,
    )
    body = json.dumps(problem.model_dump(exclude_none=True))
    response = Response(body, status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(DealBridgeError)
    def _domain_error(exc: DealBridgeError) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="dealbridge"'} if exc.status == 401 else None
        return problem_response(
            exc.status, exc.title, exc.detail, slug=exc.slug, errors=exc.errors, headers=headers
        )

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            return problem_response(
                413,
                PayloadTooLarge.title,
                f"the body is larger than the limit of {limit} bytes",
                slug=PayloadTooLarge.slug,
            )
        headers = {}
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return problem_response(
            status, exc.name, exc.description or exc.name, headers=headers or None
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return problem_response(
            500, "Internal error", "an unexpected error happened; it has been logged"
        )
