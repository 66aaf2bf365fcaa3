"""Reminder events on calendars over the sandbox: batching, idempotency under 429/500/crash."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graph_sync.calendar import (
    CATEGORY,
    REMINDER_PROPERTY,
    CalendarWriter,
    CreateReminder,
    DeleteReminder,
    ReminderEvent,
    UpdateReminder,
)
from graph_sync.client import GraphClient

from .conftest import Control

BATCH_ROUTE = "POST /v1.0/$batch"
DUE = datetime(2026, 12, 1, 17, tzinfo=UTC)


def reminder(n: int, **changes: Any) -> ReminderEvent:
    fields: dict[str, Any] = {
        "key": f"deal-{n}:proposal-answered:0",
        "subject": f"Call back about deal {n}",
        "body_html": f"<p>Deal {n} is in Proposal for 3 days.</p>",
        "start": DUE + timedelta(minutes=15 * n),
        "time_zone": "Pacific Standard Time",
        "reminder_minutes_before_start": 5,
    }
    fields.update(changes)
    return ReminderEvent(**fields)


def keys_on_calendar(control: Control, user: str) -> Counter[str]:
    """How many events carry each reminder key, as the mailbox stores them."""
    found: Counter[str] = Counter()
    for event in control.stored_events(user):
        for prop in event.get("singleValueExtendedProperties") or []:
            if prop["id"].lower() == REMINDER_PROPERTY.lower():
                found[prop["value"]] += 1
    return found


@pytest.fixture
def writer(graph: GraphClient) -> CalendarWriter:
    return CalendarWriter(graph)


def test_reminder_event_is_free_tagged_categorised_and_has_no_attendees(
    writer: CalendarWriter, control: Control
) -> None:
    ann = control.add_user("ann")["id"]

    (result,) = writer.apply([CreateReminder(mailbox=ann, event=reminder(1))])
    (stored,) = control.stored_events(ann)

    assert result.outcome == "done"
    assert result.event_id == stored["id"]
    assert stored["showAs"] == "free"
    assert stored["categories"] == [CATEGORY]
    assert stored["attendees"] == []
    assert stored["isReminderOn"] is True
    assert stored["reminderMinutesBeforeStart"] == 5
    assert stored["transactionId"] == reminder(1).transaction_id
    assert keys_on_calendar(control, ann) == {reminder(1).key: 1}
    assert stored["originalStartTimeZone"] == "Pacific Standard Time"
    assert stored["start"] == {"dateTime": "2026-12-01T17:15:00.0000000", "timeZone": "UTC"}


def batch_calls_for(per_rep: list[int]) -> int:
    """`$batch` calls for creates spread over reps: at most 20 items a call, whatever the
    mailboxes (Outlook runs up to 4 items of a batch in parallel, the rest wait their turn)."""
    return math.ceil(sum(per_rep) / 20)


def test_45_creates_for_one_rep_take_3_batch_calls_without_a_429(
    writer: CalendarWriter, control: Control
) -> None:
    ann = control.add_user("ann")["id"]

    results = writer.apply([CreateReminder(mailbox=ann, event=reminder(n)) for n in range(45)])

    assert [r.outcome for r in results] == ["done"] * 45
    assert [r.key for r in results] == [reminder(n).key for n in range(45)]
    assert control.calls(BATCH_ROUTE) == batch_calls_for([45]) == 3
    assert "429" not in control.served()["byStatus"]
    assert len(keys_on_calendar(control, ann)) == 45


def test_20_reminders_for_10_reps_take_one_batch_call(
    writer: CalendarWriter, control: Control
) -> None:
    reps = [control.add_user(f"rep{r}")["id"] for r in range(10)]
    ops = [CreateReminder(mailbox=reps[n % 10], event=reminder(n)) for n in range(20)]

    results = writer.apply(ops)

    assert [r.outcome for r in results] == ["done"] * 20
    assert [(r.mailbox, r.key) for r in results] == [(op.mailbox, op.event.key) for op in ops]
    assert control.calls(BATCH_ROUTE) == batch_calls_for([2] * 10) == 1
    for r, rep in enumerate(reps):
        assert keys_on_calendar(control, rep) == {reminder(n).key: 1 for n in range(r, 20, 10)}


def test_45_reminders_for_3_reps_take_3_batch_calls_without_a_429(
    writer: CalendarWriter, control: Control
) -> None:
    reps = [control.add_user(f"rep{r}")["id"] for r in range(3)]
    ops = [CreateReminder(mailbox=reps[n % 3], event=reminder(n)) for n in range(45)]

    results = writer.apply(ops)

    assert [r.outcome for r in results] == ["done"] * 45
    # 5 items of each rep a call: Outlook runs 4 of them at a time and the 5th after, no 429.
    assert control.calls(BATCH_ROUTE) == batch_calls_for([15] * 3) == 3
    assert "429" not in control.served()["byStatus"]
    for r, rep in enumerate(reps):
        assert keys_on_calendar(control, rep) == {reminder(n).key: 1 for n in range(r, 45, 3)}


def test_429_on_some_items_of_a_mixed_batch_retries_only_those(
    writer: CalendarWriter, control: Control
) -> None:
    reps = [control.add_user(f"rep{r}")["id"] for r in range(10)]
    control.fault(route="POST .*/events$", status=429, retryAfter=0.02, count=3)
    ops = [CreateReminder(mailbox=reps[n % 10], event=reminder(n)) for n in range(20)]

    results = writer.apply(ops)

    assert [r.outcome for r in results] == ["done"] * 20
    assert sorted(r.attempts for r in results) == [1] * 17 + [2] * 3
    assert control.calls(BATCH_ROUTE) == 2  # the 20, then the 3 throttled ones alone
    assert control.served()["byRoute"]["POST /v1.0/users/{user}/events"] == 23
    for r, rep in enumerate(reps):
        assert keys_on_calendar(control, rep) == {reminder(n).key: 1 for n in range(r, 20, 10)}


def test_verified_creates_for_10_reps_look_up_in_one_call_and_write_in_one(
    writer: CalendarWriter, control: Control
) -> None:
    reps = [control.add_user(f"rep{r}")["id"] for r in range(10)]
    ops = [CreateReminder(mailbox=reps[n % 10], event=reminder(n)) for n in range(20)]
    writer.apply(ops[:10])
    control.forget_requests()

    results = writer.apply(ops, verify_creates=True)

    assert [r.outcome for r in results] == ["done"] * 20
    assert [r.kind for r in results] == ["create"] * 20
    assert control.calls(BATCH_ROUTE) == 2  # 20 lookups, then 10 updates and 10 creates
    for r, rep in enumerate(reps):
        assert keys_on_calendar(control, rep) == {reminder(n).key: 1 for n in range(r, 20, 10)}


def test_ops_for_two_reps_go_to_their_own_calendars_in_order(
    writer: CalendarWriter, control: Control
) -> None:
    ann = control.add_user("ann")["id"]
    bob = control.add_user("bob")["id"]
    ops: list[CreateReminder | UpdateReminder | DeleteReminder] = [
        CreateReminder(mailbox=ann if n % 2 else bob, event=reminder(n)) for n in range(6)
    ]

    results = writer.apply(ops)

    assert [r.mailbox for r in results] == [op.mailbox for op in ops]
    assert set(keys_on_calendar(control, ann)) == {reminder(n).key for n in (1, 3, 5)}
    assert set(keys_on_calendar(control, bob)) == {reminder(n).key for n in (0, 2, 4)}


def test_429_on_batch_items_retries_them_and_makes_no_duplicate(
    writer: CalendarWriter, control: Control
) -> None:
    ann = control.add_user("ann")["id"]
    control.fault(route="POST .*/events$", status=429, rate=0.3, retryAfter=0.02)

    results = writer.apply([CreateReminder(mailbox=ann, event=reminder(n)) for n in range(30)])

    assert all(r.outcome == "done" for r in results)
    assert any(r.attempts > 1 for r in results)
    assert max(keys_on_calendar(control, ann).values()) == 1
    assert len(keys_on_calendar(control, ann)) == 30


def test_500_on_creates_is_retried_safely_thanks_to_transaction_id(
    writer: CalendarWriter, control: Control
) -> None:
    ann = control.add_user("ann")["id"]
    control.fault(route="POST .*/events$", status=500, count=4)

    results = writer.apply([CreateReminder(mailbox=ann, event=reminder(n)) for n in range(8)])

    assert all(r.outcome == "done" for r in results)
    assert keys_on_calendar(control, ann) == {reminder(n).key: 1 for n in range(8)}


def test_repeating_a_create_after_a_lost_answer_makes_no_second_event(
    writer: CalendarWriter, control: Control
) -> None:
    ann = control.add_user("ann")["id"]
    (first,) = writer.apply([CreateReminder(mailbox=ann, event=reminder(1))])

    # The answer was lost: the outbox still says "create" and tries again, without a lookup.
    (again,) = writer.apply([CreateReminder(mailbox=ann, event=reminder(1))])

    assert again.event_id == first.event_id
    assert keys_on_calendar(control, ann) == {reminder(1).key: 1}


def test_verified_create_after_a_crash_updates_the_event_found_by_key(
    writer: CalendarWriter, control: Control
) -> None:
    ann = control.add_user("ann")["id"]
    writer.apply([CreateReminder(mailbox=ann, event=reminder(1))])
    changed = reminder(1, subject="Call back today", generation=1)

    (result,) = writer.apply([CreateReminder(mailbox=ann, event=changed)], verify_creates=True)
    (stored,) = control.stored_events(ann)

    assert result.outcome == "done"
    assert result.event_id == stored["id"]
    assert stored["subject"] == "Call back today"
    assert keys_on_calendar(control, ann) == {reminder(1).key: 1}


def test_verified_create_removes_duplicates_found_by_key(
    writer: CalendarWriter, control: Control
) -> None:
    ann = control.add_user("ann")["id"]
    writer.apply([CreateReminder(mailbox=ann, event=reminder(1))])
    writer.apply([CreateReminder(mailbox=ann, event=reminder(1, generation=5))])
    assert keys_on_calendar(control, ann) == {reminder(1).key: 2}

    (result,) = writer.apply([CreateReminder(mailbox=ann, event=reminder(1), verify=True)])

    assert result.outcome == "done"
    assert keys_on_calendar(control, ann) == {reminder(1).key: 1}


def test_find_by_key_finds_only_our_tagged_events(writer: CalendarWriter, control: Control) -> None:
    ann = control.add_user("ann")["id"]
    (made,) = writer.apply([CreateReminder(mailbox=ann, event=reminder(2))])
    control.add_event(
        ann,
        {
            "subject": "not ours",
            "start": {"dateTime": "2026-12-01T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-01T10:00:00", "timeZone": "UTC"},
        },
    )

    found = writer.find_by_key(ann, [reminder(2).key, "deal-x:none:0", "it's quoted"])

    assert found == {reminder(2).key: [made.event_id], "deal-x:none:0": [], "it's quoted": []}


def test_update_moves_the_event_and_a_missing_one_is_gone(
    writer: CalendarWriter, control: Control
) -> None:
    ann = control.add_user("ann")["id"]
    made, deleted = writer.apply([CreateReminder(mailbox=ann, event=reminder(n)) for n in (1, 9)])
    assert made.event_id is not None
    assert deleted.event_id is not None
    writer.apply([DeleteReminder(mailbox=ann, event_id=deleted.event_id, key=reminder(9).key)])
    later = reminder(1, start=DUE + timedelta(days=1))

    updated, missing = writer.apply(
        [
            UpdateReminder(mailbox=ann, event_id=made.event_id, event=later),
            UpdateReminder(mailbox=ann, event_id=deleted.event_id, event=reminder(9)),
        ]
    )
    (stored,) = control.stored_events(ann)

    assert updated.outcome == "done"
    assert updated.event_id == made.event_id
    assert stored["start"]["dateTime"] == "2026-12-02T17:00:00.0000000"
    assert missing.outcome == "gone"


def test_delete_by_id_by_key_and_of_a_gone_event_are_all_done(
    writer: CalendarWriter, control: Control
) -> None:
    ann = control.add_user("ann")["id"]
    made = writer.apply([CreateReminder(mailbox=ann, event=reminder(n)) for n in range(3)])
    first_id, gone_id = made[0].event_id, made[2].event_id
    writer.apply([DeleteReminder(mailbox=ann, event_id=gone_id, key=reminder(2).key)])

    results = writer.apply(
        [
            DeleteReminder(mailbox=ann, event_id=first_id, key=reminder(0).key),
            DeleteReminder(mailbox=ann, event_id=None, key=reminder(1).key),
            DeleteReminder(mailbox=ann, event_id=gone_id, key=reminder(2).key),
        ]
    )

    assert [r.outcome for r in results] == ["done", "done", "done"]
    assert control.stored_events(ann) == []


def test_a_failed_lookup_fails_only_the_ops_that_needed_it(
    writer: CalendarWriter, control: Control
) -> None:
    ann = control.add_user("ann")["id"]
    control.fault(route="GET .*/events", status=503, retryAfter=0.01)

    verified, plain = writer.apply(
        [
            CreateReminder(mailbox=ann, event=reminder(1), verify=True),
            CreateReminder(mailbox=ann, event=reminder(2)),
        ]
    )

    assert verified.outcome == "failed"
    assert verified.error is not None
    assert "lookup" in verified.error
    assert plain.outcome == "done"
    assert keys_on_calendar(control, ann) == {reminder(2).key: 1}


def test_transaction_id_is_stable_per_key_and_generation() -> None:
    assert reminder(1).transaction_id == reminder(1, subject="other").transaction_id
    assert reminder(1).transaction_id != reminder(2).transaction_id
    assert reminder(1).transaction_id != reminder(1, generation=1).transaction_id


def test_reminder_start_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        reminder(1, start=datetime(2026, 12, 1, 9))


def test_stored_ops_come_back_as_their_kind() -> None:
    from pydantic import TypeAdapter

    from graph_sync.calendar import CalendarOp

    adapter: TypeAdapter[CreateReminder | UpdateReminder | DeleteReminder] = TypeAdapter(CalendarOp)
    stored = CreateReminder(mailbox="ann", event=reminder(1)).model_dump(mode="json")

    assert adapter.validate_python(stored) == CreateReminder(mailbox="ann", event=reminder(1))
    assert isinstance(
        adapter.validate_python({"kind": "delete", "mailbox": "ann", "event_id": None, "key": "k"}),
        DeleteReminder,
    )


def test_a_failed_lookup_fails_only_its_own_verified_create(
    writer: CalendarWriter, control: Control
) -> None:
    ann = control.add_user("ann")["id"]
    bob = control.add_user("bob")["id"]
    control.fault(route=f"GET /v1.0/users/{bob}/events", status=503, retryAfter=0.01)
    ops = [CreateReminder(mailbox=[ann, bob][n % 2], event=reminder(n)) for n in range(6)]

    results = writer.apply(ops, verify_creates=True)

    assert [r.outcome for r in results] == ["done", "failed"] * 3
    assert all("lookup by key failed" in (r.error or "") for r in results[1::2])
    assert keys_on_calendar(control, ann) == {reminder(n).key: 1 for n in (0, 2, 4)}
    assert keys_on_calendar(control, bob) == {}  # without the lookup a create could duplicate
