"""The rolling window slides once a day per mailbox, each at its own minute (no stampede)."""

from __future__ import annotations

import datetime as dt
import itertools

from connector.meetings.sync import window_for
from connector.settings import load_settings

SETTINGS = load_settings({}, env_file=False)
MIDNIGHT = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)


def test_each_mailbox_slides_once_a_day_at_its_own_minute() -> None:
    slides: set[dt.datetime] = set()
    for n in range(50):
        mailbox = f"rep{n}@contoso.example"
        windows = [
            window_for(SETTINGS, MIDNIGHT + dt.timedelta(minutes=m), mailbox)
            for m in range(0, 2880, 15)
        ]
        changes = [w for before, w in itertools.pairwise(windows) if w != before]
        assert len(changes) == 2  # once in each of the two days
        now = MIDNIGHT + dt.timedelta(hours=13)
        window = window_for(SETTINGS, now, mailbox)
        assert window.start <= now - dt.timedelta(days=SETTINGS.sync_days_back)
        assert window.end >= now + dt.timedelta(days=SETTINGS.sync_days_ahead)
        slides.add(changes[0].start)
    assert len(slides) > 40  # spread over the day, not all at midnight


def test_without_a_mailbox_the_window_is_whole_utc_days() -> None:
    window = window_for(SETTINGS, MIDNIGHT + dt.timedelta(hours=5))
    assert window.start == MIDNIGHT - dt.timedelta(days=SETTINGS.sync_days_back)
    assert window.end == MIDNIGHT + dt.timedelta(days=SETTINGS.sync_days_ahead + 1)
