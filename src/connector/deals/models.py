"""Deals as the domain takes and gives them: a deal from the CRM, a hand-logged interaction,
the funnel. The REST API serves these same models (``connector.api.schemas`` re-exports them).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.networks import validate_email

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_KEY = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_T = TypeVar("_T")


_PLAIN_EMAIL = re.compile(
    r"(?P<local>[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*)@"
    r"(?P<domain>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?P<tld>[a-z]{2,63}))"
)
_SPECIAL_USE = ("arpa", "invalid", "local", "localhost", "onion", "test")
"""Domains email-validator refuses as not deliverable (RFC 6761), the name and its subdomains."""


def _email(value: str) -> str:
    """An email address, lower-cased, as pydantic's ``EmailStr`` (email-validator) accepts it.
    A plain ASCII address (the usual kind) is judged by one regular expression that accepts
    only what email-validator accepts; anything else is left to email-validator (about 100 µs
    an address: 1,000 deals with a contact each spent 0.2 s on it)."""
    value = value.strip()
    lowered = value.lower()
    plain = _PLAIN_EMAIL.fullmatch(lowered) if value.isascii() and len(value) <= 254 else None
    if (
        plain is not None
        and len(plain["local"]) <= 64
        and len(plain["domain"]) <= 253
        and "--" not in plain["domain"]  # punycode (xn--) and the like: email-validator's call
        and plain["tld"] not in _SPECIAL_USE
    ):
        return lowered
    return validate_email(value)[1].strip().lower()


def _domain(value: str) -> str:
    value = value.strip().lower().removeprefix("@")
    if not _DOMAIN.match(value):
        raise ValueError(f"{value!r} is not a domain name such as contoso.com")
    return value


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone offset, e.g. 2026-11-23T09:00:00Z")
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC (9999-12-31 -01:00: 10000)
        raise ValueError("must be between the years 1 and 9999 in UTC") from None


def _at_most(length: int) -> AfterValidator:
    """A length limit for values whose type has none of its own (an email address, a URL)."""

    def check(value: _T) -> _T:
        if len(str(value)) > length:
            raise ValueError(f"must be at most {length} characters")
        return value

    return AfterValidator(check)


def _nul_free(value: object) -> None:
    """PostgreSQL refuses NUL in text, SQLite keeps it; no one means to send it: refuse it."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters (U+0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _nul_free(key)
            _nul_free(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _nul_free(item)


def _plausible(value: dt.datetime) -> dt.datetime:
    if not 1970 <= value.year <= 2200:
        raise ValueError("must be between the years 1970 and 2200")
    return value


Email = Annotated[
    str, AfterValidator(_email), WithJsonSchema({"type": "string", "format": "email"})
]
Domain = Annotated[str, AfterValidator(_domain)]
AwareDatetime = Annotated[dt.datetime, AfterValidator(_aware)]
PlausibleDatetime = Annotated[dt.datetime, AfterValidator(_aware), AfterValidator(_plausible)]
StageKey = Annotated[str, Field(pattern=_KEY, description="A stage key such as negotiation")]
Text300 = Annotated[str, Field(min_length=1, max_length=300)]
Text200 = Annotated[str, Field(min_length=1, max_length=200)]


NUL_CHECKED = {"nul_checked": True}
"""The validation context of input whose raw text was searched for NUL once already (a JSON
body without ``\\u0000``: JSON has no other way to write U+0000 in a string), so that no field
looks again (a bulk call's 1,000 deals have some 20,000 fields)."""


def nul_context(raw_json: bytes) -> dict[str, bool] | None:
    """:data:`NUL_CHECKED` for a JSON body that cannot hold a NUL, else None (every field is
    looked at, and the one that holds it is named)."""
    return NUL_CHECKED if b"\\u0000" not in raw_json else None


class Strict(BaseModel):
    """Unknown fields are refused: a misspelled field must not be silently ignored. No string
    may hold a NUL character (PostgreSQL cannot store it: a 422 naming the field, on both)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: _T, info: ValidationInfo) -> _T:
        if info.context is None or not info.context.get("nul_checked"):
            _nul_free(value)
        return value


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
    # 15 digits: what SQLite's NUMERIC (a double) keeps exactly, as PostgreSQL's numeric does.
    amount: Decimal | None = Field(default=None, ge=0, max_digits=15, decimal_places=2)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$", description="ISO 4217")
    expected_close_date: dt.date | None = None
    crm_url: Annotated[HttpUrl, _at_most(2000)] | None = Field(
        default=None, description="The deal's page in the CRM (at most 2000 characters)."
    )
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
    by: Annotated[Email, _at_most(200)] | None = Field(
        default=None, description="Who had the interaction (at most 200 characters)."
    )

    @model_validator(mode="after")
    def _something_said(self) -> InteractionIn:
        if not (self.subject or self.text):
            raise ValueError("give a subject or a text")
        return self


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
