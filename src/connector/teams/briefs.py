"""What the meeting cards say of Teams attendance, and the no-show card's state."""

from __future__ import annotations

from cards.models import NoShowAsked, NoShowDecided
from connector.store.models import Interaction
from connector.store.types import Attendance, Joined


def _people(joined: tuple[Joined, ...]) -> str:
    return ", ".join(
        f"{p.name or p.email or 'a guest'} ({round(p.minutes or 0):g} min)" for p in joined
    )


def attendance_line(interaction: Interaction) -> str | None:
    """Teams' attendance in a line the rep reads; None when there is nothing to say yet."""
    attendance: Attendance | None = interaction.details.attendance if interaction.details else None
    if attendance is None or attendance.result is None:
        return None
    if attendance.result == "held":
        if attendance.decided_by:
            return f"Held: marked held by {attendance.decided_by}."
        minutes = f", {round(attendance.minutes):g} min" if attendance.minutes else ""
        return f"Held (Teams attendance{minutes}): {_people(attendance.customer)} joined."
    if attendance.result == "no_show":
        waited = f" {_people(attendance.ours)} waited." if attendance.ours else ""
        return f"No-show: nobody from the customer joined.{waited}"
    if attendance.result == "pending":
        return "Held (not verified yet): Teams attendance is read after the meeting."
    return f"Held (not verified): {attendance.reason or 'no attendance from Teams'}."


def no_show_state(interaction: Interaction) -> NoShowAsked | NoShowDecided:
    """Asked, until the rep rescheduled it or dropped it (held anyway ends the no-show)."""
    attendance = interaction.details.attendance if interaction.details else None
    decided = attendance.decided_by if attendance is not None else None
    reason = (attendance.reason or "") if attendance is not None else ""
    if decided and reason.startswith("rescheduled"):
        return NoShowDecided(decision="reschedule", by=decided)
    if decided and "dropped" in reason:
        return NoShowDecided(decision="drop", by=decided)
    return NoShowAsked()
