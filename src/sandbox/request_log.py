"""The log of Graph and token requests served: counts by route and mailbox, recent lines."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LoggedRequest:
    """One served request (a `$batch` item counts as a request of its own)."""

    time: str
    method: str
    path: str
    route: str
    status: int
    mailbox: str | None
    in_batch: bool


class RequestLog:
    """Counts since the last reset, and the most recent requests."""

    def __init__(self, keep: int = 500) -> None:
        self._lock = threading.Lock()
        self._recent: deque[LoggedRequest] = deque(maxlen=keep)
        self._by_route: Counter[str] = Counter()
        self._by_mailbox: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._total = 0

    def record(self, entry: LoggedRequest) -> None:
        """Count one request."""
        with self._lock:
            self._total += 1
            self._by_route[f"{entry.method} {entry.route}"] += 1
            self._by_status[entry.status] += 1
            if entry.mailbox:
                self._by_mailbox[entry.mailbox] += 1
            self._recent.append(entry)

    def reset(self) -> None:
        """Start counting again."""
        with self._lock:
            self._recent.clear()
            self._by_route.clear()
            self._by_mailbox.clear()
            self._by_status.clear()
            self._total = 0

    def summary(self) -> dict[str, Any]:
        """`GET /_sandbox/requests`."""
        with self._lock:
            return {
                "total": self._total,
                "byRoute": dict(self._by_route),
                "byMailbox": dict(self._by_mailbox),
                "byStatus": {str(k): v for k, v in self._by_status.items()},
                "recent": [
                    {
                        "time": e.time,
                        "method": e.method,
                        "path": e.path,
                        "route": e.route,
                        "status": e.status,
                        "mailbox": e.mailbox,
                        "inBatch": e.in_batch,
                    }
                    for e in self._recent
                ],
            }
