"""The ``dealbridge`` command. Heavy imports stay inside commands so ``--help`` is instant."""

from __future__ import annotations

import errno
import logging
import re
import secrets
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from connector import __version__
from connector.paths import StartupProblem
from graph_sync.errors import Forbidden, GraphError, GraphSyncError

if TYPE_CHECKING:
    from flask import Flask

    from connector.settings import Settings


class SettingsProblem(click.ClickException):
    """Settings or options that cannot work: one line each naming it and the fix; exit 2."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))

    def show(self, file: Any = None) -> None:
        for problem in self.problems:
            click.echo(f"Error: {problem}", err=True)


_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def _settings(**overrides: Any) -> Settings:
    """The settings, or every problem with them (a misspelt variable among them)."""
    from connector.settings import SettingsError, environment_problems, load_settings

    refused, warned = environment_problems()
    for warning in warned:
        click.echo(f"Warning: {warning}", err=True)
    try:
        settings = load_settings(overrides or None)
    except SettingsError as exc:
        raise SettingsProblem(refused + exc.problems) from exc
    if refused:
        raise SettingsProblem(refused)
    return settings


def _app(*, creates: bool = False, needs_schema: bool = True, **overrides: Any) -> Flask:
    """The app of a command that uses the store. It names the database it uses (stderr,
    password masked) and never creates one unless ``creates``: a command run in the wrong
    folder says so instead of filling a new ./instance/ there."""
    # why: create_app pulls Flask, SQLAlchemy and msgraph-sdk: --help 0.08 s -> 3.1 s
    from sqlalchemy.exc import SQLAlchemyError

    from connector.app import create_app
    from connector.settings import ENV_PREFIX, database_problems, shown_database
    from connector.store.db import NewerDatabase, get_store

    settings = _settings(**overrides)
    problems = database_problems(settings, creates=creates)
    if problems:
        raise SettingsProblem(problems)
    shown = shown_database(settings)
    click.echo(f"Database: {shown}", err=True)
    name = f"{ENV_PREFIX}DATABASE_URL"
    try:
        app = create_app(settings=settings)
        revision = get_store(app).current_revision() if needs_schema else "-"
        if needs_schema:
            get_store(app).refuse_newer()
    except NewerDatabase as exc:
        raise SettingsProblem([f"{name}: {exc}"]) from exc
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise SettingsProblem([f"{name}: cannot open {shown}: {reason}"]) from exc
    if revision is None:
        raise SettingsProblem(
            [f"{name}: the database {shown} is empty; run `dealbridge db upgrade`"]
        )
    return app


def _check_port(option: str, port: int, host: str = "127.0.0.1") -> None:
    """Refuse a port that is no port, or that something already listens on, before anything
    is started or deleted."""
    if port == 0:
        return  # the system picks a free one
    if not 1 <= port <= 65535:
        raise SettingsProblem([f"{option}: {port} is not a port; give one from 1 to 65535"])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                reason = "is already in use (another DealBridge, demo or sandbox?)"
            else:
                reason = f"cannot be opened ({exc.strerror})"
            raise SettingsProblem(
                [f"{option}: {host}:{port} {reason}; stop it or choose another with {option}"]
            ) from exc


def _serve_app(host: str, port: int) -> Flask:
    """``serve``'s checks, before it starts: the port, the settings, Microsoft 365 and the
    public URL (settings.serving_problems), the database."""
    from connector.settings import serving_problems

    _check_port("--port", port, host)
    settings = _settings()
    problems = serving_problems(settings)
    if problems:
        raise SettingsProblem(problems)
    return _app(creates=settings.migrate_on_start)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dealbridge")
def cli() -> None:
    """DealBridge: CRM deal stages in Outlook and Teams, meetings logged on the right deal."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
def serve(host: str, port: int, threads: int) -> None:
    """Run the web app and the background jobs (waitress).

    On SQLite this one process is web, scheduler and worker. On PostgreSQL it is a web process
    that also works and may lead (DEALBRIDGE_SCHEDULER_ENABLED=false: web only)."""
    # why: waitress and the pages' Flask: --help 0.08 s -> 0.4 s
    from connector import logs
    from connector.admin.server import serve_app
    from connector.settings import SETTINGS_EXTENSION

    app = _serve_app(host, port)
    logs.configure(app.extensions[SETTINGS_EXTENSION])
    serve_app(app, host=host, port=port, threads=threads)  # logs the start line, with the role


def _log() -> logging.Logger:
    return logging.getLogger("connector.admin")


def _logging(app: Flask, role: str) -> None:
    """Logs from the settings (DEALBRIDGE_LOG_LEVEL, DEALBRIDGE_LOG_FORMAT), then the start line."""
    from connector import logs
    from connector.settings import SETTINGS_EXTENSION

    settings = app.extensions[SETTINGS_EXTENSION]
    logs.configure(settings)
    logs.start_line(_log(), settings, role)  # type: ignore[arg-type]


@cli.command()
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.2, 60),
    help="Seconds between leader-election turns (a dead leader is replaced within this).",
)
@click.option(
    "--idle",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05, 60),
    help="Seconds a worker with nothing to do waits before looking again.",
)
def worker(interval: float, idle: float) -> None:
    """Do the background work on a shared database (PostgreSQL): drain the outbox, run due
    rounds and jobs; one of all the processes also leads the scheduler."""
    from connector import heap, logs, metrics
    from connector.admin.server import shared_database
    from connector.leader import LeaderLoop
    from connector.settings import SETTINGS_EXTENSION
    from connector.worker import Worker

    app = _app()
    settings = app.extensions[SETTINGS_EXTENSION]
    logs.configure(settings)
    if not shared_database(app):
        raise click.ClickException(
            "`dealbridge worker` needs a shared database (DEALBRIDGE_DATABASE_URL=postgresql+"
            "psycopg://...): on SQLite, `dealbridge serve` runs the jobs itself"
        )
    frozen = heap.settle()  # what start-up made, out of the collector's full passes
    logs.start_line(_log(), settings, "worker", frozen_objects=frozen)
    work = Worker(app, idle=idle)
    leader = LeaderLoop(app, dispatch=True, interval=interval).start()
    signal.signal(signal.SIGTERM, lambda *_: work.stop())
    try:
        work.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        leader.stop()
        metrics.process_exit()
        _log().info("worker stopped", extra={"role": "worker"})


@cli.command()
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--sandbox-port", default=5001, show_default=True, type=int)
@click.option("--seed-only", is_flag=True, help="Seed and print, then exit (for scripts).")
def demo(port: int, sandbox_port: int, seed_only: bool) -> None:
    """Run DealBridge against the sandbox tenant with realistic demo data."""
    # why: the whole app and the seed data: --help 0.08 s -> 2.2 s
    from connector import logs
    from connector.admin.demo import run_demo

    _check_port("--port", port)
    _check_port("--sandbox-port", sandbox_port)
    if port == sandbox_port and port:
        raise SettingsProblem([f"--sandbox-port: {port} is the app's --port too; choose another"])
    logs.configure()  # DEALBRIDGE_LOG_LEVEL / _FORMAT; each app's secrets are masked as it starts
    run_demo(port=port, sandbox_port=sandbox_port, seed_only=seed_only)


@cli.command("sandbox")
@click.option("--port", default=5001, show_default=True, type=int)
@click.option("--tenant", default=None, help="Tenant id (GUID).")
@click.option("--domain", default=None, help="The tenant's verified domain.")
@click.option("--client-id", default=None)
@click.option("--client-secret", default=None)
def sandbox_command(
    port: int,
    tenant: str | None,
    domain: str | None,
    client_id: str | None,
    client_secret: str | None,
) -> None:
    """Serve the local Microsoft 365 sandbox tenant alone."""
    # why: the sandbox's Flask app and pydantic models: --help 0.08 s -> 0.95 s
    from sandbox.server import main as sandbox_main

    for option, value in (("--tenant", tenant), ("--client-id", client_id)):
        if value and not _GUID.match(value):
            raise SettingsProblem(
                [
                    f"{option}: {value!r} is not a GUID; give one such as "
                    "8c5e4ad4-35a4-4bd6-9ac9-4b2f8d6a3f10, or leave it out"
                ]
            )
    _check_port("--port", port)
    argv = ["--port", str(port)]
    for flag, value in (
        ("--tenant", tenant),
        ("--domain", domain),
        ("--client-id", client_id),
        ("--client-secret", client_secret),
    ):
        if value:
            argv += [flag, value]
    sys.exit(sandbox_main(argv))


@cli.group()
def db() -> None:
    """The deal store's database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (and install the preset pipelines on a new database).

    One upgrade at a time: another running (a second `db upgrade`, a server migrating at
    start) is waited for, and then there is nothing left to do."""
    # why: the app and the store (SQLAlchemy, Alembic): --help 0.08 s -> 3.1 s
    from connector.app import prepare_database
    from connector.store.db import NewerDatabase, get_store

    app = _app(creates=True, needs_schema=False, auto_migrate=False)
    store = get_store(app)
    before = store.current_revision()
    waited: list[bool] = []

    def waiting() -> None:
        waited.append(True)
        click.echo(
            "another `dealbridge db upgrade` (or a server migrating at start) is upgrading "
            "this database; waiting for it",
            err=True,
        )

    try:
        found = prepare_database(store, waiting=waiting)
    except NewerDatabase as exc:
        raise SettingsProblem([f"DEALBRIDGE_DATABASE_URL: {exc}"]) from exc
    after = store.current_revision()
    if waited and found == after:
        click.echo(f"database at revision {after}: the other upgrade did it, nothing left to do")
    else:
        click.echo(f"database at revision {after} (was {before or 'empty'})")


@db.command("current")
def db_current() -> None:
    """Show the applied and the newest migration."""
    # why: the store pulls SQLAlchemy: --help 0.08 s -> 0.9 s
    from connector.store.db import get_store

    store = get_store(_app(needs_schema=False, auto_migrate=False))
    click.echo(f"applied: {store.current_revision() or 'none'}; newest: {store.head_revision()}")


@db.command("restored")
def db_restored() -> None:
    """After restoring an older copy, before starting: mark every delivery still to make as
    uncertain, so each is looked for (a Teams card in its chat) before it is made again."""
    # why: the store pulls SQLAlchemy: --help 0.08 s -> 0.9 s (as db current)
    from connector.outbox import after_restore
    from connector.store.db import get_store

    with get_store(_app(auto_migrate=False)).session() as session:
        marked = after_restore(session)
    click.echo(f"{marked} deliveries marked uncertain: each is checked before it is made again")


@cli.group()
def keys() -> None:
    """API keys for the CRM."""


@keys.command("create")
@click.option("--name", required=True, help="Who uses the key, e.g. salesforce-prod.")
@click.option("--scope", type=click.Choice(["read", "write", "metrics"]), required=True)
def keys_create(name: str, scope: str) -> None:
    """Create a key. It is printed once, as the last line; only its hash is stored."""
    # why: the store pulls SQLAlchemy: --help 0.08 s -> 0.9 s
    from connector.api.keys import create_key
    from connector.store.db import get_store

    with get_store(_app()).session() as session:
        key = create_key(session, name, scope)  # type: ignore[arg-type]
    click.echo(f"Created API key {name!r} with scope {scope}. Store it now; it is not shown again:")
    click.echo(key)


@keys.command("list")
def keys_list() -> None:
    """List keys (names, scopes, last use; never the keys)."""
    # why: SQLAlchemy and the models: --help 0.08 s -> 0.9 s
    from sqlalchemy import select

    from connector.store.db import get_store
    from connector.store.models import ApiKey

    with get_store(_app()).session() as session:
        for key in session.scalars(select(ApiKey).order_by(ApiKey.id)):
            state = "revoked" if key.revoked_at else "active"
            used = key.last_used_at.isoformat() if key.last_used_at else "never"
            click.echo(f"{key.name}\t{key.scopes}\tdbk_{key.prefix}_…\t{state}\tlast used {used}")


@keys.command("revoke")
@click.option("--name", required=True)
def keys_revoke(name: str) -> None:
    """Revoke every key with this name."""
    # why: SQLAlchemy and the models: --help 0.08 s -> 0.9 s
    from sqlalchemy import select

    from connector.store.db import get_store
    from connector.store.models import ApiKey, utcnow

    with get_store(_app()).session() as session:
        found = list(session.scalars(select(ApiKey).where(ApiKey.name == name)))
        for key in found:
            key.revoked_at = key.revoked_at or utcnow()
    if not found:
        raise click.ClickException(f"no key named {name!r}")
    click.echo(f"revoked {len(found)} key(s) named {name!r}")


@cli.group("import")
def import_group() -> None:
    """Import data from files."""


@import_group.command("deals")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row and print the plan only.")
def import_deals(file: Path, dry_run: bool) -> None:
    """Import deals from a CSV or JSON file. Valid rows go in; invalid rows are listed with
    their line number and reason; no row is half-written."""
    # why: the importer pulls the deal store and pydantic: --help 0.08 s -> 1.8 s
    from connector.deals.importer import import_file
    from connector.settings import SETTINGS_EXTENSION

    app = _app()
    pipeline = app.extensions[SETTINGS_EXTENSION].default_pipeline
    report = import_file(app, file, default_pipeline=pipeline, dry_run=dry_run, echo=click.echo)
    if report.failed:
        sys.exit(1)


@cli.group()
def pipelines() -> None:
    """Pipelines and their stages."""


@pipelines.command("list")
def pipelines_list() -> None:
    """Show every pipeline with its stages in order."""
    # why: SQLAlchemy and the models: --help 0.08 s -> 0.9 s
    from sqlalchemy import select

    from connector.store.db import get_store
    from connector.store.models import Pipeline

    with get_store(_app()).session() as session:
        for pipeline in session.scalars(select(Pipeline).order_by(Pipeline.id)):
            click.echo(f"{pipeline.id}: {pipeline.name}")
            for stage in pipeline.stages:
                flag = " (won)" if stage.is_won else " (lost)" if stage.is_lost else ""
                rules = f", {len(stage.rules)} reminder rules" if stage.rules else ""
                click.echo(
                    f"  {stage.position + 1}. {stage.key:<24} {stage.name}{flag}"
                    f" — {stage.probability:g}%{rules}"
                )


@cli.command()
@click.option("--rep", "reps", multiple=True, help="Only this rep's mailbox (repeatable).")
@click.option("--full", is_flag=True, help="Start a new delta round instead of continuing.")
@click.option("--dry-run", is_flag=True, help="Print what the round would change; write nothing.")
def sync(reps: tuple[str, ...], full: bool, dry_run: bool) -> None:
    """Read reps' Outlook calendars now and log their meetings on deals."""
    from sqlalchemy import select

    from connector.meetings.sync import mark_held, sync_mailbox
    from connector.microsoft365 import NotConfigured
    from connector.store.db import get_store
    from connector.store.models import Rep

    app = _app()
    _logging(app, "sync")
    with get_store(app).sessions() as session:
        known = list(session.scalars(select(Rep.email).where(Rep.active.is_(True))))
    wanted = [r.strip().lower() for r in reps] or known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise click.ClickException(f"not a rep: {', '.join(unknown)} (add with PUT /api/v1/reps)")
    if dry_run:
        _print_plans(app, wanted, full)
        return
    failed = 0
    try:
        with click.progressbar(wanted, label="Reading calendars", file=None) as bar:
            reports = [
                sync_mailbox(app, email, full=full, wait=SYNC_WAIT, waiting=_waiting(email))
                for email in bar
            ]
    except NotConfigured as exc:
        raise click.ClickException(exc.detail) from exc
    mark_held(app)
    for report in reports:
        if report.error:
            failed += 1
            click.echo(f"  ✗ {report.mailbox}: {report.error}")
            continue
        skipped = ", ".join(f"{n} {k}" for k, n in sorted(report.skipped.items())) or "none"
        click.echo(
            f"  ✓ {report.mailbox}: {report.meetings} meetings read, {report.logged} logged, "
            f"{report.updated} updated, {report.needs_choice} need a choice, "
            f"{report.cancelled} cancelled; skipped: {skipped}"
        )
    if failed:
        sys.exit(1)


SYNC_WAIT = 600.0
"""Seconds ``sync`` waits for a mailbox another process is reading (the service's round)."""


def _waiting(email: str) -> Callable[[], None]:
    return lambda: click.echo(
        f"\n  … {email}: another process is reading this mailbox; waiting for its round", err=True
    )


def _print_plans(app: Flask, wanted: list[str], full: bool) -> None:
    """``sync --dry-run``: each mailbox's plan, one change a line; nothing is written."""
    from connector.meetings.sync import plan_mailbox
    from connector.microsoft365 import NotConfigured

    failed = 0
    for email in wanted:
        try:
            plan = plan_mailbox(app, email, full=full)
        except NotConfigured as exc:
            raise click.ClickException(exc.detail) from exc
        except GraphSyncError as exc:
            failed += 1
            click.echo(f"  ✗ {email}: {exc}")
            continue
        click.echo(
            f"  {email}: {plan.meetings} meetings read; would log {plan.logged}, "
            f"update {plan.updated - plan.unchanged}, cancel {plan.cancelled}, "
            f"skip {sum(plan.skipped.values())}; {plan.unchanged} unchanged"
        )
        for line in plan.lines():
            click.echo(f"    - {line}")
        if plan.refused:
            click.echo(f"    ! {plan.refused}")
    click.echo("Dry run: nothing was written.")
    if failed:
        sys.exit(1)


@cli.command("erase-person")
@click.argument("email")
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
def erase_person(email: str, dry_run: bool) -> None:
    """Forget a customer contact: their address in interactions, deal contacts, deliveries."""
    # why: the store and pydantic: --help 0.08 s -> 0.5 s
    from connector.admin.uninstall import erase

    erase(_app(), email, dry_run=dry_run)


@cli.command("uninstall")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
def uninstall_command(dry_run: bool) -> None:
    """Remove DealBridge from Microsoft 365: its reminder events and Graph subscriptions."""
    # why: the app and msgraph-sdk: --help 0.08 s -> 3.1 s
    from connector.admin.uninstall import uninstall

    uninstall(_app(), dry_run=dry_run)


@cli.group("reminders")
def reminders_group() -> None:
    """Stage reminders."""


@reminders_group.command("preview")
@click.option("--deal", "deal_id", required=True, help="The CRM's id of the deal.")
def reminders_preview(deal_id: str) -> None:
    """Print the deal's reminder plan with due times in the rep's time zone (writes nothing)."""
    # why: the deals and the planner pull SQLAlchemy: --help 0.08 s -> 2.0 s
    from connector.deals.changes import get_deal
    from connector.errors import DealBridgeError
    from connector.settings import SETTINGS_EXTENSION
    from connector.stage_reminders.replan import planned_for
    from connector.store.db import get_store
    from connector.store.models import utcnow

    app = _app()
    settings = app.extensions[SETTINGS_EXTENSION]
    with get_store(app).sessions() as session:
        try:
            deal = get_deal(session, deal_id)
        except DealBridgeError as exc:
            raise click.ClickException(exc.detail) from exc
        planned, calendar = planned_for(session, deal, settings, utcnow())
    zone = calendar.zone
    days = ",".join(str(d) for d in sorted(calendar.working_days))
    click.echo(f"{deal.crm_id} {deal.title!r}: stage {deal.stage_key}, status {deal.status}")
    click.echo(
        f"rep {deal.owner_email or '(none)'} in {calendar.time_zone}, "
        f"working {calendar.start:%H:%M}-{calendar.end:%H:%M} on days {days}"
    )
    if not planned:
        click.echo("no reminders planned")
    for plan in planned:
        local = plan.due_at.astimezone(zone)
        flag = " (stage deadline)" if plan.stage_deadline else ""
        click.echo(f"  {local:%a %Y-%m-%d %H:%M %Z}  {plan.kind:<17} {plan.title}{flag}")


@cli.group("manifest")
def manifest_group() -> None:
    """The Teams app package admins upload."""


@manifest_group.command("build")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("dealbridge-teams.zip"),
    show_default=True,
)
def manifest_build(out: Path) -> None:
    """Write the Teams app zip (manifest.json, color.png, outline.png) from the settings."""
    # why: pydantic-settings and the manifest's models: --help 0.08 s -> 0.6 s
    from connector.admin.teams_package import package_config
    from connector.settings import SettingsError, load_settings
    from manifest import ManifestError, build_manifest, build_package

    try:
        config = package_config(load_settings())
        written = build_package(config, out)
    except (SettingsError, ManifestError) as exc:
        raise click.ClickException(f"cannot build the Teams app package:\n{exc}") from exc
    manifest = build_manifest(config)
    click.echo(f"wrote {written} ({written.stat().st_size:,} bytes)")
    click.echo(f"  app {manifest['name']['short']} {manifest['version']}, id {manifest['id']}")
    click.echo(f"  bot {manifest['bots'][0]['botId']}, valid domains {manifest['validDomains']}")
    click.echo("Upload it in the Teams admin center (Manage apps → Upload new app).")


@manifest_group.command("publish")
@click.option(
    "--zip",
    "zip_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Upload this package instead of building one from the settings.",
)
@click.option("--update", is_flag=True, help="Upload a new version of the app in the catalog.")
@click.option(
    "--requires-review",
    is_flag=True,
    help="Submit it for a Teams administrator's approval (when you are not one).",
)
@click.option(
    "--timeout", default=900, show_default=True, type=int, help="Seconds to wait for sign-in."
)
def manifest_publish(
    zip_path: Path | None, update: bool, requires_review: bool, timeout: int
) -> None:
    """Sign in as a Teams admin (device code) and publish the app to your org's catalog."""
    # why: msal, requests and pydantic-settings: --help 0.08 s -> 0.6 s
    from connector.admin.teams_package import package_config
    from connector.settings import ENV_PREFIX, SettingsError, load_settings
    from graph_sync.catalog import (
        AlreadyInCatalog,
        AppCatalog,
        NotAPackage,
        VersionNotHigher,
        package_manifest,
        publish_package,
    )
    from graph_sync.device_code import DeviceCodeError, DeviceCodePrompt, sign_in_with_device_code
    from manifest import ManifestError, package_bytes

    try:
        settings = load_settings()
        package = zip_path.read_bytes() if zip_path else package_bytes(package_config(settings))
        manifest = package_manifest(package)
    except (SettingsError, ManifestError, NotAPackage) as exc:
        raise click.ClickException(f"cannot publish the Teams app package:\n{exc}") from exc
    client_id = settings.publish_client_id or settings.client_id
    if not settings.tenant_id or not client_id:
        raise click.ClickException(
            f"set {ENV_PREFIX}TENANT_ID and {ENV_PREFIX}CLIENT_ID "
            f"(or {ENV_PREFIX}PUBLISH_CLIENT_ID)"
        )
    click.echo(
        f"Publishing {manifest.short_name} {manifest.version} (manifest id "
        f"{manifest.external_id}) to the org app catalog of {settings.tenant_id}."
    )

    def show(prompt: DeviceCodePrompt) -> None:
        click.echo(
            f"To sign in, open {prompt.verification_uri} and enter the code {prompt.user_code}"
        )
        click.echo("  (as a Teams Administrator or Global Administrator; waiting for you...)")

    try:
        user = sign_in_with_device_code(
            str(settings.tenant_id),
            str(client_id),
            show=show,
            login_base_url=settings.login_base_url,
            timeout=timeout,
        )
    except DeviceCodeError as exc:
        raise click.ClickException(f"sign-in failed ({exc.code}): {exc.advice}") from exc
    click.echo(f"Signed in as {user.username or 'the admin'}.")
    try:
        with AppCatalog(user.access_token, settings.graph_base_url) as catalog:
            outcome = publish_package(
                catalog, package, update=update, requires_review=requires_review
            )
    except AlreadyInCatalog as exc:
        raise click.ClickException(
            f"{manifest.short_name} is already in the catalog (id {exc.app.id}, version "
            f"{exc.app.latest_version}). Raise {ENV_PREFIX}APP_VERSION above it and run again "
            "with --update."
        ) from exc
    except VersionNotHigher as exc:
        raise click.ClickException(
            f"the catalog has version {exc.app.latest_version} and this package is "
            f"{exc.package_version}: raise {ENV_PREFIX}APP_VERSION above it and run again."
        ) from exc
    except Forbidden as exc:
        raise click.ClickException(
            f"Graph refused ({exc.code}: {exc.message}). Sign in as a Teams Administrator, or "
            "run again with --requires-review; the app registration needs the delegated "
            "permission AppCatalog.Submit."
        ) from exc
    except GraphError as exc:
        raise click.ClickException(f"Graph refused the package: {exc}") from exc
    if outcome.created:
        click.echo(f"Published {outcome.version} as a new org app: catalog id {outcome.app_id}")
    else:
        click.echo(
            f"Uploaded version {outcome.version} (was {outcome.previous_version}): catalog id "
            f"{outcome.app_id}"
        )
    if outcome.publishing_state == "submitted":
        click.echo(
            "Next: a Teams administrator approves it in the Teams admin center "
            "(Teams apps → Manage apps → the app → Publish)."
        )
    else:
        click.echo(
            "Next: allow it for reps in the Teams admin center (Teams apps → Manage apps), map "
            "reps (PUT /api/v1/reps/{email}), then run `dealbridge doctor`."
        )


@cli.group("admin")
def admin_group() -> None:
    """What an admin of the Microsoft 365 tenant does once."""


@admin_group.command("consent-url")
@click.option("--redirect-uri", default=None, help="Where Entra sends the admin afterwards.")
def admin_consent_url_command(redirect_uri: str | None) -> None:
    """Print the admin-consent link for the configured Entra app."""
    # why: pydantic-settings and the manifest's models: --help 0.08 s -> 0.4 s
    from connector.settings import SettingsError, load_settings
    from manifest import admin_consent_url

    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    missing = [p for p in settings.microsoft365_problems() if "TENANT_ID" in p or "CLIENT_ID" in p]
    if missing:
        raise click.ClickException("\n".join(missing))
    redirect = redirect_uri or (
        f"{settings.public_url}/admin/consented" if settings.public_url else None
    )
    if redirect is None:
        raise click.ClickException("give --redirect-uri or set DEALBRIDGE_PUBLIC_URL")
    try:
        url = admin_consent_url(
            settings.login_base_url,
            str(settings.tenant_id),
            str(settings.client_id),
            redirect,
            secrets.token_urlsafe(16),
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("A Global Administrator (or Privileged Role Administrator) opens this link once:")
    click.echo(url)


@cli.command()
def doctor() -> None:
    """Check settings, Entra, Graph permissions, the bot, the public URLs, subscriptions, the
    client secret and the database; each line ✓, ! or ✗ with the fix. Exit 1 on any ✗."""
    # why: the checks pull the app and msgraph-sdk: --help 0.08 s -> 2.7 s
    from connector.admin.doctor import CheckResult, run_checks
    from connector.app import create_app
    from connector.microsoft365 import close
    from connector.settings import (
        SettingsError,
        database_problems,
        environment_problems,
        load_settings,
        shown_database,
    )
    from connector.store.db import get_store

    refused, warned = environment_problems()
    try:
        settings = load_settings({"auto_migrate": False, "scheduler_enabled": False})
        click.echo(f"Database: {shown_database(settings)}")
        unusable = refused + database_problems(settings, creates=False)
        if unusable:
            raise SettingsError(unusable)
        app = create_app(settings=settings)
    except SettingsError as exc:
        unreadable = CheckResult(
            name="Settings",
            status="fail",
            detail="the settings cannot be used",
            fix="\n".join(refused + [p for p in exc.problems if p not in refused]),
        )
        click.echo("\n".join(unreadable.lines()))
        sys.exit(1)
    for warning in warned:
        click.echo(f"Warning: {warning}", err=True)
    try:
        results = run_checks(app)
    finally:
        close(app)
        get_store(app).dispose()
    for result in results:
        click.echo("\n".join(result.lines()))
    failed = sum(r.status == "fail" for r in results)
    warnings = sum(r.status == "warn" for r in results)
    click.echo(f"{len(results)} checks: {failed} failed, {warnings} warnings")
    if failed:
        sys.exit(1)


def main() -> None:
    try:
        cli(prog_name="dealbridge")
    except StartupProblem as exc:  # a path it cannot write: one line, no traceback
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
