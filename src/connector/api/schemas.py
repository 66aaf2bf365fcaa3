"""The REST API's bodies, queries and answers (pydantic; the OpenAPI document is made from them)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    field_validator,
    model_validator,
)

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_KEY = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


def _lower(value: str) -> str:
    return value.strip().lower()


def _domain(value: str) -> str:
    value = value.strip().lower().removeprefix("@")
    if not _DOMAIN.match(value):
        raise ValueError(f"{value!r} is not a domain name such as contoso.com")
    return value


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone offset, e.g. 2026-11-23T09:00:00Z")
    return value.astimezone(dt.UTC)


def _plausible(value: dt.datetime) -> dt.datetime:
    if not 1970 <= value.year <= 2200:
        raise ValueError("must be between the years 1970 and 2200")
    return value


Email = Annotated[EmailStr, AfterValidator(_lower)]
Domain = Annotated[str, AfterValidator(_domain)]
AwareDatetime = Annotated[dt.datetime, AfterValidator(_aware)]
PlausibleDatetime = Annotated[dt.datetime, AfterValidator(_aware), AfterValidator(_plausible)]
StageKey = Annotated[str, Field(pattern=_KEY, description="A stage key such as negotiation")]
Text300 = Annotated[str, Field(min_length=1, max_length=300)]


class Strict(BaseModel):
    """Unknown fields are refused: a misspelled field must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# ---- deals ---------------------------------------------------------------------------


class Account(Strict):
    name: str | None = Field(default=None, max_length=300, description="The customer company.")
    domains: list[Domain] = Field(
        default_factory=list,
        max_length=50,
        description="Email domains of the customer (contoso.com); meetings match on them.",
    )


class Contact(Strict):
    name: str | None = Field(default=None, max_length=200)
    email: Email


class DealIn(Strict):
    """A deal as the CRM sends it. The path carries the CRM's own id."""

    title: Text300
    pipeline: str | None = Field(
        default=None, pattern=_KEY, description="Pipeline id; the default pipeline when absent."
    )
    stage: StageKey
    status: Literal["open", "won", "lost"] | None = Field(
        default=None, description="Defaults to the stage's: won/lost stages close the deal."
    )
    owner: Email | None = Field(default=None, description="The rep who owns the deal (email/UPN).")
    account: Account | None = None
    contacts: list[Contact] = Field(default_factory=list, max_length=200)
    amount: Decimal | None = Field(default=None, ge=0, max_digits=18, decimal_places=2)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$", description="ISO 4217")
    expected_close_date: dt.date | None = None
    crm_url: HttpUrl | None = Field(default=None, description="The deal's page in the CRM.")
    lead_source: str | None = Field(default=None, max_length=100)
    product: str | None = Field(default=None, max_length=100)

    @field_validator("expected_close_date")
    @classmethod
    def _plausible_date(cls, value: dt.date | None) -> dt.date | None:
        if value is not None and not dt.date(1970, 1, 1) <= value <= dt.date(2200, 12, 31):
            raise ValueError("must be between 1970 and 2200; send null when there is none")
        return value

    @model_validator(mode="after")
    def _currency_with_amount(self) -> DealIn:
        if self.amount is not None and self.currency is None:
            raise ValueError("currency is required with amount (an ISO 4217 code such as EUR)")
        return self


class BulkDeal(DealIn):
    id: str = Field(min_length=1, max_length=128, description="The CRM's id of the deal.")


class BulkDealsIn(BaseModel):
    deals: list[BulkDeal] = Field(min_length=1, max_length=1000)


class BulkDealsRaw(BaseModel):
    """Parsed leniently so that one bad item fails alone (its own result), not the call."""

    model_config = ConfigDict(extra="forbid")
    deals: list[dict[str, Any]] = Field(min_length=1, max_length=1000)


class StageMove(Strict):
    stage: StageKey
    note: str | None = Field(default=None, max_length=2000)


class DealOut(BaseModel):
    id: str = Field(description="The CRM's id of the deal.")
    title: str
    pipeline: str
    stage: str
    stage_name: str
    status: str
    owner: str | None
    account: Account
    contacts: list[Contact]
    amount: Decimal | None
    currency: str | None
    expected_close_date: dt.date | None
    crm_url: str | None
    lead_source: str | None
    product: str | None
    stage_entered_at: dt.datetime
    days_in_stage: int
    last_interaction_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


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


class InteractionIn(Strict):
    """A call, email or note logged by hand."""

    kind: Literal["call", "email", "note"]
    subject: str | None = Field(default=None, max_length=500)
    text: str | None = Field(default=None, max_length=20000)
    occurred_at: PlausibleDatetime | None = Field(default=None, description="Default: now.")
    external_id: str | None = Field(
        default=None,
        max_length=200,
        description="Your id for it: sending the same id again does not log it twice.",
    )
    by: Email | None = Field(default=None, description="Who had the interaction.")

    @model_validator(mode="after")
    def _something_said(self) -> InteractionIn:
        if not (self.subject or self.text):
            raise ValueError("give a subject or a text")
        return self


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
    details: dict[str, Any]


class InteractionList(BaseModel):
    items: list[InteractionOut]


# ---- pipelines -----------------------------------------------------------------------


class StageIn(Strict):
    key: StageKey
    name: Text300
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
    name: Text300
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


class RepList(BaseModel):
    items: list[RepOut]


# ---- analytics -----------------------------------------------------------------------


class FunnelQuery(Strict):
    pipeline: str = Field(pattern=_KEY)
    from_: AwareDatetime | None = Field(default=None, alias="from")
    to: AwareDatetime | None = None
    owner: Email | None = None
    lead_source: str | None = None
    product: str | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FunnelStage(BaseModel):
    stage: str
    name: str
    reached: int = Field(description="Deals that reached this stage (or went beyond it).")
    conversion_to_next: float | None = Field(
        description="reached(next) / reached(this) × 100, percent; null for the last stage."
    )
    conversion_from_first: float | None
    in_stage_now: int
    avg_days_in_stage: float | None
    median_days_in_stage: float | None


class Funnel(BaseModel):
    pipeline: str
    deals: int
    won: int
    lost: int
    stages: list[FunnelStage]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    migrations_current: bool
    scheduler: Literal["running", "stopped", "disabled"]
    version: str
