"""Settings from the environment (prefix ``DEALBRIDGE_``, ``.env`` supported).

A wrong or missing value stops start-up with one message that lists every problem and
how to fix it (:class:`SettingsError`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

ENV_PREFIX = "DEALBRIDGE_"
MICROSOFT_LOGIN = "https://login.microsoftonline.com"
MICROSOFT_GRAPH = "https://graph.microsoft.com"
BOT_FRAMEWORK_OPENID = "https://login.botframework.com/v1/.well-known/openidconfiguration"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


Channel = Literal["calendar", "teams"]


def _all_channels() -> list[Channel]:
    return ["calendar", "teams"]


class SettingsError(Exception):
    """The settings cannot be used; ``problems`` lists each one as ``NAME: what to do``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"DealBridge cannot start: fix these settings\n{lines}")


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL such as https://dealbridge.example.com")
    return value.rstrip("/")


class Settings(BaseSettings):
    """Every setting of DealBridge. Environment: ``DEALBRIDGE_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means the embedded SQLite file instance/dealbridge.db.",
    )
    instance_path: Path = Field(
        default=Path("instance"), description="Folder for the embedded database and state."
    )
    tenant_id: str | None = Field(default=None, description="Entra tenant id (GUID) or domain.")
    client_id: str | None = Field(default=None, description="Entra app (client) id, a GUID.")
    client_secret: SecretStr | None = Field(default=None, description="Entra app client secret.")
    client_secret_expires_on: dt.date | None = Field(
        default=None, description="Expiry date of the client secret (YYYY-MM-DD), for doctor."
    )
    certificate_path: Path | None = Field(
        default=None, description="PEM private key of the app certificate (instead of a secret)."
    )
    certificate_thumbprint: str | None = Field(
        default=None, description="SHA-1 thumbprint (hex) of the app certificate."
    )
    public_url: str | None = Field(
        default=None,
        description="Where Graph and Teams reach DealBridge, e.g. https://db.example.com",
    )
    login_base_url: str = Field(default=MICROSOFT_LOGIN, description="Entra authority host.")
    graph_base_url: str = Field(default=MICROSOFT_GRAPH, description="Microsoft Graph host.")
    bot_id: str | None = Field(default=None, description="Azure Bot app id; defaults to client_id.")
    bot_openid_metadata_url: str = Field(
        default=BOT_FRAMEWORK_OPENID, description="Bot Framework OpenID metadata for inbound JWTs."
    )
    teams_app_id: str | None = Field(default=None, description="The Teams app manifest id (GUID).")
    publish_client_id: str | None = Field(
        default=None,
        description="Entra app (client) id an admin signs in with for `manifest publish` "
        "(public client flows on, delegated AppCatalog.Submit); defaults to client_id.",
    )
    app_version: str = Field(default="1.0.0", description="Teams app package version.")
    app_short_name: str | None = Field(default=None, description="App name in Teams (≤ 30).")
    app_full_name: str | None = Field(default=None, description="Full app name (≤ 100).")
    app_short_description: str | None = Field(default=None, description="≤ 80 characters.")
    app_full_description: str | None = Field(default=None, description="≤ 4,000 characters.")
    developer_name: str | None = Field(default=None, description="Publisher shown in Teams.")
    developer_website_url: str | None = Field(default=None, description="https; default public.")
    privacy_url: str | None = Field(default=None, description="https; default {public}/privacy.")
    terms_url: str | None = Field(default=None, description="https; default {public}/terms.")
    accent_color: str | None = Field(default=None, description="#RRGGBB of the Teams app.")
    api_key: SecretStr | None = Field(
        default=None, description="One API key accepted besides stored ones (demo, bootstrap)."
    )
    webhook_url: str | None = Field(default=None, description="Where the CRM receives webhooks.")
    webhook_secret: SecretStr | None = Field(
        default=None, description="Shared secret for the webhooks' HMAC-SHA256 signature."
    )
    default_pipeline: str = Field(
        default="classic5", description="Pipeline of deals sent without one."
    )
    auto_migrate: bool | None = Field(
        default=None, description="Apply migrations at start; default on for embedded SQLite."
    )
    reminder_channels: list[Channel] = Field(
        default_factory=_all_channels,
        description="Where reminders go (JSON list in the environment).",
    )
    reminder_minutes_before: int = Field(
        default=15, ge=0, le=1440, description="Outlook's pop-up before a reminder event."
    )
    calendar_lead_hours: int = Field(
        default=24, ge=0, le=24 * 14, description="How early a reminder event appears."
    )
    default_time_zone: str = Field(default="UTC", description="For reps whose mailbox has none.")
    default_working_days: list[int] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5], description="ISO weekdays, 1 = Monday."
    )
    default_work_start: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    default_work_end: str = Field(default="17:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    default_holiday_country: str | None = Field(
        default=None, description="Public holidays (ISO country) when a rep has none set."
    )
    sync_days_back: int = Field(default=30, ge=1, le=365, description="Calendar window back.")
    sync_days_ahead: int = Field(default=90, ge=1, le=365, description="Calendar window ahead.")
    sync_poll_minutes: int = Field(
        default=15, ge=1, le=1440, description="Safety-net delta poll of every mailbox."
    )
    sync_debounce_seconds: float = Field(
        default=0.3,  # bench_change_logged: p95 of "a change logged" < 1 s; a burst 2 rounds
        ge=0,
        le=60,
        description="A notification after a quiet spell this long is read at once; sooner ones "
        "wait until the notifications pause this long, and are read in one round.",
    )
    sync_max_removal_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A round removing or cancelling more of a mailbox's logged meetings is "
        "refused (from 5 logged meetings; 1 turns the guard off).",
    )
    internal_domains: list[str] = Field(
        default_factory=list,
        description="Extra internal domains besides the tenant's verified ones (JSON list).",
    )
    excluded_addresses: list[str] = Field(
        default_factory=list, description="Meetings with these addresses are never logged."
    )
    excluded_domains: list[str] = Field(
        default_factory=list, description="Meetings with these domains are never logged."
    )
    excluded_categories: list[str] = Field(
        default_factory=list, description="Outlook categories whose meetings are never logged."
    )
    log_all_day_meetings: bool = Field(default=False, description="Log all-day events too.")
    log_personal_meetings: bool = Field(
        default=False, description="Log meetings marked personal (private: never)."
    )
    admin_emails: list[str] = Field(
        default_factory=list,
        description="Admins who get the health card in Teams when something needs fixing.",
    )
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, description="Largest request.")
    scheduler_enabled: bool = Field(default=True, description="Run background jobs in-process.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    sync_max_wait_seconds: float = Field(
        default=10.0,
        ge=0.1,
        le=3600,
        description="A mailbox that keeps changing is still read at least this often.",
    )
    interaction_retention_days: int | None = Field(
        default=None,
        ge=1,
        description="Delete interactions (meetings, notes) that started more than this many "
        "days ago, daily; unset (the default) keeps them. At least the calendar window back "
        "(DEALBRIDGE_SYNC_DAYS_BACK), or a round would log them again.",
    )
    log_format: Literal["text", "json"] = Field(default="text", description="json: one a line.")
    outbox_drain_seconds: float = Field(
        default=5.0, gt=0, description="How often the outbox is drained (seconds)."
    )
    outbox_lease_seconds: float = Field(
        default=300.0, gt=0, description="How long a claimed delivery is held before another try."
    )
    outbox_first_retry_seconds: float = Field(
        default=30.0, gt=0, description="First retry delay of a failed delivery (then doubling)."
    )
    # --- the "My deals" tab (teamstab) ---
    tab_frame_ancestors: list[str] = Field(
        default_factory=list,
        description='Origins besides Teams\' own that may frame the "My deals" tab (the '
        "sandbox's Teams page in the demo and tests); JSON list.",
    )

    # --- message extension and link unfurling (teamsext) ---
    crm_link_pattern: str | None = Field(
        default=None,
        description="A deal's page in the CRM with {deal_id} for the CRM id, e.g. "
        "https://crm.example.com/deals/{deal_id}; Teams unfurls such links into deal cards.",
    )

    @field_validator("crm_link_pattern")
    @classmethod
    def _crm_link_pattern(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http(s) URL: https://crm.example.com/deals/{deal_id}")
        if value.count("{deal_id}") != 1 or "{deal_id}" in parts.netloc:
            raise ValueError("must hold {deal_id} once, in its path or query: .../deals/{deal_id}")
        return value

    # ---- Teams attendance and the brief before a meeting (connector.meetings.attendance) ----
    attendance_enabled: bool = Field(
        default=True,
        description="Read Teams attendance of logged online meetings after they end (needs "
        "OnlineMeetings.Read.All, OnlineMeetingArtifact.Read.All and the Teams application "
        "access policy; without them meetings stay held (not verified)).",
    )
    brief_minutes_before: int = Field(
        default=15,
        ge=0,
        le=24 * 60,
        description="The brief before a customer meeting comes this many minutes before it "
        "(a rep's own preference wins; 0: no briefs).",
    )

    # ---- the admin console (connector.admin.console) ----
    admin_session_key: SecretStr | None = Field(
        default=None,
        description="Signs the admin console's session cookie (32+ random characters, e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`); unset turns the "
        "console's sign-in off.",
    )
    admins: list[str] = Field(
        default_factory=list,
        description="Who may use the admin console besides holders of the app role "
        "DealBridge.Admin (UPNs, JSON list).",
    )
    admin_session_minutes: int = Field(
        default=480, ge=1, le=7 * 24 * 60, description="An admin console sign-in lasts this long."
    )

    @field_validator("public_url", "webhook_url")
    @classmethod
    def _optional_url(cls, value: str | None) -> str | None:
        return None if value in (None, "") else _base_url(value)

    @field_validator("client_secret_expires_on", mode="before")
    @classmethod
    def _date(cls, value: object) -> object:
        if value in (None, ""):
            return None
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                raise ValueError("not a date: write it as YYYY-MM-DD") from None
        return value

    @field_validator("login_base_url", "graph_base_url", "bot_openid_metadata_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _base_url(value)

    @field_validator("client_id", "bot_id", "teams_app_id", "publish_client_id")
    @classmethod
    def _guid(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not _GUID.match(value):
            raise ValueError("must be a GUID such as 00000000-0000-0000-0000-000000000000")
        return value.lower()

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and "://" not in value:
            raise ValueError("must be a SQLAlchemy URL such as postgresql+psycopg://host/db")
        return value

    @field_validator("default_time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("must be an IANA time zone such as Europe/Berlin") from exc
        return value

    @model_validator(mode="after")
    def _retention_covers_the_window(self) -> Settings:
        days = self.interaction_retention_days
        if days is not None and days < self.sync_days_back:
            raise ValueError(
                f"{ENV_PREFIX}INTERACTION_RETENTION_DAYS ({days}) must be at least "
                f"{ENV_PREFIX}SYNC_DAYS_BACK ({self.sync_days_back}): meetings still in the "
                "calendar window would be logged again"
            )
        return self

    @model_validator(mode="after")
    def _certificate_pair(self) -> Settings:
        if (self.certificate_path is None) != (self.certificate_thumbprint is None):
            raise ValueError(
                "DEALBRIDGE_CERTIFICATE_PATH and DEALBRIDGE_CERTIFICATE_THUMBPRINT go together"
            )
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.instance_path / 'dealbridge.db').resolve()}"

    @property
    def is_embedded_sqlite(self) -> bool:
        return not self.database_url

    @property
    def migrate_on_start(self) -> bool:
        return self.is_embedded_sqlite if self.auto_migrate is None else self.auto_migrate

    @property
    def effective_bot_id(self) -> str | None:
        return self.bot_id or self.client_id

    @property
    def microsoft365_configured(self) -> bool:
        return not self.microsoft365_problems()

    def microsoft365_problems(self) -> list[str]:
        """What is missing to talk to Microsoft 365 (empty when everything is there)."""
        problems = []
        if not self.tenant_id:
            problems.append(f"{ENV_PREFIX}TENANT_ID: missing; your Entra tenant id or domain")
        if not self.client_id:
            problems.append(f"{ENV_PREFIX}CLIENT_ID: missing; the Entra app's (client) id")
        if self.client_secret is None and self.certificate_path is None:
            problems.append(
                f"{ENV_PREFIX}CLIENT_SECRET: missing; a client secret of the Entra app "
                f"(or {ENV_PREFIX}CERTIFICATE_PATH and {ENV_PREFIX}CERTIFICATE_THUMBPRINT)"
            )
        if not self.public_url:
            problems.append(
                f"{ENV_PREFIX}PUBLIC_URL: missing; the https URL where Graph and Teams reach us"
            )
        return problems


def load_settings(overrides: Mapping[str, Any] | None = None, *, env_file: bool = True) -> Settings:
    """Read the settings, or raise :class:`SettingsError` naming every problem at once."""
    kwargs: dict[str, Any] = dict(overrides or {})
    if not env_file:
        kwargs["_env_file"] = None
    try:
        return Settings(**kwargs)
    except ValidationError as exc:
        raise SettingsError([_describe(err) for err in exc.errors()]) from exc
    except SourceError as exc:  # a value pydantic-settings cannot even parse (a list, not JSON)
        raise SettingsError([_unparsable(exc)]) from exc


def _unparsable(exc: SourceError) -> str:
    found = re.search(r'field "([a-z_]+)"', str(exc))
    if not found:
        return f"settings: {exc}"
    name = found.group(1)
    raw = os.environ.get(f"{ENV_PREFIX}{name.upper()}", "")
    items = [part.strip() for part in raw.split(",") if part.strip()] or ["..."]
    example = "[" + ", ".join(f'"{item}"' for item in items) + "]"
    return f"{ENV_PREFIX}{name.upper()}: not a JSON list; write it as {example}"


def _describe(error: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ()) if part != "__root__"]
    name = f"{ENV_PREFIX}{loc[0].upper()}" if loc else "settings"
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    value = error.get("input")
    hidden = bool(loc) and ("secret" in loc[0] or "key" in loc[0])
    shown = "" if hidden or isinstance(value, dict) else f" (got {value!r})"
    return f"{name}: {message}{shown}" if loc else message


SETTINGS_EXTENSION = "dealbridge.settings"


def current_settings() -> Settings:
    """The running app's settings."""

    settings: Settings = current_app.extensions[SETTINGS_EXTENSION]
    return settings


# ---- checks before a command uses the settings ---------------------------------------------

POSTGRES_EXTRA = "pip install 'dealbridge[postgres]'"


def shown_database(settings: Settings) -> str:
    """The database URL to print: the password masked; the embedded file's absolute path."""
    url = settings.effective_database_url
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported by database_problems
        return "(unreadable URL)"
    if settings.is_embedded_sqlite:
        shown += f" (embedded: {ENV_PREFIX}INSTANCE_PATH={settings.instance_path})"
    return shown


def sqlite_file(settings: Settings) -> Path | None:
    """The SQLite file of the settings' database, if it is one (not in memory)."""
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser().resolve()


def database_problems(settings: Settings, *, creates: bool) -> list[str]:
    """What keeps a command from opening the database, before any connection: the URL, the
    driver, the SQLite file and its folder. ``creates``: the command may create a new
    database (``db upgrade``, and ``serve`` when it migrates on start); every other command
    refuses a database that does not exist rather than creating one somewhere unexpected."""
    name = f"{ENV_PREFIX}DATABASE_URL"
    try:
        url = make_url(settings.effective_database_url)
        dialect = url.get_dialect()
    except ArgumentError as exc:
        return [f"{name}: not a SQLAlchemy URL ({exc}); e.g. postgresql+psycopg://host/db"]
    except NoSuchModuleError:
        return [
            f"{name}: unknown database kind {url.drivername!r}; use sqlite:///path or "
            f"postgresql+psycopg://host/db"
        ]
    try:
        dialect.import_dbapi()
    except ImportError:
        hint = POSTGRES_EXTRA if url.get_backend_name() == "postgresql" else "install it"
        return [
            f"{name}: the driver {url.get_driver_name()!r} for {url.get_backend_name()} is not "
            f"installed; {hint}"
            + (" and use postgresql+psycopg://" if url.get_backend_name() == "postgresql" else "")
        ]
    path = sqlite_file(settings)
    if path is None:
        return []
    where = f"{ENV_PREFIX}INSTANCE_PATH" if settings.is_embedded_sqlite else name
    if path.exists():
        if path.is_dir() or not os.access(path, os.R_OK | os.W_OK):
            return [
                f"{where}: cannot open the SQLite file {path} (a folder, or not readable and "
                "writable by this user); fix its permissions or point at another file"
            ]
        return []
    folder = path.parent
    if not settings.is_embedded_sqlite and not folder.is_dir():
        return [
            f"{where}: cannot open the SQLite file {path}: its folder {folder} does not exist; "
            "create the folder or choose another path"
        ]
    if not creates:
        return [
            f"{where}: no database at {path}; create it with `dealbridge db upgrade`, or point "
            f"{ENV_PREFIX}DATABASE_URL at the database the service uses"
        ]
    existing = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK):
        return [f"{where}: cannot create the SQLite file {path}: {existing} is not writable"]
    return []


def _real_microsoft(settings: Settings) -> bool:
    return settings.graph_base_url == MICROSOFT_GRAPH or settings.login_base_url == MICROSOFT_LOGIN


def _features(settings: Settings) -> str:
    channels = " and ".join(settings.reminder_channels)
    reminders = f"reminders ({channels}), " if channels else ""
    return f"{reminders}meeting sync and the bot"


def serving_problems(settings: Settings) -> list[str]:
    """What ``serve`` refuses to start with: Microsoft 365 settings missing (every feature
    needs them: reminders on calendars and in Teams, meetings read from calendars, the bot),
    and a public URL Graph and Teams cannot call (https on a real host)."""
    problems = [
        f"{p} (serve needs it: {_features(settings)} talk to Microsoft 365; to try DealBridge "
        "without a tenant, run `dealbridge demo`)"
        for p in settings.microsoft365_problems()
    ]
    if settings.public_url and _real_microsoft(settings):
        parts = urlsplit(settings.public_url)
        host = parts.hostname or ""
        local = host == "localhost" or host.startswith("127.") or "." not in host
        if parts.scheme != "https" or local:
            problems.append(
                f"{ENV_PREFIX}PUBLIC_URL: must be https on a host Microsoft can reach, such as "
                f"https://dealbridge.contoso.com (got {settings.public_url}); Graph and Teams "
                "only call public https URLs"
            )
    return problems


_TYPO_CUTOFF = 0.85
TOOLING_PREFIXES = ("DEALBRIDGE_TEST_", "DEALBRIDGE_BENCH_", "DEALBRIDGE_CHAOS")
"""Variables of the test suite, the benchmarks and `make chaos`, never settings."""


def environment_problems(environ: Mapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """``DEALBRIDGE_*`` variables that are no setting: (refused, warned).

    A name close to a real setting (a typo) is refused: the admin meant that setting and the
    service would otherwise run, silently, with the default instead of their value. Any other
    unknown name is only warned about. The project's own tooling (the test suite's, the
    benchmarks' and the chaos run's variables, :data:`TOOLING_PREFIXES`) is passed over."""
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    refused, warned = [], []
    for name in sorted(environ if environ is not None else os.environ):
        if not name.startswith(ENV_PREFIX) or name in known or name.startswith(TOOLING_PREFIXES):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=_TYPO_CUTOFF)
        if close:
            refused.append(f"{name}: not a setting; did you mean {close[0]}? Rename it")
        else:
            warned.append(f"{name}: not a DealBridge setting; ignored")
    return refused, warned
