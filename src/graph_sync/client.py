"""The Graph client: msgraph-sdk's request adapter on one long-lived event loop, raw bytes on hot
paths, our own `$batch` with per-item retries, and Outlook's per-mailbox concurrency limit.

msgraph-sdk is imported lazily (the first import loads ~1,600 modules, ARCHITECTURE.md):
importing this module must not import msgraph.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote, unquote, urlencode, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graph_sync.auth import GRAPH_SCOPE, AccessTokens, GraphCredentials, TokenProvider
from graph_sync.errors import GraphError, Throttled, error_for
from graph_sync.models import GraphBody

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

log = logging.getLogger(__name__)

T = TypeVar("T")
GRAPH_BASE_URL = "https://graph.microsoft.com"
MAX_BATCH = 20  # json-batching.md: at most 20 requests in one $batch
MAX_PER_MAILBOX = 4  # throttling-limits.md: Outlook, 4 concurrent requests per app and mailbox
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_ALWAYS_RETRY = frozenset({429, 503, 504})
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"})
HttpMethod = Literal["GET", "POST", "PATCH", "PUT", "DELETE"]
Observer = Callable[[str, str, int, float | None], None]
"""Told of every answer (each retry too): method, route template, status, Retry-After."""
# Path segments that are Graph's own words; any other segment is an id (or an address).
_ROUTE_WORDS = frozenset(
    [
        "v1.0",
        "beta",
        "users",
        "me",
        "events",
        "calendar",
        "calendars",
        "calendarview",
        "delta",
        "subscriptions",
        "$batch",
        "organization",
        "mailboxsettings",
        "teamwork",
        "installedapps",
        "chats",
        "chat",
        "appcatalogs",
        "teamsapps",
        "appdefinitions",
        "messages",
        "instances",
        "findmeetingtimes",
        "getschedule",
        "directoryobjects",
        "serviceprincipals",
        "applications",
        "groups",
        "members",
    ]
)


def route_of(url: str) -> str:
    """The route template of a Graph URL: ``/users/{id}/calendarView/delta`` (no query)."""
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    parts = [p for p in path.split("/") if p]
    if parts and parts[0].lower() in {"v1.0", "beta"}:
        parts = parts[1:]
    return "/" + "/".join(p if p.lower() in _ROUTE_WORDS else "{id}" for p in parts)


def _throttled(observe: Observer | None, method: str, url: str, status: int, wait: Any) -> None:
    """Count an answer; a 429 is also logged with its Retry-After (retried after it)."""
    route = route_of(url)
    retry_after = parse_retry_after(wait) if isinstance(wait, str) else wait
    if status == 429:
        extra = {"method": method, "route": route, "status": 429, "retry_after": retry_after}
        log.warning("graph throttled: 429, Retry-After %s s", retry_after, extra=extra)
    if observe is not None:
        observe(method, route, status, retry_after)


class AsyncBridge:
    """One event loop in a daemon thread; synchronous callers run coroutines on it.

    httpx clients must not cross loops, and a loop per call is ~4x slower (ARCHITECTURE.md).
    """

    def __init__(self, name: str = "graph-sync-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the bridge's loop and wait for its result (cancelled on timeout)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("AsyncBridge.run called from its own loop: await instead")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        """Stop the loop and end the thread."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


class MailboxSlots:
    """Counted slots taken several at a time, atomically (a $batch may run 4 items of one
    mailbox at once)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = size
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, count: int = 1) -> AsyncIterator[None]:
        """Hold `count` slots (at most the size) while the block runs."""
        count = max(1, min(count, self.size))
        async with self._changed:
            await self._changed.wait_for(lambda: self._free >= count)
            self._free -= count
        try:
            yield
        finally:
            async with self._changed:
                self._free += count
                self._changed.notify_all()


@dataclass(frozen=True)
class GraphAnswer:
    """A raw Graph answer: status, headers (lower-case names) and body bytes."""

    status: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> dict[str, Any]:
        """The body as a JSON object ({} when empty)."""
        if not self.content:
            return {}
        value = json.loads(self.content)
        return value if isinstance(value, dict) else {"value": value}


class _ErrorDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    code: str = "UnknownError"
    message: str = ""
    inner_error: dict[str, Any] | None = Field(default=None, alias="innerError")


class _ErrorBody(BaseModel):
    error: _ErrorDetail = Field(default_factory=_ErrorDetail)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; Graph may send fractions such as `2.128`."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def graph_error(
    status: int,
    headers: dict[str, str],
    body: bytes | dict[str, Any] | None,
    *,
    mailbox: str | None = None,
    permission: str | None = None,
) -> GraphError:
    """Our error for a Graph error answer (whole request or one batch item)."""
    detail = _ErrorDetail()
    try:
        if isinstance(body, bytes) and body:
            detail = _ErrorBody.model_validate_json(body).error
        elif isinstance(body, dict):
            detail = _ErrorBody.model_validate(body).error
    except ValidationError:
        pass
    lower = {k.lower(): v for k, v in headers.items()}
    request_id = lower.get("request-id")
    if request_id is None and detail.inner_error:
        found = detail.inner_error.get("request-id")
        request_id = str(found) if found is not None else None
    return error_for(
        status,
        detail.code,
        detail.message,
        mailbox=mailbox,
        request_id=request_id,
        retry_after=parse_retry_after(lower.get("retry-after")),
        permission=permission,
    )


class BatchItem(BaseModel):
    """One request of a `$batch`; `url` is relative to /v1.0 (e.g. `/users/{id}/events`)."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    method: HttpMethod
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    depends_on: list[str] = Field(default_factory=list, alias="dependsOn")
    retry_server_errors: bool | None = None
    """Retry 500/502 for this item; default: idempotent methods and POSTs with a transactionId."""
    mailbox: str | None = None
    """The mailbox it works on (Outlook's concurrency limit); default: the user in `url`."""

    def named_mailbox(self) -> str | None:
        """The mailbox as given (`mailbox`, else the user in `url`), if any."""
        if self.mailbox:
            return self.mailbox
        parts = [p for p in self.url.split("?", 1)[0].split("/") if p]
        if len(parts) >= 2 and parts[0].lower() == "users":
            return unquote(parts[1])
        return None

    def target_mailbox(self) -> str | None:
        """The mailbox whose concurrency slots the item takes (lower-case), if any."""
        named = self.named_mailbox()
        return named.lower() if named else None

    def wire(self, done: set[str]) -> dict[str, Any]:
        """The item as the batch body carries it; dependencies already done are dropped."""
        out: dict[str, Any] = {"id": self.id, "method": self.method, "url": self.url}
        headers = dict(self.headers)
        if self.body is not None:
            out["body"] = self.body
            # json-batching.md: a body needs its Content-Type header
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        if headers:
            out["headers"] = headers
        pending = [d for d in self.depends_on if d not in done]
        if pending:
            out["dependsOn"] = pending
        return out

    def safe_to_repeat(self) -> bool:
        """Whether a 5xx may be retried without risk of doing the thing twice."""
        if self.retry_server_errors is not None:
            return self.retry_server_errors
        if self.method in _IDEMPOTENT:
            return True
        return self.method == "POST" and bool(self.body and self.body.get("transactionId"))


class BatchResult(BaseModel):
    """The final answer for one batch item, after any retries."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    status: int
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    attempts: int = 1
    error: GraphError | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300


class _BatchAnswerItem(BaseModel):
    id: str
    status: int
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None


class _BatchAnswer(BaseModel):
    responses: list[_BatchAnswerItem]


def _components(items: list[BatchItem]) -> list[list[BatchItem]]:
    """Items grouped so that each item shares a group with what it depends on."""
    parent: dict[str, str] = {item.id: item.id for item in items}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for item in items:
        for dependency in item.depends_on:
            if dependency in parent:
                parent[root(item.id)] = root(dependency)
    groups: dict[str, list[BatchItem]] = {}
    for item in items:
        groups.setdefault(root(item.id), []).append(item)
    return list(groups.values())


def _mailbox_weights(group: list[BatchItem]) -> Counter[str]:
    """Per mailbox, the most items of the group that Outlook runs at the same time: items in
    one wave (no dependency left, or all done one wave earlier); a chain counts 1."""
    ids = {item.id for item in group}
    depth: dict[str, int] = {}

    def wave(item: BatchItem, by_id: dict[str, BatchItem]) -> int:
        if item.id not in depth:
            depth[item.id] = 0  # a cycle is refused by Graph; count it as one wave here
            depth[item.id] = 1 + max(
                (wave(by_id[d], by_id) for d in item.depends_on if d in ids), default=-1
            )
        return depth[item.id]

    by_id = {item.id: item for item in group}
    at_once: Counter[tuple[int, str]] = Counter()
    for item in group:
        mailbox = item.target_mailbox()
        if mailbox is not None:
            at_once[(wave(item, by_id), mailbox)] += 1
    weights: Counter[str] = Counter()
    for (_, mailbox), count in at_once.items():
        weights[mailbox] = max(weights[mailbox], count)
    return weights


def pack_batches(items: list[BatchItem], size: int = MAX_BATCH) -> list[list[BatchItem]]:
    """Split into ceil(n / `size`) `$batch` calls (more only when dependency chains, kept
    together, do not fit), whatever the mailboxes: Outlook runs up to 4 items of a batch in
    parallel and lets the rest wait, so a call needs no cap per mailbox. One mailbox's items
    are dealt round the calls, so each call carries its share of every mailbox."""
    groups = _components(items)
    for group in groups:
        if len(group) > size:
            raise ValueError(f"a dependency chain of {len(group)} items exceeds one $batch")
    if not groups:
        return []
    groups.sort(key=lambda group: min((m for i in group if (m := i.target_mailbox())), default=""))
    calls: list[list[BatchItem]] = [[] for _ in range(math.ceil(len(items) / size))]
    cursor = 0
    for group in groups:
        for step in range(len(calls)):
            k = (cursor + step) % len(calls)
            if len(calls[k]) + len(group) <= size:
                break
        else:
            calls.append([])
            k = len(calls) - 1
        calls[k].extend(group)
        cursor = k + 1
    return [call for call in calls if call]


def mailbox_slots_of(call: list[BatchItem], per_mailbox: int = MAX_PER_MAILBOX) -> dict[str, int]:
    """Per mailbox, the concurrency slots one `$batch` call takes: its items that Outlook runs
    at the same time, at most `per_mailbox` (it runs up to 4 of a batch in parallel)."""
    weights: Counter[str] = Counter()
    for group in _components(call):
        weights.update(_mailbox_weights(group))
    return {mailbox: min(per_mailbox, count) for mailbox, count in weights.items()}


class GraphClient:
    """Sends requests to Microsoft Graph through msgraph-sdk's request adapter.

    Thread-safe: every call runs on one event loop owned by the client. At most
    `max_per_mailbox` requests are in flight per mailbox (Outlook allows 4) and
    `max_in_flight` overall.
    """

    def __init__(
        self,
        credentials: GraphCredentials | None,
        graph_base_url: str = GRAPH_BASE_URL,
        *,
        max_per_mailbox: int = 4,
        max_in_flight: int = 16,
        batch_rounds: int = 5,
        backoff_seconds: float = 1.0,
        timeout: float = 120.0,
        tokens: AccessTokens | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.observer = observer
        self.graph_base_url = graph_base_url.rstrip("/")
        parts = urlsplit(self.graph_base_url)
        if not parts.hostname:
            raise ValueError(f"not a URL: {graph_base_url!r}")
        if parts.scheme != "https" and parts.hostname not in _LOOPBACK:
            raise ValueError("the Graph base URL must be https (http only for a local sandbox)")
        self.api_base = f"{self.graph_base_url}/v1.0"
        self.host = parts.hostname
        if tokens is None:
            if credentials is None:
                raise ValueError("GraphClient needs credentials or a token source")
            tokens = TokenProvider(credentials)
        self.tokens: AccessTokens = tokens
        self.max_per_mailbox = max_per_mailbox
        self.max_in_flight = max_in_flight
        self.batch_rounds = batch_rounds
        self.backoff_seconds = backoff_seconds
        self.timeout = timeout
        self.bridge = AsyncBridge()
        self._build_lock = threading.Lock()
        self._adapter: Any = None
        self._sdk: Any = None
        self._mailboxes: dict[str, MailboxSlots] = {}
        self._global: asyncio.Semaphore | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP connections and stop the loop."""
        if self._adapter is not None:
            http_client = self._adapter._http_client
            self.bridge.run(http_client.aclose(), timeout=10)
        self.bridge.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the SDK, built on first use --------------------------------------------------------

    @property
    def adapter(self) -> Any:
        """msgraph's request adapter (auth, retry, redirect middleware), built on first use."""
        with self._build_lock:
            if self._adapter is None:
                self._adapter = _build_adapter(self.tokens, self.api_base, self.host, self.observer)
            return self._adapter

    @property
    def sdk(self) -> Any:
        """The typed `GraphServiceClient` on the same adapter, for cold paths (`run` it)."""
        adapter = self.adapter
        with self._build_lock:
            if self._sdk is None:
                from msgraph import GraphServiceClient

                self._sdk = GraphServiceClient(request_adapter=adapter)
            return self._sdk

    def run(self, call: Callable[[], Awaitable[T]], *, mailbox: str | None = None) -> T:
        """Run an SDK call (`lambda: client.sdk.users.by_user_id(x).get()`) on our loop,
        inside the mailbox's and the global concurrency limits."""

        async def limited() -> T:
            async with self._limits(mailbox, 1):
                return await call()

        return self.bridge.run(limited(), self.timeout)

    # --- concurrency limits -----------------------------------------------------------------

    @asynccontextmanager
    async def _limits(self, mailbox: str | None, weight: int) -> AsyncIterator[None]:
        if self._global is None:
            self._global = asyncio.Semaphore(self.max_in_flight)
        if mailbox is None:
            async with self._global:
                yield
            return
        async with self._mailbox_slots(mailbox).hold(weight), self._global:
            yield

    def _mailbox_slots(self, mailbox: str) -> MailboxSlots:
        slots = self._mailboxes.get(mailbox.lower())
        if slots is None:
            slots = self._mailboxes[mailbox.lower()] = MailboxSlots(self.max_per_mailbox)
        return slots

    @asynccontextmanager
    async def _mailbox_limits(self, weights: dict[str, int]) -> AsyncIterator[None]:
        """Slots on every mailbox a `$batch` call touches, taken in sorted order: two calls
        that share mailboxes never each wait for what the other holds (`send` then takes the
        global one, after the mailboxes as `_limits` does)."""
        async with AsyncExitStack() as stack:
            for mailbox in sorted(weights):
                await stack.enter_async_context(self._mailbox_slots(mailbox).hold(weights[mailbox]))
            yield

    # --- single requests --------------------------------------------------------------------

    def url_for(self, path_or_url: str, params: dict[str, str] | None = None) -> str:
        """An absolute URL: nextLinks/deltaLinks as given, paths under /v1.0."""
        if path_or_url.startswith(("https://", "http://")):
            url = path_or_url
        else:
            path = path_or_url if path_or_url.startswith("/") else f"/{path_or_url}"
            url = f"{self.api_base}{path}"
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, quote_via=quote, safe="$,'")
        return url

    async def send(
        self,
        method: HttpMethod,
        path_or_url: str,
        *,
        body: dict[str, Any] | bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        mailbox: str | None = None,
        weight: int = 1,
        retry_unavailable: bool = True,
    ) -> GraphAnswer:
        """Send one request through the adapter; any status comes back (no raise).

        The retry middleware sends 429s again; with `retry_unavailable` False it leaves
        503/504 alone (an upload answered 503 may have happened)."""
        from kiota_abstractions.method import Method
        from kiota_abstractions.request_information import RequestInformation
        from kiota_http.middleware.options import ResponseHandlerOption

        info = RequestInformation()
        info.http_method = Method(method)
        info.url = self.url_for(path_or_url, params)
        for name, value in (headers or {}).items():
            info.headers.add(name, value)
        if body is not None:
            info.headers.try_add("Content-Type", "application/json")
            info.content = body if isinstance(body, bytes) else json.dumps(body).encode()
        # The raw response comes back so that we parse errors (and bodies) with our own models.
        options: list[Any] = [ResponseHandlerOption(_RawResponse())]
        if not retry_unavailable:
            options.append(_OnlyThrottledRetried())
        info.add_request_options(options)
        async with self._limits(mailbox, weight):
            response = await self.adapter.send_primitive_async(info, "bytes", None)
        return GraphAnswer(
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()},
            response.content,
        )

    async def send_ok(
        self,
        method: HttpMethod,
        path_or_url: str,
        *,
        body: dict[str, Any] | bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        mailbox: str | None = None,
        permission: str | None = None,
        retry_unavailable: bool = True,
    ) -> GraphAnswer:
        """`send`, raising our GraphError subclass for a status >= 400."""
        answer = await self.send(
            method,
            path_or_url,
            body=body,
            headers=headers,
            params=params,
            mailbox=mailbox,
            retry_unavailable=retry_unavailable,
        )
        if answer.status >= 400:
            raise graph_error(
                answer.status,
                answer.headers,
                answer.content,
                mailbox=mailbox,
                permission=permission,
            )
        return answer

    def get_bytes(
        self,
        path_or_url: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        mailbox: str | None = None,
        permission: str | None = None,
    ) -> bytes:
        """GET, the body as raw bytes (hot paths parse them with our own models)."""
        answer = self.bridge.run(
            self.send_ok(
                "GET",
                path_or_url,
                headers=headers,
                params=params,
                mailbox=mailbox,
                permission=permission,
            ),
            self.timeout,
        )
        return answer.content

    def get_json(
        self,
        path_or_url: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        mailbox: str | None = None,
        permission: str | None = None,
    ) -> dict[str, Any]:
        """GET, the body as a JSON object."""
        return self._call("GET", path_or_url, None, headers, params, mailbox, permission)

    def post_json(
        self,
        path_or_url: str,
        body: GraphBody | dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
        mailbox: str | None = None,
        permission: str | None = None,
    ) -> dict[str, Any]:
        """POST a JSON body; the answer's JSON ({} for 202/204)."""
        return self._call("POST", path_or_url, _wire(body), headers, None, mailbox, permission)

    def patch_json(
        self,
        path_or_url: str,
        body: GraphBody | dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
        mailbox: str | None = None,
        permission: str | None = None,
    ) -> dict[str, Any]:
        """PATCH a JSON body; the answer's JSON ({} for 204)."""
        return self._call("PATCH", path_or_url, _wire(body), headers, None, mailbox, permission)

    def delete(
        self,
        path_or_url: str,
        *,
        headers: dict[str, str] | None = None,
        mailbox: str | None = None,
        permission: str | None = None,
    ) -> None:
        """DELETE; raises NotFound when it was already gone."""
        self._call("DELETE", path_or_url, None, headers, None, mailbox, permission)

    def _call(
        self,
        method: HttpMethod,
        path_or_url: str,
        body: dict[str, Any] | None,
        headers: dict[str, str] | None,
        params: dict[str, str] | None,
        mailbox: str | None,
        permission: str | None,
    ) -> dict[str, Any]:
        answer = self.bridge.run(
            self.send_ok(
                method,
                path_or_url,
                body=body,
                headers=headers,
                params=params,
                mailbox=mailbox,
                permission=permission,
            ),
            self.timeout,
        )
        return answer.json()

    # --- $batch -----------------------------------------------------------------------------

    def batch(self, items: list[BatchItem], mailbox: str | None = None) -> list[BatchResult]:
        """Send items in `$batch` calls of <= 20 (items of many mailboxes share calls);
        retry only the failed ones; results in order. `mailbox`: for items whose `url` names
        no user."""
        return self.bridge.run(self.batch_async(items, mailbox), None)

    async def batch_async(
        self, items: list[BatchItem], mailbox: str | None = None
    ) -> list[BatchResult]:
        """`batch`, on the client's loop."""
        ids = [item.id for item in items]
        if len(set(ids)) != len(ids):
            raise ValueError("batch item ids must be unique")
        if mailbox is not None:
            items = [
                item if item.target_mailbox() else item.model_copy(update={"mailbox": mailbox})
                for item in items
            ]
        results: dict[str, BatchResult] = {}
        attempts: dict[str, int] = dict.fromkeys(ids, 0)
        pending = list(items)
        for round_number in range(self.batch_rounds + 1):
            done = {key for key, result in results.items() if result.ok}
            calls = pack_batches(pending)
            answers = await asyncio.gather(*(self._send_batch(call, done) for call in calls))
            for call, answer in zip(calls, answers, strict=True):
                for item in call:
                    attempts[item.id] += 1
                    result = answer[item.id]
                    result.attempts = attempts[item.id]
                    results[item.id] = result
            retry = _to_retry(pending, results)
            if not retry or round_number == self.batch_rounds:
                break
            wait = _longest_retry_after([results[item.id] for item in retry])
            if wait is None:
                wait = self.backoff_seconds * (2**round_number)
            log.info(
                "retrying %d of %d batch items in %.3f s (round %d)",
                len(retry),
                len(items),
                wait,
                round_number + 1,
            )
            # Outlook keeps counting throttled requests: never retry before Retry-After.
            await asyncio.sleep(wait)
            pending = retry
        return [results[key] for key in ids]

    async def _send_batch(self, call: list[BatchItem], done: set[str]) -> dict[str, BatchResult]:
        body = {"requests": [item.wire(done) for item in call]}
        weights = mailbox_slots_of(call, self.max_per_mailbox)
        named = {item.named_mailbox() for item in call} - {None}
        mailbox = named.pop() if len(named) == 1 else None  # names a whole-call failure
        try:
            # Outlook runs up to 4 items of a batch in parallel: the call holds that many slots
            # (fewer if fewer run at once) on each mailbox, so with our other requests in
            # flight a mailbox never has more than 4.
            async with self._mailbox_limits(weights):
                answer = await self.send("POST", "/$batch", body=body)
        except Exception as e:  # a transport failure fails every item of this call
            log.warning("$batch call failed: %s", type(e).__name__)
            failure = GraphError(503, "TransportError", type(e).__name__, mailbox)
            return {item.id: _failed(item.id, 503, {}, failure) for item in call}
        if answer.status >= 400:
            failure = graph_error(answer.status, answer.headers, answer.content, mailbox=mailbox)
            return {
                item.id: _failed(item.id, answer.status, answer.headers, failure) for item in call
            }
        mailbox_of = {item.id: item.named_mailbox() for item in call}
        parsed = _BatchAnswer.model_validate_json(answer.content)
        found: dict[str, BatchResult] = {}
        for entry in parsed.responses:
            if entry.status == 429:  # the call was 200; this item was throttled inside it
                wait = next(
                    (v for k, v in entry.headers.items() if k.lower() == "retry-after"), None
                )
                _throttled(self.observer, "POST", "/$batch", 429, wait)
            error = None
            if entry.status >= 400:
                error = graph_error(
                    entry.status,
                    entry.headers,
                    entry.body if isinstance(entry.body, dict) else None,
                    mailbox=mailbox_of.get(entry.id),
                )
            found[entry.id] = BatchResult(
                id=entry.id,
                status=entry.status,
                headers=entry.headers,
                body=entry.body,
                error=error,
            )
        for item in call:
            if item.id not in found:
                missing = GraphError(
                    502, "MissingBatchResponse", "no answer for this item", mailbox_of[item.id]
                )
                found[item.id] = _failed(item.id, 502, {}, missing)
        return found


def _failed(item_id: str, status: int, headers: dict[str, str], error: GraphError) -> BatchResult:
    return BatchResult(id=item_id, status=status, headers=dict(headers), error=error)


def _retryable(item: BatchItem, result: BatchResult) -> bool:
    if result.status in _ALWAYS_RETRY:
        return True
    return result.status in (500, 502) and item.safe_to_repeat()


def _to_retry(pending: list[BatchItem], results: dict[str, BatchResult]) -> list[BatchItem]:
    """Failed items worth another round, with the 424s whose dependency is retried."""
    retry = [item for item in pending if _retryable(item, results[item.id])]
    retried = {item.id for item in retry}
    for item in pending:
        if results[item.id].status == 424 and any(d in retried for d in item.depends_on):
            retry.append(item)
            retried.add(item.id)
    return retry


def _longest_retry_after(results: list[BatchResult]) -> float | None:
    waits: list[float] = []
    for result in results:
        lower = {k.lower(): v for k, v in result.headers.items()}
        wait = parse_retry_after(lower.get("retry-after"))
        if wait is None and isinstance(result.error, Throttled):
            wait = result.error.retry_after
        if wait is not None:
            waits.append(wait)
    return max(waits) if waits else None


class _OnlyThrottledRetried:
    """A kiota request option: the retry middleware retries this request on 429 only."""

    KEY = "DealBridgeOnlyThrottledRetried"

    @staticmethod
    def get_key() -> str:
        return _OnlyThrottledRetried.KEY


class _RawResponse:
    """A kiota response handler that hands back the httpx response untouched."""

    async def handle_response_async(self, response: Any, error_map: Any = None) -> Any:
        return response


def _build_adapter(
    tokens: AccessTokens, api_base: str, host: str, observer: Observer | None = None
) -> Any:
    """msgraph's GraphRequestAdapter with the default middleware, our retry handler and auth."""
    import httpx
    from kiota_abstractions.authentication import (
        AccessTokenProvider,
        AllowedHostsValidator,
        BaseBearerTokenAuthenticationProvider,
    )
    from kiota_http.kiota_client_factory import KiotaClientFactory
    from kiota_http.middleware import REQUEST_OPTIONS_KEY, BaseMiddleware, RetryHandler
    from msgraph import GraphRequestAdapter
    from msgraph_core import GraphClientFactory
    from msgraph_core.middleware import GraphTelemetryHandler

    class GraphAccessTokens(AccessTokenProvider):  # type: ignore[misc]
        """Tokens for the Graph host only; kiota sends none to other hosts."""

        def __init__(self) -> None:
            self._hosts = AllowedHostsValidator([host])

        async def get_authorization_token(
            self, uri: str, additional_authentication_context: dict[str, Any] | None = None
        ) -> str:
            if not self._hosts.is_url_host_valid(uri):
                return ""
            # MSAL blocks on HTTP when its cache misses: keep the loop free meanwhile.
            return await asyncio.to_thread(tokens.token, [GRAPH_SCOPE])

        def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
            return self._hosts

    class FractionalRetryAfter(RetryHandler):  # type: ignore[misc]
        """kiota parses Retry-After as an int only; Graph sends fractions (throttling docs)."""

        def _parse_retry_after(self, retry_after: str) -> float | None:
            seconds = parse_retry_after(retry_after)
            if seconds is not None:
                return seconds
            parsed: float | None = super()._parse_retry_after(retry_after)
            return parsed

        async def send(self, request: Any, transport: Any) -> Any:
            # The last middleware pops the request options before should_retry runs: copy ours.
            if _OnlyThrottledRetried.KEY in (request.extensions.get(REQUEST_OPTIONS_KEY) or {}):
                request.extensions[_OnlyThrottledRetried.KEY] = True
            return await super().send(request, transport)

        def should_retry(self, request: Any, options: Any, response: Any) -> bool:
            if request.extensions.get(_OnlyThrottledRetried.KEY) and response.status_code != 429:
                return False
            retry: bool = super().should_retry(request, options, response)
            return retry

    class Observed(BaseMiddleware):  # type: ignore[misc]
        """Last before the wire: sees every attempt the retry handler makes."""

        async def send(self, request: Any, transport: Any) -> Any:
            response = await super().send(request, transport)
            wait = response.headers.get("retry-after")
            _throttled(observer, request.method, str(request.url), response.status_code, wait)
            return response

    middleware = [
        FractionalRetryAfter() if isinstance(handler, RetryHandler) else handler
        for handler in KiotaClientFactory.get_default_middleware(None)
    ]
    assert any(isinstance(handler, RetryHandler) for handler in middleware)
    middleware.append(GraphTelemetryHandler())
    middleware.append(Observed())
    http_client = httpx.AsyncClient(
        timeout=httpx.Timeout(100.0, connect=30.0),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
    )
    http_client = GraphClientFactory.create_with_custom_middleware(middleware, client=http_client)
    adapter = GraphRequestAdapter(
        BaseBearerTokenAuthenticationProvider(GraphAccessTokens()), client=http_client
    )
    adapter.base_url = api_base
    return adapter


def _wire(body: GraphBody | dict[str, Any]) -> dict[str, Any]:
    """Our bodies are models; a plain dict is accepted for tests that arrange the tenant."""
    return body.wire() if isinstance(body, GraphBody) else body
