"""The console's pages: setup, sync health, deliveries, reps, meetings, funnel, privacy, audit.

Views read the store and call the same functions as the API, the bot and the CLI; each action
writes an audit row in the action's own transaction. Bad input is shown next to its field and
answered 422 (never a 500); every stored string reaches the page through Jinja's escaping.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Response, current_app, g, render_template, request, url_for
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from connector import metrics
from connector.admin.console import audit
from connector.admin.console.signing import console, redirect
from connector.admin.doctor import run_checks
from connector.admin.teams_package import package_config
from connector.api.schemas import Email
from connector.deals import analytics
from connector.deals.models import FunnelQuery
from connector.deals.reps import claim_installation, set_active
from connector.meetings.notifications import ensure_subscriptions, schedule_sync
from connector.meetings.privacy import PrivacyPolicy, SkipReason
from connector.meetings.sync import plan_mailbox
from connector.outbox import drop_dead, retry_dead
from connector.settings import Settings, current_settings
from connector.store.db import get_store
from connector.store.models import (
    Deal,
    Interaction,
    Mailbox,
    OutboxItem,
    Pipeline,
    PrivacyExclusion,
    Rep,
    RepPreference,
    utcnow,
)
from connector.store.types import InteractionKind, InteractionStatus, OutboxStatus
from graph_sync.errors import GraphSyncError
from manifest import ManifestError, admin_consent_url, package_bytes

NAV = [
    ("console.setup", "Setup"),
    ("console.sync", "Sync health"),
    ("console.deliveries", "Deliveries"),
    ("console.reps", "Reps"),
    ("console.meetings", "Meetings"),
    ("console.funnel", "Funnel"),
    ("console.privacy", "Privacy"),
    ("console.audit_page", "Audit"),
]
_EMAIL: TypeAdapter[str] = TypeAdapter(Email)
_KINDS = {"address": "Addresses", "domain": "Domains", "category": "Outlook categories"}
_POLICY_FIELD = {
    "address": "excluded_addresses",
    "domain": "excluded_domains",
    "category": "excluded_categories",
}


def _page(template: str, title: str, status: int = 200, **context: Any) -> Response:
    messages = context.pop("messages", [])
    done = request.args.get("done")
    if done:
        messages = [{"kind": "ok", "text": done}, *messages]
    html = render_template(template, title=title, nav=NAV, messages=messages, **context)
    return Response(html, status=status, mimetype="text/html")


def _back(endpoint: str, done: str, **params: Any) -> Response:
    """After a POST, back to the page (a reload never repeats the action)."""
    return redirect(url_for(endpoint, done=done, **params), code=303)


def _actor() -> str:
    return str(g.admin.username)


@console.get("/")
def home() -> Response:
    return redirect(url_for("console.setup"))


# ---- setup ----------------------------------------------------------------------------------


def optional_features(settings: Settings) -> list[dict[str, Any]]:
    """Each optional feature and the settings it still misses (empty: on)."""

    def missing(*names: str) -> list[str]:
        return [f"DEALBRIDGE_{n.upper()}" for n in names if not getattr(settings, n)]

    teams = "teams" in settings.reminder_channels
    return [
        {
            "name": "Reminders and cards in Teams",
            "missing": missing("teams_app_id") if teams else ["DEALBRIDGE_REMINDER_CHANNELS"],
        },
        {"name": "Webhooks to the CRM", "missing": missing("webhook_url", "webhook_secret")},
        {"name": "Health card to admins in Teams", "missing": missing("admin_emails")},
        {"name": "Client secret expiry warning", "missing": missing("client_secret_expires_on")},
        {"name": "Interaction retention", "missing": missing("interaction_retention_days")},
    ]


@console.get("/setup")
def setup() -> Response:
    settings = current_settings()
    if settings.microsoft365_configured:
        checks = run_checks(current_app._get_current_object(), timeout=10.0)  # type: ignore[attr-defined]
    else:
        checks = []
    consent = None
    if settings.tenant_id and settings.client_id and settings.public_url:
        try:
            consent = admin_consent_url(
                settings.login_base_url,
                settings.tenant_id,
                settings.client_id,
                f"{settings.public_url}/admin/consented",
                secrets.token_urlsafe(16),
            )
        except ValueError:
            consent = None
    return _page(
        "console/setup.html",
        "Setup",
        checks=checks,
        problems=settings.microsoft365_problems(),
        consent=consent,
        features=optional_features(settings),
        checked_at=utcnow(),
    )


@console.get("/setup/teams-package.zip")
def teams_package() -> Response:
    try:
        data = package_bytes(package_config(current_settings()))
    except (ManifestError, ValidationError) as exc:
        return _page(
            "console/setup.html",
            "Setup",
            status=422,
            checks=[],
            problems=[],
            consent=None,
            features=optional_features(current_settings()),
            checked_at=utcnow(),
            messages=[{"kind": "bad", "text": f"The Teams package cannot be built: {exc}"}],
        )
    return Response(
        data,
        mimetype="application/zip",
        headers={"Content-Disposition": 'attachment; filename="dealbridge-teams.zip"'},
    )


# ---- sync health ----------------------------------------------------------------------------


def _failing(mailbox: Mailbox) -> bool:
    return mailbox.failures > 0 or bool(mailbox.last_error)


@console.get("/sync")
def sync() -> Response:
    failing_only = request.args.get("failing") == "1"
    with get_store(current_app).sessions() as session:
        mailboxes = list(session.scalars(select(Mailbox).order_by(Mailbox.rep_email)))
        session.expunge_all()
    shown = [m for m in mailboxes if _failing(m)] if failing_only else mailboxes
    return _page(
        "console/sync.html",
        "Sync health",
        mailboxes=shown,
        total=len(mailboxes),
        failing=sum(_failing(m) for m in mailboxes),
        failing_only=failing_only,
        throttled=metrics.throttled_recently(3600.0),
        now=utcnow(),
    )


def _mailbox_or_none(session: Session, rep: str) -> Mailbox | None:
    return session.scalar(select(Mailbox).where(Mailbox.rep_email == rep))


@console.post("/sync/sync-now")
def sync_now() -> Response:
    rep = request.form.get("rep", "")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with get_store(app).session() as session:
        mailbox = _mailbox_or_none(session, rep)
        if mailbox is None:
            return _back("console.sync", f"No mailbox {rep}.")
        mailbox.needs_sync = True  # the next meetings job (or the task below) reads it
        mailbox.notified_at = utcnow()
        audit.record(session, _actor(), "mailbox.sync_now", rep)
    schedule_sync(app, rep, utcnow())
    return _back("console.sync", f"A round for {rep} is due now.")


@console.post("/sync/resubscribe")
def resubscribe() -> Response:
    rep = request.form.get("rep", "")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with get_store(app).session() as session:
        mailbox = _mailbox_or_none(session, rep)
        if mailbox is None:
            return _back("console.sync", f"No mailbox {rep}.")
        mailbox.subscription_expires_at = None  # renewed (or created again) at once below
    try:
        outcome = ensure_subscriptions(app, only=rep).get(rep, "not subscribed (inactive rep?)")
    except GraphSyncError as exc:
        outcome = f"failed: {exc}"
    with get_store(app).session() as session:
        audit.record(session, _actor(), "mailbox.resubscribe", rep, outcome)
    return _back("console.sync", f"Subscription for {rep}: {outcome}.")


# ---- deliveries -----------------------------------------------------------------------------


@console.get("/deliveries")
def deliveries() -> Response:
    with get_store(current_app).sessions() as session:
        counts = session.execute(
            select(OutboxItem.kind, OutboxItem.status, func.count())
            .group_by(OutboxItem.kind, OutboxItem.status)
            .order_by(OutboxItem.kind)
        ).all()
        oldest = session.scalar(
            select(OutboxItem)
            .where(OutboxItem.status == OutboxStatus.PENDING)
            .order_by(OutboxItem.next_attempt_at)
            .limit(1)
        )
        dead = list(
            session.scalars(
                select(OutboxItem)
                .where(OutboxItem.status == OutboxStatus.DEAD)
                .order_by(OutboxItem.updated_at.desc())
                .limit(200)
            )
        )
        session.expunge_all()
    table: dict[str, dict[str, int]] = {}
    for kind, status, count in counts:
        table.setdefault(kind, {})[str(status)] = count
    return _page(
        "console/deliveries.html",
        "Deliveries",
        table=table,
        statuses=[s.value for s in OutboxStatus],
        oldest=oldest,
        dead=dead,
        now=utcnow(),
    )


def _item_id() -> int | None:
    raw = request.form.get("item", "")
    return int(raw) if raw.isdigit() else None


@console.post("/deliveries/retry")
def retry() -> Response:
    item_id = _item_id()
    with get_store(current_app).session() as session:
        item = retry_dead(session, item_id, utcnow()) if item_id is not None else None
        if item is None:
            return _back("console.deliveries", "That delivery is no longer dead; nothing done.")
        audit.record(
            session, _actor(), "delivery.retry", f"{item.kind} #{item.id}", item.idempotency_key
        )
    return _back("console.deliveries", f"Delivery #{item_id} will be tried again now.")


@console.post("/deliveries/drop")
def drop() -> Response:
    item_id = _item_id()
    with get_store(current_app).session() as session:
        item = drop_dead(session, item_id) if item_id is not None else None
        if item is None:
            return _back("console.deliveries", "That delivery is no longer dead; nothing done.")
        detail = f"{item.idempotency_key}; last error: {item.last_error or '—'}"
        audit.record(session, _actor(), "delivery.drop", f"{item.kind} #{item.id}", detail)
    return _back("console.deliveries", f"Delivery #{item_id} was dropped.")


# ---- reps -----------------------------------------------------------------------------------


def _preference_columns() -> list[str]:
    return [
        c.name
        for c in RepPreference.__table__.columns
        if c.name not in {"id", "rep_email", "updated_at"}
    ]


def _reps_context(session: Session, query: str) -> dict[str, Any]:
    statement = select(Rep).order_by(Rep.email)
    if query:
        like = f"%{query.lower()}%"
        statement = statement.where(
            or_(func.lower(Rep.email).like(like), func.lower(Rep.display_name).like(like))
        )
    reps = list(session.scalars(statement.limit(500)))
    open_deals = dict(
        session.execute(
            select(Deal.owner_email, func.count())
            .where(Deal.status == "open")
            .group_by(Deal.owner_email)
        ).all()
    )
    columns = _preference_columns()
    preferences = {p.rep_email: p for p in session.scalars(select(RepPreference))}
    defaults = {}  # a rep with no preferences row has the columns' defaults (digest off)
    for column in RepPreference.__table__.columns:
        arg = getattr(column.default, "arg", None)
        defaults[column.name] = None if callable(arg) else arg
    return {
        "defaults": defaults,
        "reps": reps,
        "query": query,
        "open_deals": open_deals,
        "columns": columns,
        "preferences": {
            email: {c: getattr(p, c) for c in columns} for email, p in preferences.items()
        },
    }


@console.get("/reps")
def reps() -> Response:
    with get_store(current_app).sessions() as session:
        context = _reps_context(session, request.args.get("q", "").strip())
        return _page("console/reps.html", "Reps", **context, errors={}, plan=None)


@console.post("/reps/active")
def rep_active() -> Response:
    email, wanted = request.form.get("rep", ""), request.form.get("active") == "true"
    with get_store(current_app).session() as session:
        rep = session.scalar(select(Rep).where(Rep.email == email))
        if rep is None:
            return _back("console.reps", f"No rep {email}.")
        if rep.active != wanted:
            set_active(session, rep, wanted, utcnow())  # the API's effects, in this transaction
            action = "rep.activate" if wanted else "rep.deactivate"
            audit.record(session, _actor(), action, email)
    return _back("console.reps", f"{email} is {'active' if wanted else 'inactive'}.")


CSV_COLUMNS = ("email", "display_name", "entra_id", "manager", "time_zone")


def plan_rep_mapping(session: Session, text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Each CSV row as a change (create, update, unchanged) and the rows' problems, in words."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "email" not in header:
        return [], ["the first line must name the columns, with at least email"]
    unknown = sorted(set(header) - set(CSV_COLUMNS))
    if unknown:
        problems.append(f"unknown columns {', '.join(unknown)}; allowed: {', '.join(CSV_COLUMNS)}")
    seen: set[str] = set()
    for number, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        try:
            email = _EMAIL.validate_python(row.get("email", "")).lower()
        except ValidationError:
            problems.append(f"line {number}: {row.get('email', '')!r} is not an email address")
            continue
        if email in seen:
            problems.append(f"line {number}: {email} appears twice")
            continue
        seen.add(email)
        fields: dict[str, str] = {}
        for name in ("display_name", "entra_id", "time_zone"):
            if row.get(name):
                fields[name] = row[name]
        if row.get("manager"):
            try:
                fields["manager_email"] = _EMAIL.validate_python(row["manager"]).lower()
            except ValidationError:
                problems.append(f"line {number}: manager {row['manager']!r} is not an address")
                continue
        if "time_zone" in fields:
            try:
                ZoneInfo(fields["time_zone"])
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(
                    f"line {number}: {fields['time_zone']!r} is not an IANA time zone such as "
                    "Europe/Berlin"
                )
                continue
        rep = session.scalar(select(Rep).where(Rep.email == email))
        if rep is None:
            action = "create"
        else:
            changed = {k: v for k, v in fields.items() if getattr(rep, k) != v}
            action = "update" if changed else "unchanged"
            fields = changed
        rows.append({"line": number, "email": email, "action": action, "fields": fields})
    return rows, problems


@console.post("/reps/mapping")
def rep_mapping() -> Response:
    upload = request.files.get("file")
    text = request.form.get("text", "")
    if upload is not None and upload.filename:
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            text = "\0"
    apply = request.form.get("apply") == "1"
    with get_store(current_app).sessions() as session:  # committed only when applied
        errors: dict[str, str] = {}
        rows: list[dict[str, Any]] = []
        problems: list[str] = []
        if text == "\0":
            errors["file"] = "the file is not UTF-8 text (save it as CSV UTF-8)"
        elif not text.strip():
            errors["file"] = "choose a CSV file (email, display_name, entra_id, manager, time_zone)"
        else:
            rows, problems = plan_rep_mapping(session, text)
            if problems:
                errors["file"] = "; ".join(problems)
        if errors or not apply:
            context = _reps_context(session, "")
            return _page(
                "console/reps.html",
                "Reps",
                status=422 if errors else 200,
                **context,
                errors=errors,
                plan={"rows": rows, "text": text},
            )
        now = utcnow()
        for row in rows:
            if row["action"] == "unchanged":
                continue
            rep = session.scalar(select(Rep).where(Rep.email == row["email"]))
            if rep is None:
                rep = Rep(email=row["email"], display_name=row["email"].split("@")[0])
                session.add(rep)
            for name, value in row["fields"].items():
                setattr(rep, name, value)
            session.flush()
            claim_installation(session, rep)  # as PUT /reps does: a Teams install waiting for her
        changed = [r for r in rows if r["action"] != "unchanged"]
        audit.record(
            session,
            _actor(),
            "reps.mapping",
            f"{len(changed)} reps",
            ", ".join(f"{r['action']} {r['email']}" for r in changed),
            now=now,
        )
        session.commit()
    return _back("console.reps", f"Mapping applied: {len(changed)} reps created or updated.")


# ---- meetings -------------------------------------------------------------------------------

_MEETING_VIEWS = {
    "logged": ("Logged", [InteractionStatus.SCHEDULED, InteractionStatus.HELD]),
    "waiting": ("Waiting for a choice", [InteractionStatus.NEEDS_CHOICE]),
    "unmatched": ("No longer on a deal", [InteractionStatus.UNMATCHED]),
    "cancelled": ("Cancelled", [InteractionStatus.CANCELLED]),
}


def explain(interaction: Interaction) -> str:
    """Why the meeting is where it is, in words."""
    status = interaction.status
    if status == InteractionStatus.NEEDS_CHOICE:
        return "More than one deal fits its attendees: the rep was asked to choose in Teams."
    if status == InteractionStatus.UNMATCHED:
        return "It was on a deal, but no deal matches its attendees any more."
    if status == InteractionStatus.CANCELLED:
        return "The meeting was cancelled in Outlook."
    if interaction.match_rule == "contact":
        return f"Logged: {interaction.matched_address} is a contact of the deal."
    if interaction.match_rule == "domain":
        return f"Logged: {interaction.matched_address}'s domain is the deal's account domain."
    if interaction.created_by:
        return f"Placed on this deal by {interaction.created_by}."
    return "Logged on the deal."


@console.get("/meetings")
def meetings() -> Response:
    view = request.args.get("view", "logged")
    if view not in _MEETING_VIEWS:
        view = "logged"
    query = request.args.get("q", "").strip()
    statuses = _MEETING_VIEWS[view][1]
    with get_store(current_app).sessions() as session:
        statement = (
            select(Interaction, Deal)
            .outerjoin(Deal, Deal.id == Interaction.deal_id)
            .where(Interaction.kind == InteractionKind.MEETING, Interaction.status.in_(statuses))
            .order_by(Interaction.started_at.desc())
            .limit(200)
        )
        if query:
            like = f"%{query.lower()}%"
            statement = statement.where(
                or_(
                    func.lower(Interaction.subject).like(like),
                    func.lower(Interaction.matched_address).like(like),
                    func.lower(Deal.title).like(like),
                    func.lower(Deal.crm_id).like(like),
                )
            )
        rows = [{"meeting": i, "deal": d, "why": explain(i)} for i, d in session.execute(statement)]
        counts = dict(
            session.execute(
                select(Interaction.status, func.count())
                .where(Interaction.kind == InteractionKind.MEETING)
                .group_by(Interaction.status)
            ).all()
        )
        mailboxes = list(session.scalars(select(Mailbox.rep_email).order_by(Mailbox.rep_email)))
        session.expunge_all()
    view_counts = {
        key: sum(counts.get(s, 0) for s in wanted) for key, (_, wanted) in _MEETING_VIEWS.items()
    }
    return _page(
        "console/meetings.html",
        "Meetings",
        rows=rows,
        view=view,
        views=_MEETING_VIEWS,
        view_counts=view_counts,
        query=query,
        mailboxes=mailboxes,
        skipped=None,
        errors={},
    )


@console.get("/meetings/skipped")
def skipped() -> Response:
    """What the next round of a mailbox would skip, and why (reads Outlook; writes nothing)."""
    rep = request.args.get("rep", "")
    errors: dict[str, str] = {}
    items: list[dict[str, Any]] = []
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with get_store(app).sessions() as session:
        known = set(session.scalars(select(Mailbox.rep_email)))
        known |= set(session.scalars(select(Rep.email).where(Rep.active.is_(True))))
    if rep not in known:
        errors["rep"] = "choose a rep whose calendar DealBridge reads"
    else:
        try:
            plan = plan_mailbox(app, rep, full=True)
        except GraphSyncError as exc:
            errors["rep"] = f"Outlook could not be read: {exc}"
        else:
            for item in plan.items:
                if item.reason is None:
                    continue
                try:
                    why = SkipReason(item.reason).explanation
                except ValueError:
                    why = item.reason.replace("_", " ")
                items.append(
                    {"subject": item.subject, "start": item.start, "why": why, "note": item.note}
                )
    return _page(
        "console/meetings.html",
        "Meetings",
        status=422 if errors else 200,
        rows=[],
        view="skipped",
        views=_MEETING_VIEWS,
        view_counts={},
        query="",
        mailboxes=sorted(known),
        skipped={"rep": rep, "items": items},
        errors=errors,
    )


# ---- funnel ---------------------------------------------------------------------------------


def _field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for err in exc.errors():
        loc = str(err["loc"][0]) if err["loc"] else "form"
        errors.setdefault(loc.rstrip("_"), str(err["msg"]).removeprefix("Value error, "))
    return errors


def _day(value: str) -> str | None:
    return f"{value}T00:00:00Z" if value else None


def funnel_chart(stages: list[Any]) -> dict[str, Any]:
    """Bars of the deals that reached each stage, sized to the first (drawn as SVG)."""
    top = max([s.reached for s in stages] or [0]) or 1
    width, label, row = 520, 180, 34
    bars = []
    for index, stage in enumerate(stages):
        bars.append(
            {
                "y": index * row,
                "w": max(2, round(stage.reached / top * (width - label - 60))),
                "stage": stage,
            }
        )
    return {"bars": bars, "height": max(row, len(stages) * row), "width": width, "label": label}


@console.get("/funnel")
def funnel() -> Response:
    form = {
        k: request.args.get(k, "").strip()
        for k in ("pipeline", "owner", "lead_source", "product", "from", "to")
    }
    errors: dict[str, str] = {}
    result = None
    with get_store(current_app).sessions() as session:
        pipelines = list(session.scalars(select(Pipeline).order_by(Pipeline.id)))
        owners = sorted(o for o in session.scalars(select(Deal.owner_email).distinct()) if o)
        sources = sorted(s for s in session.scalars(select(Deal.lead_source).distinct()) if s)
        products = sorted(p for p in session.scalars(select(Deal.product).distinct()) if p)
        default = current_settings().default_pipeline
        if not form["pipeline"]:
            ids = [p.id for p in pipelines]
            form["pipeline"] = default if default in ids else (ids[0] if ids else "")
        given: dict[str, Any] = {k: v for k, v in form.items() if v and k not in ("from", "to")}
        for bound in ("from", "to"):
            if form[bound]:
                given[bound] = _day(form[bound])
        try:
            query = FunnelQuery.model_validate(given)
        except ValidationError as exc:
            errors = _field_errors(exc)
        else:
            pipeline = session.get(Pipeline, query.pipeline)
            if pipeline is None:
                errors["pipeline"] = f"no pipeline {query.pipeline!r}"
            elif query.from_ and query.to and query.to <= query.from_:
                errors["to"] = "must be after from"
            else:
                result = analytics.funnel(session, pipeline, query, utcnow())
        return _page(
            "console/funnel.html",
            "Funnel",
            status=422 if errors else 200,
            form=form,
            errors=errors,
            result=result,
            chart=funnel_chart(result.stages) if result else None,
            pipelines=pipelines,
            owners=owners,
            sources=sources,
            products=products,
        )


# ---- privacy --------------------------------------------------------------------------------


def validate_exclusion(kind: str, value: str) -> tuple[str | None, str | None]:
    """(the value as stored, None) or (None, what is wrong), by the privacy rules' own checks."""
    if kind not in _POLICY_FIELD:
        return None, "choose addresses, domains or categories"
    if not value.strip():
        return None, "write an address, a domain or a category"
    try:
        policy = PrivacyPolicy.model_validate({_POLICY_FIELD[kind]: [value]})
    except ValidationError as exc:
        return None, str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
    normalized: frozenset[str] = getattr(policy, _POLICY_FIELD[kind])
    if not normalized:
        return None, "write an address, a domain or a category"
    return next(iter(normalized)), None


def _privacy_page(
    status: int = 200, errors: Mapping[str, str] | None = None, **form: str
) -> Response:
    settings = current_settings()
    with get_store(current_app).sessions() as session:
        stored = list(
            session.scalars(
                select(PrivacyExclusion).order_by(PrivacyExclusion.kind, PrivacyExclusion.value)
            )
        )
        session.expunge_all()
    from_settings = {
        "address": settings.excluded_addresses,
        "domain": settings.excluded_domains,
        "category": settings.excluded_categories,
    }
    return _page(
        "console/privacy.html",
        "Privacy settings",
        status=status,
        stored=stored,
        from_settings=from_settings,
        kinds=_KINDS,
        errors=dict(errors or {}),
        form=form,
    )


@console.get("/privacy")
def privacy() -> Response:
    return _privacy_page()


@console.post("/privacy/exclusions")
def add_exclusion() -> Response:
    kind, value = request.form.get("kind", ""), request.form.get("value", "")
    normalized, problem = validate_exclusion(kind, value)
    if problem:
        field = "kind" if kind not in _POLICY_FIELD else "value"
        return _privacy_page(422, {field: problem}, kind=kind, value=value)
    assert normalized is not None
    with get_store(current_app).sessions() as session:
        exists = session.scalar(
            select(PrivacyExclusion).where(
                PrivacyExclusion.kind == kind, PrivacyExclusion.value == normalized
            )
        )
        if exists is not None:
            return _privacy_page(
                422, {"value": f"{normalized} is already excluded"}, kind=kind, value=value
            )
        session.add(PrivacyExclusion(kind=kind, value=normalized, created_by=_actor()))
        audit.record(session, _actor(), "exclusion.add", f"{kind} {normalized}")
        session.commit()
    return _back("console.privacy", f"Meetings with {normalized} are no longer logged.")


@console.post("/privacy/exclusions/remove")
def remove_exclusion() -> Response:
    raw = request.form.get("exclusion", "")
    with get_store(current_app).session() as session:
        row = session.get(PrivacyExclusion, int(raw)) if raw.isdigit() else None
        if row is None:
            return _back("console.privacy", "That exclusion was already removed.")
        target = f"{row.kind} {row.value}"
        session.delete(row)
        audit.record(session, _actor(), "exclusion.remove", target)
    return _back("console.privacy", f"Removed the exclusion {target}.")


# ---- audit ----------------------------------------------------------------------------------


@console.get("/audit")
def audit_page() -> Response:
    actor = request.args.get("actor", "").strip()
    action = request.args.get("action", "").strip()
    with get_store(current_app).sessions() as session:
        rows = audit.latest(session, actor=actor or None, action=action or None)
        session.expunge_all()
    return _page("console/audit.html", "Audit", rows=rows, actor=actor, action=action)
