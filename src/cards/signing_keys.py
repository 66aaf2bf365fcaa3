"""RS256 tokens checked against an issuer's signing keys, fetched from its OpenID metadata.

Shared by the Bot Framework authenticator (`cards.auth`) and the tab's SSO validator
(`connector.teams.sso`). This module fetches and caches the keys and turns PyJWT's errors into
reasons; each caller keeps its own header, issuer, audience and claim checks and its own errors.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

import jwt
import requests


class KeyFailure(StrEnum):
    """Why a token or its keys were refused; each caller's own failure enum has these values."""

    MALFORMED = "malformed"
    WRONG_ALGORITHM = "wrong_algorithm"
    KEYS_UNAVAILABLE = "keys_unavailable"
    BAD_SIGNATURE = "bad_signature"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    MISSING_CLAIM = "missing_claim"


class SigningKeyError(Exception):
    """A token or the keys to check it are refused; the message never contains the token."""

    def __init__(self, reason: KeyFailure, detail: str = "", *, url: str | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail
        self.url = url
        """The metadata or keys document that could not be read, when that is the failure."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    key: jwt.PyJWK
    issuer: str | None
    """The metadata's `issuer`, when it names one."""
    endorsements: frozenset[str]
    """The channels the key is endorsed for (the Bot Framework's addition to JWKS)."""


class SigningKeys:
    """An issuer's RS256 signing keys by key id, from `metadata_url`'s `jwks_uri`.

    Fetched on first use, cached, fetched again when older than `max_age` and when a token
    names an unknown key id (at most once per `refresh_cooldown`, so a flood of forged kids
    cannot turn into a flood of fetches). A failed refresh keeps the cached keys. Thread-safe.
    """

    def __init__(
        self,
        metadata_url: str,
        session: requests.Session,
        *,
        source: str,
        log: logging.Logger,
        required_metadata: Sequence[str] = (),
        refresh_cooldown: float,
        max_age: float,
        http_timeout: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metadata_url = metadata_url
        self._session = session
        self._source = source  # who issues the keys, for the log: "Entra", "Bot Framework"
        self._log = log
        self._required = tuple(required_metadata)
        self._cooldown = refresh_cooldown
        self._max_age = max_age
        self._timeout = http_timeout
        self._monotonic = monotonic
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def get(self, kid: str) -> SigningKey | None:
        """The key `kid`, None when the issuer has no such key; SigningKeyError when no keys
        could be fetched at all."""
        with self._lock:
            now = self._monotonic()
            stale = self._fetched_at is None or now - self._fetched_at >= self._max_age
            may_refetch = self._fetched_at is None or now - self._fetched_at >= self._cooldown
            if stale or (kid not in self._keys and may_refetch):
                self._refresh(now)
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        try:
            metadata = self._get_json(self._metadata_url)
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise SigningKeyError(KeyFailure.KEYS_UNAVAILABLE, "metadata has no jwks_uri")
            jwks = self._get_json(jwks_uri)
            for field in self._required:
                if not isinstance(metadata.get(field), str):
                    raise SigningKeyError(
                        KeyFailure.KEYS_UNAVAILABLE, f"no {field} in the metadata"
                    )
        except SigningKeyError:
            if not self._keys:
                raise
            # Keep serving the cached keys when a refresh fails; retry after the cooldown.
            self._log.warning(
                "%s signing keys could not be refreshed; keeping the cached keys", self._source
            )
            self._fetched_at = now - self._max_age + self._cooldown
            return
        issuer = metadata.get("issuer")
        keys: dict[str, SigningKey] = {}
        for entry in jwks.get("keys", []):
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            try:
                key = jwt.PyJWK(entry, algorithm="RS256")
            except jwt.PyJWTError:
                self._log.warning(
                    "skipping an unusable %s signing key %s", self._source, entry.get("kid")
                )
                continue
            endorsements = entry.get("endorsements", [])
            keys[entry["kid"]] = SigningKey(
                key,
                issuer if isinstance(issuer, str) else None,
                frozenset(e for e in endorsements if isinstance(e, str)),
            )
        self._keys = keys
        self._fetched_at = now
        self._log.info("%s signing keys refreshed: %d keys", self._source, len(keys))

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = self._session.get(url, timeout=self._timeout)
            response.raise_for_status()
            body = response.json()
        except (requests.RequestException, ValueError) as e:
            raise SigningKeyError(KeyFailure.KEYS_UNAVAILABLE, type(e).__name__, url=url) from e
        if not isinstance(body, dict):
            raise SigningKeyError(KeyFailure.KEYS_UNAVAILABLE, "not a JSON object", url=url)
        return body


def decode(
    token: str,
    key: SigningKey,
    *,
    audience: str | Sequence[str],
    issuer: str | Sequence[str],
    leeway: float | timedelta,
    require: Sequence[str],
) -> dict[str, Any]:
    """The claims of an RS256 `token` signed with `key`, for `audience`, from `issuer`, not
    expired (with `leeway`) and holding every claim in `require`; SigningKeyError otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": list(require)},
        )
    except jwt.InvalidSignatureError as e:
        raise SigningKeyError(KeyFailure.BAD_SIGNATURE) from e
    except jwt.ExpiredSignatureError as e:
        raise SigningKeyError(KeyFailure.EXPIRED) from e
    except jwt.ImmatureSignatureError as e:
        raise SigningKeyError(KeyFailure.NOT_YET_VALID) from e
    except jwt.InvalidAudienceError as e:
        raise SigningKeyError(KeyFailure.WRONG_AUDIENCE) from e
    except jwt.InvalidIssuerError as e:
        raise SigningKeyError(KeyFailure.WRONG_ISSUER) from e
    except jwt.MissingRequiredClaimError as e:
        raise SigningKeyError(KeyFailure.MISSING_CLAIM, e.claim) from e
    except jwt.InvalidAlgorithmError as e:
        raise SigningKeyError(KeyFailure.WRONG_ALGORITHM) from e
    except jwt.PyJWTError as e:
        raise SigningKeyError(KeyFailure.MALFORMED, type(e).__name__) from e
    return claims
