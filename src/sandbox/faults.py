"""Fault injection: answer chosen requests with 429, 5xx, 410, a hang, or (Graph) a 200 whose
page no client can read, or (Graph) the real answer with fields left out (`incomplete` with
`drop`), as Microsoft 365 or a proxy in between may; or perform the request and then lose its
answer (`lost`: a 504 after the post, as a proxy that gave up waiting answers; `lost_reset`:
the connection dropped after the post)."""

from __future__ import annotations

import contextlib
import random
import re
import socket
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

FaultStatus = Literal[
    410, 429, 500, 502, 503, 504, "timeout", "unreadable", "incomplete", "lost", "lost_reset"
]
LOSES_ANSWER = ("lost", "lost_reset")
"""Faults that let the request act, then lose its answer."""


class FaultRule(BaseModel):
    """`POST /_sandbox/faults`: which requests fail, how, how often and how many times."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    route: str = Field(description="Regex searched in 'METHOD /path?query', e.g. 'POST .*/events'.")
    status: FaultStatus
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    retry_after: float | None = Field(default=None, ge=0)
    count: int | None = Field(default=None, ge=1)
    timeout_seconds: float | None = Field(default=None, ge=0)
    """For `timeout`: how long to hold the request (default: the sandbox's fault timeout)."""
    drop: list[str] | None = None
    """For `incomplete` (Graph): the fields removed from the answer (the object and each item
    of its `value`), e.g. `["id"]`."""

    @field_validator("route")
    @classmethod
    def _compiles(cls, route: str) -> str:
        re.compile(route)
        return route


@dataclass
class ActiveFault:
    """A fault rule with its id and how many requests it has failed so far."""

    id: str
    rule: FaultRule
    pattern: re.Pattern[str]
    applied: int = 0

    def to_json(self) -> dict[str, object]:
        """The rule as the control API shows it."""
        return {"id": self.id, **self.rule.model_dump(by_alias=True), "applied": self.applied}


class FaultBook:
    """The active faults, drawn with a seeded random so a run repeats."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self.faults: list[ActiveFault] = []

    def add(self, rule: FaultRule) -> ActiveFault:
        """Arm a rule; later rules are checked after earlier ones."""
        fault = ActiveFault(str(uuid.uuid4()), rule, re.compile(rule.route))
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Disarm every rule."""
        self.faults.clear()

    def remove(self, fault_id: str) -> bool:
        """Disarm one rule; False when there was no such rule."""
        before = len(self.faults)
        self.faults = [f for f in self.faults if f.id != fault_id]
        return len(self.faults) != before

    def draw(self, request_line: str) -> FaultRule | None:
        """The fault a request meets, if any; a rule with a count is spent after that many."""
        for fault in self.faults:
            if fault.rule.count is not None and fault.applied >= fault.rule.count:
                continue
            if not fault.pattern.search(request_line):
                continue
            if fault.rule.rate < 1.0 and self._random.random() >= fault.rule.rate:
                continue
            fault.applied += 1
            return fault.rule
        return None


def loses_answer(rule: FaultRule | None) -> bool:
    """The request is performed, and then its answer is lost."""
    return rule is not None and rule.status in LOSES_ANSWER


def drop_connection(environ: dict[str, Any]) -> None:
    """Close the client's connection under the answer. werkzeug's server gives its socket;
    waitress (the sandbox alone) gives its channel's ``check_client_disconnected``, whose
    channel holds it."""
    connection = environ.get("werkzeug.socket")
    if connection is None:
        channel = getattr(environ.get("waitress.client_disconnected"), "__self__", None)
        connection = getattr(channel, "socket", None)
    if connection is None:
        return
    with contextlib.suppress(OSError):  # the client may have gone already
        connection.shutdown(socket.SHUT_RDWR)
