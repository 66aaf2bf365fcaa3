"""The deal store's tables (SQLAlchemy 2, portable SQL: SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from connector.store.types import (
    CardKind,
    DealStatus,
    InteractionKind,
    InteractionStatus,
    MeetingDetails,
    MeetingDetailsJSON,
    OutboxStatus,
    ReminderKind,
    ReminderStatus,
    StrEnumColumn,
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _naive_utc(value: dt.datetime) -> dt.datetime:
    """The instant as naive UTC, as the store keeps it; a naive time is refused."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; use timezone-aware UTC")
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores naive UTC, returns aware UTC: SQLite keeps no offset, PostgreSQL would shift it."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else _naive_utc(value)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, one function to the stored text (SQLAlchemy's DATETIME format, written
        by ``isoformat``), not :meth:`process_bind_param` and then SQLite's ``%`` format: a
        round binds about 15 of these a meeting (2.5 -> 1.5 us each)."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: dt.datetime | None) -> str | None:
            return None if value is None else _naive_utc(value).isoformat(" ", "microseconds")

        return process

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


NEVER_AGAIN: dict[str, Any] = {"sqlite_autoincrement": True}
"""Table options of the rows whose ids go out (in webhooks, the API, card and delivery keys):
SQLite gives a deleted row's id to the next new row when that row was the newest, unless the
table is AUTOINCREMENT (migration 0019). PostgreSQL's sequences never give an id twice."""


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Timestamps:
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Pipeline(Timestamps, Base):
    __tablename__ = "pipelines"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    preset: Mapped[str | None] = mapped_column(String(32))
    stages: Mapped[list[Stage]] = relationship(
        back_populates="pipeline",
        order_by="Stage.position",
        cascade="all, delete-orphan",
        lazy="selectin",
    )

    def stage(self, key: str) -> Stage | None:
        """The stage with this key, from an index of the loaded stages (a bulk call of 1,000
        deals asks 4,000 times): rebuilt when the stages are loaded again, or when any
        pipeline's stages or any stage's key changed in this process (:func:`_stages_changed`)."""
        stages = self.stages
        index: tuple[list[Stage], int, dict[str, Stage]] | None = getattr(
            self, "_stage_index", None
        )
        if index is None or index[0] is not stages or index[1] != _stage_edits[0]:
            index = (stages, _stage_edits[0], {s.key: s for s in reversed(stages)})
            self._stage_index = index  # a plain attribute: not mapped, never stored
        return index[2].get(key)


class Stage(Base):
    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("pipeline_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[str] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    probability: Mapped[float] = mapped_column(Float, default=0.0)
    is_won: Mapped[bool] = mapped_column(Boolean, default=False)
    is_lost: Mapped[bool] = mapped_column(Boolean, default=False)
    rules: Mapped[list[Any]] = mapped_column(default=list)
    pipeline: Mapped[Pipeline] = relationship(back_populates="stages")


_stage_edits = [0]
"""How many times stages were added, removed or re-keyed in this process: a pipeline's stage
index older than this is rebuilt (edits are rare: an admin's pipeline change)."""


@event.listens_for(Pipeline.stages, "append", propagate=True)
@event.listens_for(Pipeline.stages, "remove", propagate=True)
@event.listens_for(Pipeline.stages, "bulk_replace", propagate=True)
@event.listens_for(Stage.key, "set", propagate=True)
def _stages_changed(*_args: Any) -> None:
    _stage_edits[0] += 1


class Rep(Timestamps, Base):
    __tablename__ = "reps"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    entra_id: Mapped[str | None] = mapped_column(String(64), index=True)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    working_days: Mapped[list[Any]] = mapped_column(default=lambda: [1, 2, 3, 4, 5])
    work_start: Mapped[str] = mapped_column(String(5), default="09:00")
    work_end: Mapped[str] = mapped_column(String(5), default="17:00")
    holiday_country: Mapped[str | None] = mapped_column(String(8))
    manager_email: Mapped[str | None] = mapped_column(String(320))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Deal(Timestamps, Base):
    __tablename__ = "deals"
    __table_args__ = (
        Index("ix_deals_pipeline_stage", "pipeline_id", "stage_key"),
        Index("ix_deals_updated", "updated_at", "id"),
        # deal search and "may see": the rep's deals and their accounts' (migration 0016)
        Index("ix_deals_owner_status", "owner_email", "status", "account_name"),
        Index("ix_deals_account_status", "account_name", "status"),
        NEVER_AGAIN,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    crm_id: Mapped[str] = mapped_column(String(128), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    pipeline_id: Mapped[str] = mapped_column(ForeignKey("pipelines.id"))
    stage_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[DealStatus] = mapped_column(
        StrEnumColumn(DealStatus, 8), default=DealStatus.OPEN, index=True
    )
    owner_email: Mapped[str | None] = mapped_column(String(320), index=True)
    account_name: Mapped[str | None] = mapped_column(String(300))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    expected_close_date: Mapped[dt.date | None] = mapped_column(Date)
    crm_url: Mapped[str | None] = mapped_column(String(2000))
    lead_source: Mapped[str | None] = mapped_column(String(100))
    product: Mapped[str | None] = mapped_column(String(100))
    stage_entered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_interaction_at: Mapped[dt.datetime | None] = mapped_column()
    contacts: Mapped[list[DealContact]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="DealContact.id"
    )
    domains: Mapped[list[DealDomain]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="DealDomain.id"
    )
    stage_changes: Mapped[list[StageChange]] = relationship(
        cascade="all, delete-orphan", order_by="StageChange.id", back_populates="deal"
    )


class DealContact(Base):
    __tablename__ = "deal_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), index=True)


class DealDomain(Base):
    __tablename__ = "deal_domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    domain: Mapped[str] = mapped_column(String(253), index=True)


class StageChange(Base):
    __tablename__ = "stage_changes"
    __table_args__ = NEVER_AGAIN

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    pipeline_id: Mapped[str] = mapped_column(String(64))
    from_stage: Mapped[str | None] = mapped_column(String(64))
    to_stage: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    changed_by: Mapped[str] = mapped_column(String(200))
    deal: Mapped[Deal] = relationship(back_populates="stage_changes")


class Interaction(Timestamps, Base):
    __tablename__ = "interactions"
    __table_args__ = NEVER_AGAIN

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int | None] = mapped_column(
        ForeignKey("deals.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[InteractionKind] = mapped_column(StrEnumColumn(InteractionKind, 16))
    source: Mapped[str] = mapped_column(String(32))
    external_key: Mapped[str] = mapped_column(String(512), unique=True)
    status: Mapped[InteractionStatus] = mapped_column(
        StrEnumColumn(InteractionStatus, 16), index=True
    )
    subject: Mapped[str | None] = mapped_column(String(500))
    text: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column()
    created_by: Mapped[str | None] = mapped_column(String(200))
    match_rule: Mapped[str | None] = mapped_column(String(32))
    matched_address: Mapped[str | None] = mapped_column(String(320))
    details: Mapped[MeetingDetails | None] = mapped_column(MeetingDetailsJSON)
    """A meeting's details (from the calendar); None for a call, email or note logged by hand.
    Frozen: assign a changed copy (``details.but(...)``)."""


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class OutboxItem(Timestamps, Base):
    """A delivery waiting to be made: a calendar event, a Teams card or a webhook."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"), NEVER_AGAIN)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    """The handler's name (``register_handler``): the registry is its enumeration."""
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[OutboxStatus] = mapped_column(
        StrEnumColumn(OutboxStatus, 16), default=OutboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[dt.datetime | None] = mapped_column()
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Reminder(Timestamps, Base):
    """A stage reminder of a deal, as planned, and where it was delivered."""

    __tablename__ = "reminders"
    __table_args__ = (Index("ix_reminders_rep_due", "rep_email", "due_at"), NEVER_AGAIN)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(400), unique=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    rep_email: Mapped[str | None] = mapped_column(String(320))
    stage_key: Mapped[str] = mapped_column(String(64))
    rule_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[ReminderKind] = mapped_column(StrEnumColumn(ReminderKind, 32))
    occurrence: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(500))
    message: Mapped[str] = mapped_column(Text)
    due_at: Mapped[dt.datetime] = mapped_column()
    stage_deadline: Mapped[bool] = mapped_column(Boolean, default=False)  # an sla's limit
    status: Mapped[ReminderStatus] = mapped_column(
        StrEnumColumn(ReminderStatus, 16), default=ReminderStatus.OPEN, index=True
    )
    snoozed_until: Mapped[dt.datetime | None] = mapped_column()
    done_at: Mapped[dt.datetime | None] = mapped_column()
    done_by: Mapped[str | None] = mapped_column(String(320))
    version: Mapped[int] = mapped_column(Integer, default=1)
    calendar_mailbox: Mapped[str | None] = mapped_column(String(320))
    calendar_event_id: Mapped[str | None] = mapped_column(String(512))
    deal: Mapped[Deal] = relationship()

    @property
    def effective_due_at(self) -> dt.datetime:
        return (
            self.snoozed_until
            if self.status == ReminderStatus.SNOOZED and self.snoozed_until
            else self.due_at
        )


class Mailbox(Timestamps, Base):
    """A rep's Outlook mailbox as DealBridge reads it: delta state and subscription."""

    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(primary_key=True)
    rep_email: Mapped[str] = mapped_column(String(320), unique=True)
    user_id: Mapped[str | None] = mapped_column(String(64))
    window_start: Mapped[dt.datetime | None] = mapped_column()
    window_end: Mapped[dt.datetime | None] = mapped_column()
    delta_link: Mapped[str | None] = mapped_column(Text)
    needs_sync: Mapped[bool] = mapped_column(Boolean, default=True)
    notified_at: Mapped[dt.datetime | None] = mapped_column()
    last_round_at: Mapped[dt.datetime | None] = mapped_column()
    last_success_at: Mapped[dt.datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_code: Mapped[str | None] = mapped_column(String(100))
    """The code of the last error as Graph or Entra gave it (``ErrorAccessDenied``,
    ``AADSTS65001``): what the health card decides by, never the text."""
    missing_permission: Mapped[str | None] = mapped_column(String(100))
    """The application permission the last error said is not granted (admin consent needed)."""
    failures: Mapped[int] = mapped_column(Integer, default=0)
    events_seen: Mapped[int] = mapped_column(Integer, default=0)
    subscription_id: Mapped[str | None] = mapped_column(String(100), index=True)
    subscription_expires_at: Mapped[dt.datetime | None] = mapped_column()
    client_state_hash: Mapped[str | None] = mapped_column(String(64))


class MailboxEvent(Base):
    """Which interaction an event of a mailbox became (``@removed`` only gives the event id)."""

    __tablename__ = "mailbox_events"
    __table_args__ = (UniqueConstraint("mailbox_id", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(512))
    meeting_key: Mapped[str] = mapped_column(String(512), index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TeamsConversation(Timestamps, Base):
    """Where the bot reaches a rep in Teams (from the install activity or a proactive create)."""

    __tablename__ = "teams_conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    rep_email: Mapped[str | None] = mapped_column(String(320), index=True)
    aad_object_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    teams_user_id: Mapped[str] = mapped_column(String(200))
    service_url: Mapped[str] = mapped_column(String(500))
    conversation_id: Mapped[str | None] = mapped_column(String(300))
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    blocked_at: Mapped[dt.datetime | None] = mapped_column()
    blocked_reason: Mapped[str | None] = mapped_column(Text)
    fallback_reason: Mapped[str | None] = mapped_column(Text)


class TeamsCard(Timestamps, Base):
    """A card the bot sent (to update it in place when its subject changes elsewhere)."""

    __tablename__ = "teams_cards"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    rep_email: Mapped[str | None] = mapped_column(String(320), index=True)
    kind: Mapped[CardKind] = mapped_column(StrEnumColumn(CardKind, 32))
    conversation_id: Mapped[str | None] = mapped_column(String(300))
    activity_id: Mapped[str | None] = mapped_column(String(200))
    stamp: Mapped[str | None] = mapped_column(String(64))


class RepPreference(Base):
    """What a rep chose for herself: the daily digest, and (migration 0017) where reminders
    reach her, quiet hours, the digest's time and a pause of meeting capture."""

    __tablename__ = "rep_preferences"

    id: Mapped[int] = mapped_column(primary_key=True)
    rep_email: Mapped[str] = mapped_column(String(320), unique=True)
    daily_digest: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # --- the rep's own controls (0017) ---
    channels: Mapped[str | None] = mapped_column(String(16))
    """``teams``, ``outlook`` or ``both``; None: as the admin set (DEALBRIDGE_REMINDER_CHANNELS)."""
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    """Quiet hours' start (``HH:MM``, the rep's time zone): no new Teams reminder card."""
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    digest_time: Mapped[str | None] = mapped_column(String(5))
    """When the daily digest comes (``HH:MM``); None: at the start of the working day."""
    capture_paused_until: Mapped[dt.datetime | None] = mapped_column()
    """Until then her mailbox is not read at all (the round skips it)."""
    # --- the brief before a customer meeting (0018) ---
    brief_minutes: Mapped[int | None] = mapped_column(Integer)
    """Minutes before each customer meeting the brief comes (None: the default, 15; 0: none)."""


class MeetingExclusion(Base):
    """A meeting a rep said not to log ("Don't log this meeting"), kept out on every later
    round, whoever's calendar holds it: by the series' iCalUId, so updates and every
    occurrence of a recurring meeting stay out. Admins may read it, never change it."""

    __tablename__ = "meeting_exclusions"
    __table_args__ = (UniqueConstraint("series_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_key: Mapped[str] = mapped_column(String(512))
    """The series' iCalUId (``graph_sync.models.series_uid``), or the meeting key."""
    meeting_key: Mapped[str] = mapped_column(String(512))
    """The interaction's external key the rep withdrew."""
    rep_email: Mapped[str] = mapped_column(String(320), index=True)
    interaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("interactions.id", ondelete="SET NULL")
    )
    previous_status: Mapped[str] = mapped_column(String(16))
    """What the interaction was before (Undo puts it back)."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    undo_until: Mapped[dt.datetime] = mapped_column()


class SchedulerLeader(Base):
    """The scheduler leader's heartbeat (one row): who holds the lead and when it last beat."""

    __tablename__ = "scheduler_leader"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    since: Mapped[dt.datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class JobRun(Base):
    """One run of a job the leader found due; a worker claims it, runs it, records the end.

    ``run_key`` is the job and its period (``meetings@2026-12-02T01:00:30``), unique: a period
    is dispatched once however often leaders change."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    arg: Mapped[str | None] = mapped_column(String(320))
    run_key: Mapped[str] = mapped_column(String(400), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="due")
    due_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[dt.datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    holder: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)


class AttendanceCheck(Timestamps, Base):
    """A logged Teams meeting whose attendance is to be read after it ends (one per occurrence).

    ``connector.meetings.attendance`` looks when ``due_at`` passes, and again with backoff
    while the report is not ready, until ``status`` is ``done`` or ``gave_up``."""

    __tablename__ = "attendance_checks"
    __table_args__ = (Index("ix_attendance_checks_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


# ---- the admin console (migration 0015) ------------------------------------------------------


class AuditEntry(Base):
    """One action an admin took in the console: who, what, on what, when."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(320))
    """The admin's UPN as Entra signed them in."""
    action: Mapped[str] = mapped_column(String(64))
    """What was done, e.g. ``delivery.retry``, ``rep.deactivate``, ``exclusion.add``."""
    target: Mapped[str] = mapped_column(String(512))
    """What it was done to (an outbox item id, a rep's email, an exclusion)."""
    detail: Mapped[str | None] = mapped_column(Text)


class PrivacyExclusion(Base):
    """An exclusion an admin added in the console, applied besides the settings' ones."""

    __tablename__ = "privacy_exclusions"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    """``address``, ``domain`` or ``category``."""
    value: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320))
