"""Identifiers shaped like Exchange's: opaque item ids, GlobalObjectId iCalUIds, change keys."""

from __future__ import annotations

import base64
import binascii
import os
import struct
import uuid
from datetime import UTC, date, datetime

_ID_PREFIX = "AAMkA"
_SERIES_ITEM = b"\x46"
_OCCURRENCE = b"\x07"
# GlobalObjectId's fixed class id (MS-OXOCAL 2.2.1.27); the 4 bytes after it hold an instance date.
_GOID_CLASS = "040000008200E00074C5B7101A82E008"
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def _encode(raw: bytes) -> str:
    return _ID_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii")


def _decode(item_id: str) -> bytes | None:
    if not item_id.startswith(_ID_PREFIX):
        return None
    try:
        return base64.urlsafe_b64decode(item_id[len(_ID_PREFIX) :].encode("ascii"))
    except (binascii.Error, ValueError):
        return None


def new_item_id(mailbox_id: str) -> str:
    """A new event id in a mailbox: opaque, URL-safe, like Exchange's `AAMkA...=` ids."""
    return _encode(_SERIES_ITEM + uuid.UUID(mailbox_id).bytes + os.urandom(24))


def occurrence_id(master_id: str, original_start: datetime) -> str:
    """The id of one occurrence of a series: derived from the master and the occurrence's start."""
    raw = _decode(master_id)
    if raw is None:
        raise ValueError(f"not a series master id: {master_id}")
    seconds = int(original_start.astimezone(UTC).timestamp())
    return _encode(_OCCURRENCE + raw[1:] + struct.pack(">q", seconds))


def split_occurrence_id(item_id: str) -> tuple[str, datetime] | None:
    """The master id and original start an occurrence id was made from; None for other ids."""
    raw = _decode(item_id)
    if raw is None or raw[:1] != _OCCURRENCE or len(raw) != 1 + 16 + 24 + 8:
        return None
    (seconds,) = struct.unpack(">q", raw[-8:])
    master = _encode(_SERIES_ITEM + raw[1:-8])
    return master, datetime.fromtimestamp(seconds, UTC)


def is_well_formed(item_id: str) -> bool:
    """Whether an id could be one of ours; Graph answers 400 ErrorInvalidIdMalformed otherwise."""
    raw = _decode(item_id)
    return raw is not None and raw[:1] in (_SERIES_ITEM, _OCCURRENCE) and len(raw) >= 1 + 16 + 24


def new_ical_uid(created: datetime) -> str:
    """A GlobalObjectId as hex: class id, zero instance date, creation FILETIME, a random id."""
    ticks = int((created - _FILETIME_EPOCH).total_seconds() * 10_000_000)
    filetime = struct.pack("<Q", ticks).hex().upper()
    return f"{_GOID_CLASS}00000000{filetime}{'0' * 16}10000000{uuid.uuid4().hex.upper()}"


def occurrence_ical_uid(master_uid: str, original_start: date) -> str:
    """Exchange sets the instance date (YH YL M D) inside the GlobalObjectId of an occurrence."""
    if not master_uid.startswith(_GOID_CLASS):
        return master_uid
    stamp = struct.pack(">HBB", original_start.year, original_start.month, original_start.day)
    at = len(_GOID_CLASS)
    return master_uid[:at] + stamp.hex().upper() + master_uid[at + 8 :]


def new_change_key() -> str:
    """A new change key; it changes on every write to an item."""
    return base64.b64encode(os.urandom(24)).decode("ascii")
