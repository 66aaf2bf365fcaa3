"""The REST API's bodies, queries and answers (pydantic; the OpenAPI document is made from them)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from connector.deals.models import (
    Account,
    AwareDatetime,
    BulkDeal,
    Contact,
    DealIn,
    DealOut,
    Domain,
    Email,
    Funnel,
    FunnelQuery,
    FunnelStage,
    InteractionIn,
    PlausibleDatetime,
    StageKey,
    Strict,
    Text200,
    Text300,
)

# The domain's models are served as they are (api -> deals); re-exported for the API.
from connector.store.types import MeetingDetails

__all__ = [
    "Account",
    "AwareDatetime",
    "BulkDeal",
    "BulkDealsIn",
    "BulkDealsRaw",
    "BulkItemResult",
    "BulkResult",
    "Contact",
    "DealIn",
    "DealList",
    "DealOut",
    "DealQuery",
    "Domain",
    "Email",
    "Funnel",
    "FunnelQuery",
    "FunnelStage",
    "Health",
    "InteractionIn",
    "InteractionList",
    "InteractionOut",
    "PipelineIn",
    "PipelineList",
    "PipelineOut",
    "PlausibleDatetime",
    "RepIn",
    "RepList",
    "RepOut",
    "StageChangeOut",
    "StageHistory",
    "StageIn",
    "StageKey",
    "StageMove",
    "StageOut",
    "Strict",
    "Text200",
    "Text300",
]

_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


# ---- deals ---------------------------------------------------------------------------


class BulkDealsIn(BaseModel):
    deals: list[BulkDeal] = Field(min_length=1, max_length=1000)


class BulkDealsRaw(BaseModel):
    """Parsed leniently so that one bad item fails alone (its own result), not the call."""

    model_config = ConfigDict(extra="forbid")
    deals: list[dict[str, Any]] = Field(min_length=1, max_length=1000)


class StageMove(Strict):
    stage: StageKey
    note: str | None = Field(default=None, max_length=2000)


class DealList(BaseModel):
    items: list[DealOut]
    next_cursor: str | None = Field(description="Pass as cursor= for the next page; null at end.")


class DealQuery(Strict):
    pipeline: str | None = None
    stage: str | None = None
    owner: Email | None = None
    status: Literal["open", "won", "lost"] | None = None
    updated_since: AwareDatetime | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=200)


class BulkItemResult(BaseModel):
    id: str | None
    index: int
    result: Literal["created", "updated", "unchanged", "failed"]
    errors: list[dict[str, Any]] = Field(default_factory=list)


class BulkResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    failed: int
    items: list[BulkItemResult]


class StageChangeOut(BaseModel):
    from_stage: str | None
    to_stage: str
    changed_at: dt.datetime
    changed_by: str


class StageHistory(BaseModel):
    items: list[StageChangeOut]


# ---- interactions --------------------------------------------------------------------


class InteractionOut(BaseModel):
    id: int
    deal: str | None
    kind: str
    source: str
    status: str
    subject: str | None
    text: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None
    created_by: str | None
    match_rule: str | None
    matched_address: str | None
    details: MeetingDetails | None = Field(
        description="What DealBridge keeps of a meeting read from a calendar (never its body); "
        "null for a call, email or note logged by hand."
    )


class InteractionList(BaseModel):
    items: list[InteractionOut]


# ---- pipelines -----------------------------------------------------------------------


class StageIn(Strict):
    key: StageKey
    name: Text200
    probability: float = Field(default=0, ge=0, le=100, description="Win probability, percent.")
    won: bool = False
    lost: bool = False
    rules: list[dict[str, Any]] = Field(default_factory=list, description="Reminder rules.")

    @model_validator(mode="after")
    def _not_both(self) -> StageIn:
        if self.won and self.lost:
            raise ValueError("a stage cannot be both won and lost")
        return self


class PipelineIn(Strict):
    name: Text200
    stages: list[StageIn] = Field(min_length=1, max_length=50)

    @field_validator("stages")
    @classmethod
    def _distinct_keys(cls, stages: list[StageIn]) -> list[StageIn]:
        seen: set[str] = set()
        for stage in stages:
            if stage.key in seen:
                raise ValueError(f"stage key {stage.key!r} appears twice")
            seen.add(stage.key)
        if all(stage.won or stage.lost for stage in stages):
            raise ValueError("a pipeline needs at least one open stage")
        return stages


class StageOut(BaseModel):
    key: str
    name: str
    probability: float
    won: bool
    lost: bool
    rules: list[dict[str, Any]]


class PipelineOut(BaseModel):
    id: str
    name: str
    preset: str | None
    stages: list[StageOut]


class PipelineList(BaseModel):
    items: list[PipelineOut]


# ---- reps ----------------------------------------------------------------------------


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin") from exc
    return value


class RepIn(Strict):
    display_name: str | None = Field(default=None, max_length=200)
    entra_id: str | None = Field(default=None, max_length=64)
    time_zone: Annotated[str, AfterValidator(_zone)] | None = Field(
        default=None, description="IANA zone; Outlook's mailbox settings replace it daily."
    )
    working_days: list[Annotated[int, Field(ge=1, le=7)]] | None = Field(
        default=None, description="ISO weekdays, 1 = Monday."
    )
    work_start: str | None = Field(default=None, pattern=_HHMM)
    work_end: str | None = Field(default=None, pattern=_HHMM)
    holiday_country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    manager: Email | None = None
    active: bool | None = None
    daily_digest: bool | None = Field(
        default=None, description="Send the rep a digest card at the start of each working day."
    )

    brief_minutes: int | None = Field(
        default=None,
        ge=0,
        le=24 * 60,
        description="Minutes before each customer meeting the rep's brief comes (0: none; "
        "unset: DEALBRIDGE_BRIEF_MINUTES_BEFORE).",
    )

    @model_validator(mode="after")
    def _hours_in_order(self) -> RepIn:
        if self.work_start and self.work_end and self.work_end <= self.work_start:
            raise ValueError("work_end must be after work_start")
        return self


class RepOut(BaseModel):
    email: str
    display_name: str
    entra_id: str | None
    time_zone: str
    working_days: list[int]
    work_start: str
    work_end: str
    holiday_country: str | None
    manager: str | None
    active: bool
    daily_digest: bool
    open_deals: int
    brief_minutes: int | None = None
    """The rep's own brief time (None: the default setting)."""


class RepList(BaseModel):
    items: list[RepOut]


# ---- analytics -----------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    migrations_current: bool
    scheduler: Literal["running", "stopped", "disabled"]
    version: str
