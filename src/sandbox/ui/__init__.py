"""A read-only page at `/`: each mailbox's calendar, so a person can watch the demo happen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import Blueprint, render_template, request

from sandbox import timezones

if TYPE_CHECKING:
    from sandbox.tenant import Tenant


def create_blueprint(tenant: Tenant) -> Blueprint:
    """`GET /`: server-rendered, no scripts from elsewhere, refreshes itself every 5 s."""
    blueprint = Blueprint("ui", __name__, template_folder="templates")

    @blueprint.get("/")
    def calendars() -> str:
        days = min(max(request.args.get("days", 14, type=int) or 14, 1), 90)
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
            days=1
        )
        end = start + timedelta(days=days + 1)
        mailboxes: list[dict[str, Any]] = []
        with tenant.lock:
            for user in tenant.directory.all():
                zone_name = user.mailbox_settings.time_zone
                zone = timezones.zone(zone_name)
                rows = []
                for item in tenant.calendars.calendar(user.id).view(start, end):
                    fields = item.event.fields
                    rows.append(
                        {
                            "when": item.start.astimezone(zone).strftime("%a %d %b %H:%M"),
                            "until": item.end.astimezone(zone).strftime("%H:%M"),
                            "subject": fields["subject"] or "(no subject)",
                            "type": item.type,
                            "cancelled": item.event.is_cancelled,
                            "organizer": item.event.organizer["emailAddress"].get("address", ""),
                            "attendees": len(fields["attendees"]),
                            "categories": ", ".join(fields["categories"]),
                            "show_as": fields["showAs"],
                            "tagged": bool(item.event.extended),
                        }
                    )
                mailboxes.append(
                    {
                        "upn": user.user_principal_name,
                        "name": user.display_name,
                        "zone": zone_name,
                        "rows": rows,
                    }
                )
            subscriptions = len(tenant.subscriptions.by_id)
        return render_template(
            "calendar.html",
            mailboxes=mailboxes,
            days=days,
            tenant=tenant.config,
            subscriptions=subscriptions,
            requests=tenant.log.summary()["total"],
        )

    return blueprint
