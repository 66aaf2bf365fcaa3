"""Outlook's per-mailbox throttling: concurrent requests and a request budget per time window.

Limits per app and mailbox (throttling-limits.md, "Outlook service limits"): 4 concurrent
requests, 10,000 requests per 10 minutes. Requests keep counting while throttled, so a client
that retries early stays throttled.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sandbox.errors import GraphError


@dataclass
class _MailboxUsage:
    in_flight: int = 0
    window_start: float = 0.0
    used: int = 0


class MailboxThrottle:
    """Counts requests per mailbox; `enter` raises the 429 Outlook answers when over a limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage: dict[str, _MailboxUsage] = {}

    def reset(self) -> None:
        """Forget all usage (a tenant reset)."""
        with self._lock:
            self._usage.clear()

    def enter(self, mailbox: str, concurrency: int, budget: int, window: float) -> None:
        """Admit one request for a mailbox, or raise 429 ApplicationThrottled with Retry-After."""
        now = time.monotonic()
        with self._lock:
            usage = self._usage.setdefault(mailbox, _MailboxUsage(window_start=now))
            if now - usage.window_start >= window:
                usage.window_start, usage.used = now, 0
            usage.used += 1
            if usage.used > budget:
                wait = max(1, math.ceil(usage.window_start + window - now))
                raise GraphError(
                    429,
                    "ApplicationThrottled",
                    "Application is over its MailboxRequests limit.",
                    {"Retry-After": str(wait)},
                )
            if usage.in_flight >= concurrency:
                raise GraphError(
                    429,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                    {"Retry-After": "1"},
                )
            usage.in_flight += 1

    @contextmanager
    def alongside(self, mailbox: str | None, running: int) -> Iterator[None]:
        """Count `running` more requests in flight on the mailbox while the block runs: the
        items of one `$batch` that Outlook runs at the same time as the one being served."""
        if mailbox is None or running <= 0:
            yield
            return
        with self._lock:
            self._usage.setdefault(mailbox, _MailboxUsage(window_start=time.monotonic()))
            self._usage[mailbox].in_flight += running
        try:
            yield
        finally:
            with self._lock:
                usage = self._usage.get(mailbox)
                if usage is not None:
                    usage.in_flight = max(0, usage.in_flight - running)

    def leave(self, mailbox: str) -> None:
        """A request admitted by `enter` has finished."""
        with self._lock:
            usage = self._usage.get(mailbox)
            if usage is not None and usage.in_flight > 0:
                usage.in_flight -= 1
