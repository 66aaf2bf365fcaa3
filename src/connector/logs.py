"""Log lines an operator can read: one format for every command, secrets never written.

``configure`` is called once by the long-running commands (``serve``, ``worker``, ``demo``,
``sync``) from ``DEALBRIDGE_LOG_LEVEL`` and ``DEALBRIDGE_LOG_FORMAT`` (``text`` or ``json``, one
object a line for journald or a log shipper). Modules log with structured fields
(``log.info("sync round", extra={"mailbox": ..., "logged": 2})``): the text format appends
them as ``key=value``, the JSON format makes them keys of the object.

Every line passes :func:`redact` last, after the exception text is added: the configured
secrets (client secret, API key, webhook secret) and anything shaped like a bearer token, a
JWT or one of our API keys are replaced by ``***``, whichever library wrote the line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from typing import IO, Any, Literal

from sqlalchemy.engine import make_url

from connector import __version__
from connector.settings import Settings

LogFormat = Literal["text", "json"]
Role = Literal["web", "worker", "leader", "web+worker", "demo", "sync"]
MASK = "***"
_HANDLER_NAME = "dealbridge"
# The attributes every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),  # Authorization headers
    re.compile(r"()eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),  # JWTs
    re.compile(r"(dbk_[0-9a-f]{8}_)[A-Za-z0-9_-]+"),  # our API keys: the prefix stays
    re.compile(r"(?i)((?:client_secret|password|clientState)[\"']?\s*[=:]\s*[\"']?)[^\s&\"',]+"),
)


class Redactor:
    """The secrets to hide: exact values from the settings, and patterns of tokens."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: set[str] = {s for s in secrets if s and len(s) >= 6}

    def add(self, *secrets: str | None) -> None:
        self.secrets.update(s for s in secrets if s and len(s) >= 6)

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: f"{m.group(1)}{MASK}", text)
        return text


REDACT = Redactor()


def redact(text: str) -> str:
    """``text`` with every known secret and token-shaped string replaced by ``***``."""
    return REDACT(text)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a call passed with ``extra=``."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, then the structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            out.setdefault(key, _plain(value))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(out, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    """``2026-12-02T01:02:03.456Z INFO connector.meetings.sync: sync round mailbox=… logged=2``"""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.UTC)
        line = (
            f"{when:%Y-%m-%dT%H:%M:%S}.{when.microsecond // 1000:03d}Z {record.levelname} "
            f"{record.name}: {record.getMessage()}"
        )
        fields = fields_of(record)
        if fields:
            line += " " + " ".join(f"{k}={_text(v)}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def _text(value: Any) -> str:
    plain = _plain(value)
    if isinstance(plain, str):
        return json.dumps(plain) if (not plain or " " in plain or "=" in plain) else plain
    if isinstance(plain, float):
        return f"{plain:.3f}"
    return (
        json.dumps(plain, separators=(",", ":")) if isinstance(plain, dict | list) else str(plain)
    )


def level_and_format(settings: Settings | None = None) -> tuple[str, LogFormat]:
    """The configured level and format (settings first, then the environment)."""
    level = settings.log_level if settings else os.environ.get("DEALBRIDGE_LOG_LEVEL", "INFO")
    fmt = settings.log_format if settings else os.environ.get("DEALBRIDGE_LOG_FORMAT", "text")
    return level.upper(), "json" if fmt.strip().lower() == "json" else "text"


def remember_secrets(settings: Settings) -> None:
    """Mask this app's secrets in every line (the client secret is also the bot's password)."""
    secrets = (settings.client_secret, settings.api_key, settings.webhook_secret)
    REDACT.add(*(s.get_secret_value() for s in secrets if s is not None))


def configure(settings: Settings | None = None, *, stream: IO[str] | None = None) -> None:
    """Install our one handler on the root logger (again: replaced, never doubled)."""
    level, fmt = level_and_format(settings)
    if settings is not None:
        remember_secrets(settings)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Their lines are wire dumps (hpack frames; SQLAlchemy logs every statement at INFO).
    for noisy in ("hpack", "httpcore", "sqlalchemy.engine", "sqlalchemy.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def masked_url(url: str) -> str:
    """A database URL with its password replaced by ``***``."""
    try:
        parsed = make_url(url)
    except Exception:  # not parseable: show the scheme only, never the rest
        return url.split("://", 1)[0] + "://" + MASK
    return parsed.render_as_string(hide_password=True)  # SQLAlchemy writes *** for it


def start_line(log: logging.Logger, settings: Settings, role: Role, **fields: Any) -> None:
    """The first line of a process: what it is and where it points (no secret)."""
    log.info(
        "dealbridge %s starting as %s",
        __version__,
        role,
        extra={
            "version": __version__,
            "role": role,
            "database": masked_url(settings.effective_database_url),
            "public_url": settings.public_url,
            **fields,
        },
    )
