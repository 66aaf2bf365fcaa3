"""`POST /$batch` (json-batching.md): up to 20 requests, `dependsOn`, per-item statuses, 424."""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandbox.errors import GraphError
from sandbox.graph.service import GraphService, Router
from sandbox.graph.wire import ODATA_JSON, GraphRequest, GraphResponse, error_response, ok

if TYPE_CHECKING:
    from sandbox.tenant import Tenant

MAX_REQUESTS = 20
BATCH_PARALLELISM = 4
"""Outlook runs up to 4 items of a batch in parallel (per mailbox; M365_NOTES.md)."""
_WRITES = {"POST", "PATCH", "PUT"}


class BatchItem(BaseModel):
    """One request of a batch."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str
    method: str
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    depends_on: list[str] = Field(default_factory=list, alias="dependsOn")


class BatchBody(BaseModel):
    """The batch: `{"requests": [...]}`."""

    model_config = ConfigDict(extra="forbid")

    requests: list[BatchItem]


def _refuse(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def _order(items: list[BatchItem]) -> list[BatchItem]:
    """Items in an order that honours `dependsOn`; 400 for unknown ids or cycles."""
    by_id = {item.id.lower(): item for item in items}
    done: set[str] = set()
    ordered: list[BatchItem] = []
    visiting: set[str] = set()

    def visit(item: BatchItem) -> None:
        key = item.id.lower()
        if key in done:
            return
        if key in visiting:
            raise _refuse(f"Request dependency cycle detected at request id : {item.id}.")
        visiting.add(key)
        for dependency in item.depends_on:
            target = by_id.get(dependency.lower())
            if target is None:
                raise _refuse(f"Request dependency is not found: request id : {dependency}.")
            visit(target)
        visiting.discard(key)
        done.add(key)
        ordered.append(item)

    for item in items:
        visit(item)
    return ordered


def _waves(ordered: list[BatchItem]) -> list[list[BatchItem]]:
    """Items that run at the same time: those without `dependsOn` first, then each item one
    wave after the last of its dependencies (a chain runs one item at a time)."""
    depth: dict[str, int] = {}
    waves: list[list[BatchItem]] = []
    for item in ordered:  # dependencies come first
        level = 1 + max((depth[d.lower()] for d in item.depends_on), default=-1)
        depth[item.id.lower()] = level
        if level == len(waves):
            waves.append([])
        waves[level].append(item)
    return waves


def _decode_body(item: BatchItem, content_type: str) -> Any:
    if isinstance(item.body, str) and "json" in content_type.lower():
        try:
            return json.loads(base64.b64decode(item.body, validate=True))
        except (binascii.Error, ValueError):
            return item.body
    return item.body


def serve_batch(service: GraphService, request: GraphRequest) -> GraphResponse:
    """Run the batch's items wave by wave (dependencies first) and answer them together."""
    if request.in_batch:
        raise _refuse("Nested batch requests are not supported.")
    try:
        batch = BatchBody.model_validate(request.body)
    except ValidationError as e:
        raise _refuse(f"Invalid batch payload format: {e.errors()[0]['msg']}.") from e
    if not batch.requests:
        raise _refuse("Batch request must contain at least one request.")
    if len(batch.requests) > MAX_REQUESTS:
        raise _refuse(f"The number of batch requests exceeds the maximum of {MAX_REQUESTS}.")
    ids = [item.id.lower() for item in batch.requests]
    if len(set(ids)) != len(ids):
        raise _refuse("Batch request contains duplicate request ids.")
    for item in batch.requests:
        headers = {k.lower(): v for k, v in item.headers.items()}
        if item.method.upper() in _WRITES and (item.body is None or "content-type" not in headers):
            raise _refuse(
                f"Write request id : {item.id} does not contain Content-Type header or body."
            )
    statuses: dict[str, int] = {}
    answers: list[dict[str, Any]] = []
    for wave in _waves(_order(batch.requests)):
        # Outlook runs up to 4 of a wave's items on one mailbox at a time, the rest wait their
        # turn: an item runs alongside the ones of its group of 4 admitted before it. A batch
        # alone stays within the mailbox's 4 concurrent requests; with other requests in
        # flight on the mailbox the total can exceed them, and that item gets its own 429.
        running: Counter[str] = Counter()
        for item in wave:
            failed = [d for d in item.depends_on if statuses.get(d.lower(), 200) >= 400]
            if failed:
                response = error_response(
                    GraphError(
                        424,
                        "FailedDependency",
                        f"The request depends on request id : {failed[0]}, which failed.",
                    ),
                    request,
                )
            else:
                item_request = _item_request(item, request)
                mailbox = service.mailbox_of(item_request)
                alongside = running[mailbox or ""] % BATCH_PARALLELISM
                with service.tenant.throttle.alongside(mailbox, alongside):
                    response = service.serve(item_request)
                if mailbox is not None and response.status != 429:
                    running[mailbox] += 1
            statuses[item.id.lower()] = response.status
            answers.append(_answer(item.id, response))
    with service.tenant.lock:
        if service.tenant.config.shuffle_batch_responses:
            # Graph says responses may come in any order; clients must match them by id.
            service.tenant.random.shuffle(answers)
    return ok({"responses": answers})


def _item_request(item: BatchItem, outer: GraphRequest) -> GraphRequest:
    if item.url.lower().startswith(("http://", "https://")):
        raise _refuse(f"Invalid request URL for request id : {item.id}: the URL must be relative.")
    parts = urlsplit(item.url if item.url.startswith("/") else "/" + item.url)
    headers = {k.lower(): v for k, v in item.headers.items()}
    headers.setdefault("client-request-id", outer.client_request_id)
    return GraphRequest(
        method=item.method.upper(),
        path=parts.path,
        query={k.lower(): v for k, v in parse_qsl(parts.query, keep_blank_values=True)},
        headers=headers,
        body=_decode_body(item, headers.get("content-type", "")),
        base_url=outer.base_url,
        claims=outer.claims,
        query_string=parts.query,
        in_batch=True,
    )


def _answer(item_id: str, response: GraphResponse) -> dict[str, Any]:
    headers = {
        k: v
        for k, v in response.headers.items()
        if k.lower() not in ("request-id", "client-request-id")
    }
    if response.body is not None:
        headers.setdefault("Content-Type", ODATA_JSON)
    answer: dict[str, Any] = {"id": item_id, "status": response.status, "headers": headers}
    if response.body is not None:
        answer["body"] = response.body
    return answer


def register(router: Router, service_of: Callable[[], GraphService]) -> None:
    """Serve `$batch`; the handler needs the service to run items through the same path."""

    def batch(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        return serve_batch(service_of(), request)

    router.add("POST", "/$batch", batch)
