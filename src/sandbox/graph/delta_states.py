"""Delta sync state the tenant keeps: opaque tokens to rounds done or in progress."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from sandbox.calendars import Instance
from sandbox.errors import GraphError


@dataclass(frozen=True)
class DeltaItem:
    """One entry of a delta page: an item to send (in full or bare), or a removal."""

    id: str
    instance: Instance | None = None
    bare: bool = False


@dataclass(frozen=True)
class DeltaRound:
    """What a client holds after a round: the window, and each item it was sent, by change key."""

    mailbox_id: str
    user_key: str
    start: datetime
    end: datetime
    seen: dict[str, str]
    seq: int


@dataclass
class DeltaPages:
    """A round in progress: grouped items still to send, and the round it completes."""

    groups: list[list[DeltaItem]]
    position: int
    completes: DeltaRound


class DeltaStates:
    """Token → state, oldest forgotten first (an unknown token answers 410 SyncStateNotFound)."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._states: OrderedDict[str, DeltaRound | DeltaPages] = OrderedDict()
        self.generation = 0

    def put(self, state: DeltaRound | DeltaPages) -> str:
        """Store a state under a new opaque token."""
        token = secrets.token_urlsafe(32)
        self._states[token] = state
        self.generation += 1
        while len(self._states) > self.keep:
            self._states.popitem(last=False)
        return token

    def get(self, token: str) -> DeltaRound | DeltaPages:
        """The state of a token, or 410 SyncStateNotFound as Outlook answers for an expired one."""
        state = self._states.get(token)
        if state is None:
            raise GraphError(
                410,
                "SyncStateNotFound",
                "The sync state generation is not found; "
                f"generation=0;[highest={self.generation}].",
            )
        return state
