"""`dealbridge doctor`: every way an installation can be broken, checked from the outside in,
each with what to do about it.

`run_checks(app)` returns one `CheckResult` per line, in the order an admin fixes things:
settings; a token from Entra; each Graph permission, by one harmless call; the bot token; the
public URL; Graph's validation handshake on the notification URL; the rep mailboxes'
subscriptions; the client secret's expiry; the database migrations. A check that cannot run
because an earlier one failed says so as a warning instead of failing again.

The doctor asks Entra for fresh tokens (its own MSAL app, not the running app's cache), so a
wrong or expired secret shows here even while a cached token still works.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import quote

import jwt
import requests
from flask import Flask
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from connector.admin.teams_package import package_config
from connector.api.schemas import Health
from connector.microsoft365 import NotConfigured, credentials
from connector.settings import ENV_PREFIX, SETTINGS_EXTENSION, Settings
from connector.store.db import Store, get_store
from connector.store.models import Mailbox, Rep, utcnow
from graph_sync.auth import BOT_SCOPE, GRAPH_SCOPE, TokenProvider
from graph_sync.calendar import CALENDARS_WRITE, first_event_id
from graph_sync.client import GraphClient
from graph_sync.directory import (
    MAILBOX_SETTINGS_READ,
    ORGANIZATION_READ,
    USER_READ,
    first_user_id,
    get_mailbox_settings,
    get_user,
    get_verified_domains,
)
from graph_sync.errors import EntraError, Forbidden, GraphSyncError, NotFound
from graph_sync.online_meetings import (
    ARTIFACTS_PERMISSION,
    MEETINGS_PERMISSION,
    find_online_meeting,
)
from graph_sync.teams import ACTIVITY_PERMISSION, INSTALL_PERMISSION, count_installed_apps
from manifest import check_config

log = logging.getLogger(__name__)

CheckStatus = Literal["ok", "warn", "fail"]
#: How early the doctor warns about the client secret's expiry.
SECRET_WARNING_DAYS: Final = 30
_MARKS: Final = {"ok": "✓", "warn": "!", "fail": "✗"}
_CONSENT = (
    "then grant admin consent: open the link `dealbridge admin consent-url` prints, as a "
    "Global Administrator or Privileged Role Administrator"
)


class CheckResult(BaseModel):
    """One line of the doctor's report."""

    model_config = ConfigDict(frozen=True)

    name: str
    """What was checked, e.g. "Graph permission MailboxSettings.Read"."""
    status: CheckStatus
    """`ok`; `warn` (works for now, or could not be checked); `fail` (DealBridge is broken)."""
    detail: str
    """What the doctor found."""
    fix: str | None = None
    """What to do, for a warning or a failure."""

    @property
    def mark(self) -> str:
        """✓, ! or ✗."""
        return _MARKS[self.status]

    def lines(self) -> list[str]:
        """The result as the CLI prints it: the finding, then the fix indented."""
        out = [f"{self.mark} {self.name}: {self.detail}"]
        if self.fix and self.status != "ok":
            first, *rest = self.fix.splitlines()
            out.append(f"    fix: {first}")
            out.extend(f"         {line}" for line in rest)
        return out


def _ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name=name, status="ok", detail=detail)


def _warn(name: str, detail: str, fix: str | None = None) -> CheckResult:
    return CheckResult(name=name, status="warn", detail=detail, fix=fix)


def _fail(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name=name, status="fail", detail=detail, fix=fix)


@dataclass
class _Findings:
    """What earlier checks learned that later ones need."""

    tokens: TokenProvider | None = None
    token_failed: bool = False
    roles: frozenset[str] | None = None
    client: GraphClient | None = None
    user: str | None = None
    rep: str | None = None
    public_url_answers: bool = False
    migrations_current: bool | None = None


def run_checks(
    app: Flask,
    *,
    now: dt.datetime | None = None,
    http: requests.Session | None = None,
    timeout: float = 15.0,
) -> list[CheckResult]:
    """Every check, in order; nothing is changed anywhere (only reads and Graph's handshake)."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    now = now or utcnow()
    session = http or requests.Session()
    found = _Findings()
    store = get_store(app)
    found.migrations_current = _migrations_current(store)
    checks: list[tuple[str, Callable[[], CheckResult | list[CheckResult]]]] = [
        ("Settings", lambda: _settings(settings)),
        ("Token from Entra", lambda: _token(settings, found, timeout)),
        ("Graph permissions", lambda: _permissions(settings, store, found)),
        ("Teams attendance", lambda: _attendance(settings, found)),
        ("Bot token", lambda: _bot_token(settings, found)),
        ("Public URL", lambda: _public_url(settings, session, found, timeout)),
        ("Notification URL", lambda: _handshake(settings, session, found, timeout)),
        ("Subscriptions", lambda: _subscriptions(store, found, now)),
        ("Client secret expiry", lambda: _secret_expiry(settings, now)),
        ("Database migrations", lambda: _migrations(store)),
    ]
    results: list[CheckResult] = []
    try:
        for name, check in checks:
            try:
                outcome = check()
            except Exception as exc:  # one check's surprise must not hide the other lines
                log.exception("doctor: the %s check failed unexpectedly", name)
                outcome = _fail(
                    name,
                    f"doctor could not check this ({type(exc).__name__})",
                    "Run doctor again; if it stays, report it with DealBridge's log.",
                )
            results.extend(outcome if isinstance(outcome, list) else [outcome])
    finally:
        if found.client is not None:
            found.client.close()
        if http is None:
            session.close()
    return results


# ---- settings and Entra ---------------------------------------------------------------------


def _settings(settings: Settings) -> CheckResult:
    name = "Settings"
    problems = settings.microsoft365_problems()
    named = {problem.split(":", 1)[0] for problem in problems}
    problems += [
        p.message for p in check_config(package_config(settings)) if p.setting not in named
    ]
    if problems:
        return _fail(
            name,
            f"{len(problems)} to fix before DealBridge can reach Microsoft 365 and Teams",
            "\n".join(problems),
        )
    return _ok(name, "complete for Microsoft 365 and the Teams app package")


def _entra_fix(error: EntraError) -> str:
    advice = error.advice
    if error.aadsts in (7000215, 7000222) and f"{ENV_PREFIX}CLIENT_SECRET" not in advice:
        advice += (
            " If you no longer have it, create a new client secret in Entra → App registrations → "
            "DealBridge → "
            f"Certificates & secrets, and set {ENV_PREFIX}CLIENT_SECRET to its Value."
        )
    return advice


def _entra_detail(error: EntraError, what: str) -> str:
    code = f", AADSTS{error.aadsts}" if error.aadsts else ""
    return f"Entra refused a token for {what} ({error.code}{code})"


def _roles_of(token: str) -> frozenset[str] | None:
    """The application permissions in an app token's `roles` claim (our own token: no need to
    verify its signature); None when the token is not a readable JWT."""

    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    roles = claims.get("roles", [])
    return frozenset(str(r) for r in roles) if isinstance(roles, list) else None


def _token(settings: Settings, found: _Findings, timeout: float) -> CheckResult:
    name = "Token from Entra"
    try:
        creds = credentials(settings)
    except NotConfigured as exc:
        found.token_failed = True
        return _warn(name, "not checked: the settings above are incomplete", exc.detail)
    tokens = TokenProvider(creds, timeout=timeout)
    try:
        token = tokens.token(GRAPH_SCOPE)
    except EntraError as exc:
        found.token_failed = True
        return _fail(name, _entra_detail(exc, "Microsoft Graph"), _entra_fix(exc))
    except OSError as exc:
        found.token_failed = True
        return _fail(
            name,
            f"the certificate's private key cannot be read ({type(exc).__name__})",
            f"Check {ENV_PREFIX}CERTIFICATE_PATH names a readable PEM file.",
        )
    found.tokens = tokens
    found.roles = _roles_of(token)
    found.client = GraphClient(creds, settings.graph_base_url, tokens=tokens)
    if found.roles is not None and not found.roles:
        return _ok(name, "Entra issued a token, but with no application permission consented")
    granted = ", ".join(sorted(found.roles or ())) or "unknown"
    return _ok(name, f"Microsoft Graph token for app {settings.client_id}; granted: {granted}")


# ---- Graph permissions ----------------------------------------------------------------------


def _first_rep(store: Store) -> tuple[str, str] | None:
    """(rep email, the Graph user to call) of the first active rep, if any."""
    try:
        with store.sessions() as session:
            rep = session.scalars(
                select(Rep).where(Rep.active.is_(True)).order_by(Rep.email).limit(1)
            ).first()
    except SQLAlchemyError:
        log.exception("doctor: reading the reps failed")
        return None
    return (rep.email, rep.entra_id or rep.email) if rep else None


class _NotGranted(Exception):
    """A call worked, but the token lacks the permission DealBridge needs beyond it."""


def _grant_fix(permission: str, error: Forbidden | None) -> str:
    fix = (
        f"In Entra → App registrations → DealBridge → API permissions, add the Microsoft Graph "
        f"application permission {permission}, {_CONSENT}. A grant can take a few minutes to "
        "reach Graph."
    )
    if error is not None and error.code == "ErrorAccessDenied":
        fix += (
            "\nAlready granted? An Exchange application access policy may exclude this "
            "mailbox: include the reps' mailboxes in the policy's group."
        )
    return fix


def _permission_check(
    permission: str,
    what: str,
    found: _Findings,
    call: Callable[[GraphClient, str, str], str],
    *,
    needs_user: bool = True,
) -> CheckResult:
    name = f"Graph permission {permission}"
    if found.client is None:
        return _warn(name, "not checked: no token from Entra (see above)")
    if needs_user and found.user is None:
        return _warn(
            name,
            "not checked: no rep mapped yet and no user found in the tenant",
            "Map a rep: PUT /api/v1/reps/{email} (with entra_id), then run doctor again.",
        )
    target = found.user or ""
    try:
        detail = call(found.client, target, found.rep or target)
    except Forbidden as exc:
        return _fail(name, f"Graph refused to {what} (403 {exc.code})", _grant_fix(permission, exc))
    except _NotGranted as exc:
        return _fail(name, str(exc), _grant_fix(permission, None))
    except NotFound:
        return _fail(
            name,
            f"Graph has no user {target!r} to {what}",
            f"Map the rep {found.rep or target} to their Entra user: PUT /api/v1/reps/"
            f"{found.rep or '{email}'} with entra_id (their object id) or a UPN that exists.",
        )
    except GraphSyncError as exc:
        return _fail(
            name,
            f"Graph failed to {what}: {exc}",
            "Run doctor again; if it stays, check Microsoft 365's service health and the logs.",
        )
    return _ok(name, detail)


def _read_user(client: GraphClient, user: str, who: str) -> str:
    found = get_user(client, user)
    return f"read the user {found.user_principal_name}"


def _read_mailbox_settings(client: GraphClient, user: str, who: str) -> str:
    mailbox = get_mailbox_settings(client, user)
    return f"read {who}'s mailbox settings (time zone {mailbox.time_zone})"


def _read_domains(client: GraphClient, user: str, who: str) -> str:
    domains = get_verified_domains(client)
    return f"read the organization: verified domains {', '.join(domains) or 'none'}"


def _read_installed_apps(client: GraphClient, user: str, who: str) -> str:
    count = count_installed_apps(client, user)
    return f"listed {who}'s installed Teams apps ({count})"


def _calendar_check(found: _Findings) -> Callable[[GraphClient, str, str], str]:
    def read_one_event(client: GraphClient, user: str, who: str) -> str:
        first_event_id(client, user)
        if found.roles is not None and CALENDARS_WRITE not in found.roles:
            # Reading worked through Calendars.Read; reminder events need write access.
            raise _NotGranted(
                f"listing an event worked, but the token does not grant {CALENDARS_WRITE}: "
                "reminder events cannot be written"
            )
        return f"listed one event of {who}'s calendar"

    return read_one_event


def _permissions(settings: Settings, store: Store, found: _Findings) -> list[CheckResult]:
    rep = _first_rep(store)
    if rep is not None:
        found.rep, found.user = rep
    elif found.client is not None:
        try:
            found.user = first_user_id(found.client)
        except GraphSyncError:
            found.user = None  # the User.Read.All line below reports why
    results = [
        _permission_check(USER_READ, "read one rep's user", found, _read_user),
        _permission_check(
            MAILBOX_SETTINGS_READ, "read one rep's mailbox settings", found, _read_mailbox_settings
        ),
        _permission_check(
            CALENDARS_WRITE, "list one event of a rep's calendar", found, _calendar_check(found)
        ),
        _permission_check(
            ORGANIZATION_READ, "read the organization", found, _read_domains, needs_user=False
        ),
        _permission_check(
            INSTALL_PERMISSION, "list a rep's installed Teams apps", found, _read_installed_apps
        ),
    ]
    results.append(_activity_note(found))
    return results


def _activity_note(found: _Findings) -> CheckResult:
    name = f"Graph permission {ACTIVITY_PERMISSION}"
    unchecked = "not exercised: a test notice would land in a rep's activity feed"
    if found.client is None:
        return _warn(name, "not checked: no token from Entra (see above)")
    if found.roles is None:
        return _ok(name, unchecked)
    if ACTIVITY_PERMISSION in found.roles:
        return _ok(name, f"granted; {unchecked}")
    return _ok(
        name,
        "not granted tenant-wide: activity-feed notices rely on the Teams app's "
        "resource-specific permission TeamsActivity.Send.User, granted as reps install it; "
        f"{unchecked}",
    )


# ---- Teams attendance (optional) -------------------------------------------------------------

_PROBE_JOIN_URL = "https://teams.microsoft.com/l/meetup-join/dealbridge-doctor-probe"
_ATTENDANCE_FIX = (
    f"Optional: grant {MEETINGS_PERMISSION} and {ARTIFACTS_PERMISSION} (application) with admin "
    "consent, and allow the app with a Teams application access policy "
    "(New-CsApplicationAccessPolicy, Grant-CsApplicationAccessPolicy): admin guide, step 2. "
    "Until then meetings are logged as held (not verified)."
)


def _attendance(settings: Settings, found: _Findings) -> CheckResult:
    """Whether Teams attendance works: the two permissions, then the access policy (a lookup
    of a join link no meeting has, under one rep: 200 with nothing, or 403 without the policy)."""
    name = "Teams attendance"
    if not settings.attendance_enabled:
        return _ok(name, f"off ({ENV_PREFIX}ATTENDANCE_ENABLED=false)")
    if found.client is None:
        return _warn(name, "not checked: no token from Entra (see above)")
    missing = [
        p for p in (MEETINGS_PERMISSION, ARTIFACTS_PERMISSION) if p not in (found.roles or ())
    ]
    if found.roles is not None and missing:
        return _warn(name, f"not available: {', '.join(missing)} not granted", fix=_ATTENDANCE_FIX)
    if found.user is None:
        return _warn(name, "not checked: no rep to look up meetings for")
    try:
        find_online_meeting(found.client, found.user, _PROBE_JOIN_URL)
    except Forbidden as e:
        return _warn(
            name,
            f"not available for {found.rep or found.user}: Graph refused ({e}); the Teams "
            "application access policy is probably missing",
            fix=_ATTENDANCE_FIX,
        )
    except GraphSyncError as e:
        return _warn(name, f"not checked: {e}")
    return _ok(
        name,
        f"works: held and no-show meetings are told apart (checked for {found.rep or found.user})",
    )


# ---- the bot and the public URLs ------------------------------------------------------------


def _bot_token(settings: Settings, found: _Findings) -> CheckResult:
    name = "Bot token"
    if found.tokens is None:
        return _warn(name, "not checked: the app's token failed above (same credentials)")
    if settings.effective_bot_id != settings.client_id:
        return _warn(
            name,
            f"not checked: {ENV_PREFIX}BOT_ID differs from {ENV_PREFIX}CLIENT_ID and doctor has "
            "no credentials for that app",
            f"Use the Entra app as the Azure Bot's Microsoft App ID (unset {ENV_PREFIX}BOT_ID).",
        )
    try:
        found.tokens.token(BOT_SCOPE)
    except EntraError as exc:
        return _fail(
            name,
            _entra_detail(exc, "the Bot Framework"),
            f"{_entra_fix(exc)}\nThe Azure Bot must be single-tenant in this tenant with "
            f"Microsoft App ID {settings.client_id}.",
        )
    return _ok(name, f"token for the Bot Framework ({BOT_SCOPE.removesuffix('/.default')})")


def _public_url(
    settings: Settings, http: requests.Session, found: _Findings, timeout: float
) -> CheckResult:
    name = "Public URL"
    if not settings.public_url:
        return _warn(name, "not checked: DEALBRIDGE_PUBLIC_URL is not set")
    url = f"{settings.public_url}/healthz"
    reach = (
        "Graph and Teams must reach this URL from the internet: check DNS, the TLS certificate, "
        "the reverse proxy, and that `dealbridge serve` runs behind it."
    )
    try:
        answer = http.get(url, timeout=timeout)
    except requests.exceptions.SSLError:
        return _fail(
            name,
            f"{url}: the TLS certificate is not trusted",
            "Serve a certificate from a public certificate authority: Graph and Teams refuse "
            "self-signed ones.",
        )
    except requests.RequestException as exc:
        return _fail(name, f"{url} did not answer ({type(exc).__name__})", reach)
    try:
        health = Health.model_validate(answer.json())
    except (ValueError, ValidationError):
        return _fail(
            name,
            f"{url} answered HTTP {answer.status_code}, but not as DealBridge",
            "The reverse proxy must pass every path to DealBridge (`dealbridge serve`).",
        )
    found.public_url_answers = True
    state = "" if health.status == "ok" else " (degraded: see the lines below)"
    return _ok(name, f"{url} answers: {health.status}, version {health.version}{state}")


def _handshake(
    settings: Settings, http: requests.Session, found: _Findings, timeout: float
) -> CheckResult:
    name = "Notification URL"
    if not found.public_url_answers:
        return _warn(name, "not checked: the public URL does not answer (see above)")
    endpoint = f"{settings.public_url}/api/graph/notifications"
    # Graph's validation tokens are sentences: the reply must be the decoded token.
    token = f"Validation: DealBridge doctor {secrets.token_urlsafe(12)}"
    fix = (
        f"Graph POSTs {endpoint}?validationToken=… and needs 200 text/plain with the token back "
        "within 10 s. The reverse proxy must pass POST requests with their query string on "
        "/api/graph/notifications and /api/graph/lifecycle to DealBridge."
    )
    try:
        answer = http.post(f"{endpoint}?validationToken={quote(token)}", timeout=timeout)
    except requests.RequestException as exc:
        return _fail(name, f"{endpoint} did not answer ({type(exc).__name__})", fix)
    kind = answer.headers.get("Content-Type", "").split(";")[0]
    if answer.status_code == 200 and kind == "text/plain" and answer.text == token:
        return _ok(name, f"{endpoint} answers Graph's validation handshake")
    echoed = "echoed the token" if answer.text == token else "did not echo the token"
    return _fail(
        name, f"{endpoint} answered HTTP {answer.status_code} {kind or '-'}, {echoed}", fix
    )


# ---- state kept in the database -------------------------------------------------------------


def _subscriptions(store: Store, found: _Findings, now: dt.datetime) -> CheckResult:
    name = "Subscriptions"
    if not found.migrations_current:
        return _warn(name, "not checked: the database is not at the newest migration (see below)")
    try:
        with store.sessions() as session:
            reps = list(session.scalars(select(Rep.email).where(Rep.active.is_(True))))
            mailboxes = {
                m.rep_email: m
                for m in session.scalars(select(Mailbox).where(Mailbox.rep_email.in_(reps)))
            }
    except SQLAlchemyError as exc:
        return _fail(name, f"the database cannot be read ({type(exc).__name__})", _DB_FIX)
    if not reps:
        return _warn(
            name,
            "no active reps yet, so no mailbox to subscribe to",
            "Map reps: PUT /api/v1/reps/{email} (with entra_id) for each sales rep.",
        )
    dead: list[str] = []
    alive: list[dt.datetime] = []
    for email in sorted(reps):
        mailbox = mailboxes.get(email)
        expires = mailbox.subscription_expires_at if mailbox else None
        if mailbox and mailbox.subscription_id and expires and expires > now:
            alive.append(expires)
            continue
        reason = "no subscription yet"
        if mailbox and mailbox.subscription_id and expires:
            reason = f"expired {expires:%Y-%m-%d %H:%M} UTC"
        if mailbox and mailbox.last_error:
            reason += f"; last error: {mailbox.last_error.splitlines()[0][:200]}"
        dead.append(f"{email} ({reason})")
    if dead:
        shown = "; ".join(dead[:5]) + (f"; and {len(dead) - 5} more" if len(dead) > 5 else "")
        return _fail(
            name,
            f"{len(dead)} of {len(reps)} reps' mailboxes have no live subscription: {shown}",
            "DealBridge creates and renews subscriptions every 10 minutes while `dealbridge "
            "serve` runs: check it runs and the notification URL line passes. Meetings still "
            "arrive through the periodic sync meanwhile, only later.",
        )
    mailboxes_word = "rep's mailbox" if len(reps) == 1 else "reps' mailboxes"
    return _ok(
        name,
        f"{len(reps)} {mailboxes_word} subscribed; the soonest expires "
        f"{min(alive):%Y-%m-%d %H:%M} UTC (renewed a day ahead)",
    )


def _secret_expiry(settings: Settings, now: dt.datetime) -> CheckResult:
    name = "Client secret expiry"
    if settings.client_secret is None:
        if settings.certificate_path is not None:
            return _ok(name, "a certificate is used, no client secret")
        return _warn(name, "not checked: no client secret is set")
    where = (
        "Entra → App registrations → DealBridge → Certificates & secrets → Client secrets, "
        "the Expires column"
    )
    renew = (
        "Create a new client secret there (Certificates & secrets → New client secret), set "
        f"{ENV_PREFIX}CLIENT_SECRET to its Value and {ENV_PREFIX}CLIENT_SECRET_EXPIRES_ON to its "
        "expiry date, restart DealBridge, then delete the old secret."
    )
    expires = settings.client_secret_expires_on
    if expires is None:
        return _warn(
            name,
            f"unknown: {ENV_PREFIX}CLIENT_SECRET_EXPIRES_ON is not set",
            f"Copy the date from {where} into {ENV_PREFIX}CLIENT_SECRET_EXPIRES_ON (YYYY-MM-DD), "
            f"so doctor warns {SECRET_WARNING_DAYS} days ahead.",
        )
    days = (expires - now.date()).days
    if days < 0:
        return _fail(name, f"expired on {expires.isoformat()}", renew)
    if days <= SECRET_WARNING_DAYS:
        return _warn(name, f"expires on {expires.isoformat()}, in {days} days", renew)
    return _ok(name, f"expires on {expires.isoformat()}, in {days} days")


_DB_FIX = f"Check {ENV_PREFIX}DATABASE_URL and that the database server runs."


def _migrations_current(store: Store) -> bool | None:
    try:
        return store.is_current()
    except SQLAlchemyError:
        return None


def _migrations(store: Store) -> CheckResult:
    name = "Database migrations"
    where = f"the database {store.display_url}"  # which one, the password masked
    from alembic.script import ScriptDirectory

    try:
        current, head = store.current_revision(), store.head_revision()
    except SQLAlchemyError as exc:
        return _fail(name, f"{where} cannot be reached ({type(exc).__name__})", _DB_FIX)
    if current == head:
        return _ok(name, f"{where} is at the newest revision, {head}")
    upgrade = "Back up the database, then run `dealbridge db upgrade`."
    if current is None:
        return _fail(name, f"{where} has no DealBridge tables yet", upgrade)
    known = {
        r.revision for r in ScriptDirectory.from_config(store.alembic_config()).walk_revisions()
    }
    if current in known:
        return _fail(name, f"{where} is at revision {current}; the newest is {head}", upgrade)
    return _fail(
        name,
        f"{where} is at revision {current}, which this DealBridge does not know "
        f"(its newest is {head})",
        "Run the DealBridge version that migrated this database, or a newer one.",
    )
