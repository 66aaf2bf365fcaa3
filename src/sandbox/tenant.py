"""The sandbox tenant: all state behind one lock, and the settings tests may change at runtime."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from sandbox.authority import Authority
from sandbox.calendars import CalendarStore
from sandbox.config import SandboxConfig
from sandbox.directory import Directory
from sandbox.faults import FaultBook
from sandbox.graph.delta_states import DeltaStates
from sandbox.graph.teams_apps import TeamsWork
from sandbox.graph.throttling import MailboxThrottle
from sandbox.online_meetings import OnlineMeetingsState
from sandbox.request_log import RequestLog
from sandbox.webhooks import Notifier, Subscriptions


class RuntimeSettings(BaseModel):
    """`PATCH /_sandbox/settings`: what a test may change without restarting; reset restores it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    roles: tuple[str, ...]
    """Application permissions in newly issued tokens (tokens already issued keep theirs)."""
    latency_seconds: float = Field(ge=0)
    mailbox_concurrency_limit: int = Field(gt=0)
    mailbox_request_budget: int = Field(gt=0)
    mailbox_budget_window_seconds: float = Field(gt=0)
    fault_timeout_seconds: float = Field(ge=0)

    @classmethod
    def from_config(cls, config: SandboxConfig) -> RuntimeSettings:
        """The settings a tenant starts (and resets) with."""
        return cls(
            roles=config.roles,
            latency_seconds=config.latency_seconds,
            mailbox_concurrency_limit=config.mailbox_concurrency_limit,
            mailbox_request_budget=config.mailbox_request_budget,
            mailbox_budget_window_seconds=config.mailbox_budget_window_seconds,
            fault_timeout_seconds=config.fault_timeout_seconds,
        )


def utc_now() -> datetime:
    """The tenant's clock."""
    return datetime.now(UTC)


class Tenant:
    """One Microsoft 365 tenant: directory, mailboxes, subscriptions, faults and the request log."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.created = utc_now()
        self.authority = Authority(
            config.tenant_id,
            (config.domain, f"{config.domain.split('.')[0]}.onmicrosoft.com"),
            config.client_id,
            config.client_secret,
            config.login_authority_base,
            config.token_lifetime_seconds,
        )
        self.throttle = MailboxThrottle()
        self.log = RequestLog()
        self.notifier = Notifier(config.notification_timeout_seconds)
        self.settings = RuntimeSettings.from_config(config)
        self.directory = Directory()
        self.calendars = CalendarStore(self.directory, utc_now)
        self.subscriptions = Subscriptions()
        self.faults = FaultBook(config.seed)
        self.random = random.Random(config.seed)
        self.delta = DeltaStates(config.delta_states_kept)
        self.teams = TeamsWork()
        self.online = OnlineMeetingsState()

    @property
    def tenant_id(self) -> str:
        """The tenant's GUID, lower-case as Entra writes it."""
        return self.authority.tenant_id

    def reset(self) -> None:
        """Back to an empty tenant: no users, events, apps, subscriptions, faults; counters zero."""
        with self.lock:
            self.settings = RuntimeSettings.from_config(self.config)
            self.directory = Directory()
            self.calendars = CalendarStore(self.directory, utc_now)
            self.subscriptions = Subscriptions()
            self.faults = FaultBook(self.config.seed)
            self.random = random.Random(self.config.seed)
            self.delta = DeltaStates(self.config.delta_states_kept)
            hooks = self.teams.on_install  # the Teams side's listeners outlive a reset
            self.teams = TeamsWork(on_install=hooks, chat_readers=self.teams.chat_readers)
            self.online = OnlineMeetingsState()
            self.throttle.reset()
            self.log.reset()
            self.notifier.clear()

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Hold the lock for a change; then notify subscribers, after the lock is released."""
        with self.lock:
            try:
                yield
            finally:
                changes, self.calendars.changes = self.calendars.changes, []
                deliveries = self.subscriptions.deliveries(changes, self.tenant_id, utc_now())
        self.notifier.send(deliveries)

    def close(self) -> None:
        """Stop background work (the notifier thread)."""
        self.notifier.stop()
