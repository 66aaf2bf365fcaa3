"""Declared API operations: one decorator validates, authorises, serialises and documents.

Each operation names its body, query and response models; the same declaration drives the
validation (pydantic, errors as problem+json naming the field) and the OpenAPI document, so
the two cannot drift apart.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, g, json, request
from pydantic import BaseModel, ValidationError

from connector.api.keys import Caller, Scope, find_caller
from connector.deals.models import nul_context
from connector.errors import (
    BadRequest,
    Forbidden,
    Unauthorized,
    from_validation_error,
    invalid,
)
from connector.settings import current_settings
from connector.store.db import db_session

Handler = Callable[..., Any]
# Shared by every resource under /deals/<deal_id>/... (deals, interactions, reminders' list).
ID_RULE = "<string(maxlength=128):deal_id>"
DEAL_ID = {"deal_id": "The CRM's id of the deal."}


@dataclass
class Operation:
    method: str
    rule: str
    handler: Handler
    summary: str
    tag: str
    scope: Scope | None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    description: str = ""
    documented_body: type[BaseModel] | None = None
    path_params: dict[str, str] = field(default_factory=dict)
    also: dict[int, str] = field(default_factory=dict)


class Api:
    """A blueprint whose routes are declared operations."""

    def __init__(self, name: str, url_prefix: str) -> None:
        self.blueprint = Blueprint(name, __name__, url_prefix=url_prefix)
        self.url_prefix = url_prefix
        self.operations: list[Operation] = []

    def operation(
        self,
        method: str,
        rule: str,
        *,
        summary: str,
        tag: str,
        scope: Scope | None = "read",
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        errors: tuple[int, ...] = (),
        path_params: dict[str, str] | None = None,
        documented_body: type[BaseModel] | None = None,
        also: dict[int, str] | None = None,
    ) -> Callable[[Handler], Handler]:
        """``also``: other success statuses the handler answers with the same response model
        (a repeated POST's 200), each with its meaning, for the document."""

        def register(handler: Handler) -> Handler:
            op = Operation(
                method=method,
                rule=rule,
                handler=handler,
                summary=summary,
                tag=tag,
                scope=scope,
                body=body,
                query=query,
                response=response,
                status=status,
                errors=errors,
                description=(handler.__doc__ or "").strip(),
                path_params=path_params or {},
                documented_body=documented_body,
                also=also or {},
            )
            self.operations.append(op)
            url_rule, lengths = unbounded(rule)

            @functools.wraps(handler)
            def view(**path: Any) -> Response:
                if op.scope is not None:
                    g.caller = authorise(op.scope)
                kwargs: dict[str, Any] = dict(path)
                check_path(path, lengths)
                if op.body is not None:
                    kwargs["body"] = parse_body(op.body)
                if op.query is not None:
                    kwargs["query"] = parse_query(op.query)
                result = handler(**kwargs)
                return render(result, op.status)

            endpoint = f"{handler.__name__}_{method.lower()}"
            self.blueprint.add_url_rule(url_rule, endpoint, view, methods=[method])
            return handler

        return register


MAX_ID = 2**31 - 1  # the id columns are INTEGER: 32 bits on PostgreSQL


_MAX_LENGTH = re.compile(r"<string\(maxlength=(\d+)\):([a-z_]+)>")


def unbounded(rule: str) -> tuple[str, dict[str, int]]:
    """The URL rule without its ``maxlength`` limits, and the limits: Flask's converter answers
    a segment one character too long with a 404 naming nothing; check_path makes it a 422
    naming the parameter (the document gives the limit as maxLength)."""
    lengths = {name: int(limit) for limit, name in _MAX_LENGTH.findall(rule)}
    return _MAX_LENGTH.sub(r"<\2>", rule), lengths


def check_path(path: dict[str, Any], lengths: dict[str, int] | None = None) -> None:
    """What no column can hold is refused before a query: a NUL, a value longer than its
    column, or an id beyond the ids."""
    for name, value in path.items():
        limit = (lengths or {}).get(name)
        if isinstance(value, str) and limit is not None and len(value) > limit:
            raise invalid(name, f"must be at most {limit} characters", "path")
        if isinstance(value, str) and "\x00" in value:
            raise invalid(name, "must not contain NUL characters (U+0000)", "path")
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            raise invalid(name, f"must be an id between 1 and {MAX_ID}", "path")


def actor() -> str:
    """Who made this call, as stage changes and interactions record it: the API key's name."""
    return str(g.caller.name)


def authorise(scope: Scope) -> Caller:
    header = request.headers.get("Authorization", "")
    if not header:
        raise Unauthorized("send the API key as 'Authorization: Bearer <key>'")
    kind, _, key = header.partition(" ")
    if kind.lower() != "bearer" or not key.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <key>'")
    settings = current_settings()
    extra = settings.api_key.get_secret_value() if settings.api_key else None
    session = db_session()
    caller = find_caller(session, key.strip(), extra)
    session.commit()  # keeps last_used_at; nothing else is pending at this point
    if caller is None:
        raise Unauthorized("the API key is not valid (unknown or revoked)")
    if not caller.may(scope):
        raise Forbidden(f"this API key lacks the '{scope}' scope", scope=scope)
    return caller


def body_context() -> dict[str, bool] | None:
    """The validation context for models built from this request's JSON body later, in the
    handler (a bulk call's items): ``deals.models.nul_context`` of its raw bytes."""
    return nul_context(request.get_data(cache=True))


def parse_body(model: type[BaseModel]) -> BaseModel:
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise BadRequest("the request needs a JSON body")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    try:
        return model.model_validate(data, context=nul_context(raw))
    except ValidationError as exc:
        raise from_validation_error(exc, "body") from exc


def parse_query(model: type[BaseModel]) -> BaseModel:
    data: dict[str, Any] = {}
    for name in request.args:
        values = request.args.getlist(name)
        data[name] = values if len(values) > 1 else values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, "query") from exc


def render(result: Any, status: int) -> Response:
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status=204 if status == 200 else status)
    if isinstance(result, tuple):
        result, status = result
    if isinstance(result, BaseModel):
        body = result.model_dump_json(by_alias=True)
    else:
        body = json.dumps(result)
    return Response(body, status=status, mimetype="application/json")
