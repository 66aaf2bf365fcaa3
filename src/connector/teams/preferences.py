"""A rep's own preferences, from the bot's ``settings`` command and the "My deals" tab: where
reminders reach her (Teams, Outlook, both), quiet hours, the daily digest's time, and a pause of
meeting capture. Both go through :class:`PreferencesIn` and ``deals.reps.update_preferences``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.orm import Session

from connector.deals.reps import capture_paused, preference_of, update_preferences
from connector.settings import Settings
from connector.stage_reminders.replan import working_calendar
from connector.store.models import Rep

HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
PAUSES: dict[str, dt.timedelta] = {
    "1h": dt.timedelta(hours=1),
    "2h": dt.timedelta(hours=2),
    "4h": dt.timedelta(hours=4),
    "1d": dt.timedelta(days=1),
    "2d": dt.timedelta(days=2),
    "3d": dt.timedelta(days=3),
    "1w": dt.timedelta(weeks=1),
    "2w": dt.timedelta(weeks=2),
}
PauseChoice = Literal["off", "1h", "2h", "4h", "1d", "2d", "3d", "1w", "2w"]
CHANNEL_WORDS = {"teams": "Teams only", "outlook": "Outlook only", "both": "Teams and Outlook"}


class PreferencesIn(BaseModel):
    """What a rep may change; a field left out is left as it is. Quiet hours come as a pair."""

    model_config = ConfigDict(extra="forbid")

    channels: Literal["teams", "outlook", "both"] | None = None
    quiet_start: HHMM | None = None
    quiet_end: HHMM | None = None
    quiet_off: bool = False
    digest_time: HHMM | None = None
    daily_digest: bool | None = None
    pause: PauseChoice | None = None

    @model_validator(mode="after")
    def _quiet_pair(self) -> PreferencesIn:
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("quiet hours need a start and an end")
        return self


def apply_preferences(session: Session, rep: Rep, wanted: PreferencesIn, now: dt.datetime) -> None:
    """Store what the rep changed."""
    changes: dict[str, Any] = {}
    if wanted.channels is not None:
        changes["channels"] = wanted.channels
    if wanted.quiet_off:
        changes["quiet_start"] = changes["quiet_end"] = None
    elif wanted.quiet_start is not None:
        changes["quiet_start"], changes["quiet_end"] = wanted.quiet_start, wanted.quiet_end
    if wanted.digest_time is not None:
        changes["digest_time"] = wanted.digest_time
        changes["daily_digest"] = True
    if wanted.daily_digest is not None:
        changes["daily_digest"] = wanted.daily_digest
    if wanted.pause is not None:
        changes["capture_paused_until"] = (
            None if wanted.pause == "off" else now + PAUSES[wanted.pause]
        )
    if changes:
        update_preferences(session, rep.email, **changes)


class PreferencesOut(BaseModel):
    """What the rep sees of her preferences (the tab and the bot's answer)."""

    channels: str
    quiet: str | None
    digest: str
    paused_until: dt.datetime | None
    paused_until_text: str | None
    zone: str


def preferences_out(
    session: Session, rep: Rep, settings: Settings, now: dt.datetime
) -> PreferencesOut:
    pref = preference_of(session, rep.email)
    zone = working_calendar(rep, settings).zone
    admin = set(settings.reminder_channels)
    default = (
        "both" if admin >= {"teams", "calendar"} else "teams" if "teams" in admin else "outlook"
    )
    channels = (pref.channels if pref is not None else None) or default
    quiet = None
    if pref is not None and pref.quiet_start and pref.quiet_end:
        quiet = f"{pref.quiet_start}–{pref.quiet_end}"
    digest = "off"
    if pref is not None and pref.daily_digest:
        digest = (
            f"on, at {pref.digest_time}" if pref.digest_time else "on, at the start of your day"
        )
    until = capture_paused(session, rep.email, now)
    text = None
    if until is not None:
        text = until.astimezone(zone).strftime("%a %d %b %H:%M")
    return PreferencesOut(
        channels=channels,
        quiet=quiet,
        digest=digest,
        paused_until=until,
        paused_until_text=text,
        zone=str(getattr(zone, "key", zone)),
    )


# --- the bot's `settings` command --------------------------------------------------------------

USAGE = (
    "Say 'settings channels teams|outlook|both', 'settings quiet 20:00-07:30' (or 'quiet "
    "off'), 'settings digest 08:15' (or 'digest off'), 'settings pause 2h|1d|3d|1w' (or "
    "'pause off')."
)
_QUIET = re.compile(r"^(\S+)\s*-\s*(\S+)$")


class SettingsProblem(ValueError):
    """A `settings` command the bot cannot read; the message is for the rep."""


def parse_settings_command(text: str) -> PreferencesIn | None:
    """The change a `settings ...` message asks for; None for plain `settings` (show)."""
    words = text.split(maxsplit=2)[1:]
    if not words:
        return None
    what, value = words[0].lower(), (words[1] if len(words) > 1 else "").strip().lower()
    fields: dict[str, Any]
    if what == "channels":
        fields = {"channels": value}
    elif what == "quiet":
        match = _QUIET.match(value)
        if value == "off":
            fields = {"quiet_off": True}
        elif match is None:
            raise SettingsProblem("Quiet hours are two times HH:MM-HH:MM, e.g. 20:00-07:30.")
        else:
            fields = {"quiet_start": match.group(1), "quiet_end": match.group(2)}
    elif what == "digest":
        if value in ("on", "off"):
            fields = {"daily_digest": value == "on"}
        else:
            fields = {"digest_time": value}
    elif what == "pause":
        fields = {"pause": value or "1d"}
    elif what == "resume":
        fields = {"pause": "off"}
    else:
        raise SettingsProblem(f"I do not know the setting “{what[:40]}”. {USAGE}")
    try:
        return PreferencesIn.model_validate(fields)
    except ValidationError as e:
        field = str(e.errors()[0]["loc"][0]) if e.errors()[0]["loc"] else ""
        if field in ("quiet_start", "quiet_end", "digest_time"):
            raise SettingsProblem("Write times as HH:MM (24 hours), e.g. 08:15.") from e
        if field == "channels":
            raise SettingsProblem("Channels are teams, outlook or both.") from e
        if field == "pause":
            raise SettingsProblem("Pause for 1h, 2h, 4h, 1d, 2d, 3d, 1w or 2w, or 'off'.") from e
        raise SettingsProblem(USAGE) from e


def settings_answer(
    session: Session, rep: Rep, text: str, settings: Settings, now: dt.datetime
) -> dict[str, Any]:
    """The bot's answer to `settings ...`: change what was asked, then say them all."""
    try:
        wanted = parse_settings_command(text)
    except SettingsProblem as e:
        return {"type": "message", "text": str(e)}
    if wanted is not None:
        apply_preferences(session, rep, wanted, now)
    shown = preferences_out(session, rep, settings, now)
    lines = [
        "Your DealBridge settings:",
        f"- Reminders reach you in {CHANNEL_WORDS.get(shown.channels, shown.channels)}.",
        f"- Quiet hours: {shown.quiet or 'none'} (your time, {shown.zone}).",
        f"- Daily digest: {shown.digest}.",
        (
            f"- Meeting capture is paused until {shown.paused_until_text}: nothing is read "
            "from your calendar until then."
            if shown.paused_until_text
            else "- Meeting capture is on."
        ),
        USAGE,
    ]
    return {"type": "message", "text": "\n\n".join(lines)}
