"""API keys: created once, shown once, stored only as a SHA-256 hash.

Keys are 256 bits of randomness, so a fast hash is enough (no password stretching needed):
an attacker with the table still has to guess 2^256 values. Lookup is by a short public
prefix, comparison in constant time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.store.models import ApiKey, utcnow

Scope = Literal["read", "write", "metrics"]  # metrics: /metrics only, nothing else
KEY_PREFIX = "dbk"
_TOUCH_EVERY = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Caller:
    """Who is calling the API, and what they may do."""

    name: str
    scopes: frozenset[str]

    def may(self, scope: Scope) -> bool:
        # write implies read: a CRM that pushes deals may also read them back
        return scope in self.scopes or (scope == "read" and "write" in self.scopes)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, name: str, scope: Scope) -> str:
    """Store a new key and return it in plain text, the only time it exists."""
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    session.add(ApiKey(name=name, prefix=prefix, key_hash=hash_key(key), scopes=scope))
    return key


def find_caller(session: Session, key: str, extra_key: str | None = None) -> Caller | None:
    """The caller a key belongs to, or None. ``extra_key`` is DEALBRIDGE_API_KEY."""
    if extra_key and hmac.compare_digest(key.encode(), extra_key.encode()):
        return Caller(name="DEALBRIDGE_API_KEY", scopes=frozenset({"read", "write"}))
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    digest = hash_key(key)
    for stored in session.scalars(
        select(ApiKey).where(ApiKey.prefix == parts[1], ApiKey.revoked_at.is_(None))
    ):
        if hmac.compare_digest(stored.key_hash, digest):
            now = utcnow()
            if stored.last_used_at is None or now - stored.last_used_at > _TOUCH_EVERY:
                stored.last_used_at = now
            return Caller(name=f"key:{stored.name}", scopes=frozenset(stored.scopes.split()))
    return None
