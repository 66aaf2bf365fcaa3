"""Inbound Bot Framework authentication: is this activity really from the Bot Connector?

Follows the Bot Framework's "Authenticate requests from the Bot Connector service" (bot-docs,
rest-api-authentication) and the SDK's ChannelValidation/EndorsementsValidator: RS256 only,
keys from the OpenID metadata's `jwks_uri`, `iss`, `aud` = our app id, expiry with 5 minutes of
skew, the `serviceurl` claim equal to the activity's, the signing key endorsed for the channel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
import requests
from pydantic import BaseModel, ConfigDict

from cards.actions import Activity
from cards.signing_keys import SigningKeyError, SigningKeys, decode

log = logging.getLogger(__name__)

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
BOT_FRAMEWORK_OPENID_METADATA = "https://login.botframework.com/v1/.well-known/openidconfiguration"
# The SDKs read `serviceurl`; accept the camelCase spelling some issuers (test tenants) use.
_SERVICE_URL_CLAIMS = ("serviceurl", "serviceUrl")


class BotAuthFailure(StrEnum):
    """Why a request was refused."""

    MISSING_HEADER = "missing_header"
    NOT_BEARER = "not_bearer"
    MALFORMED = "malformed"
    UNSIGNED = "unsigned"
    WRONG_ALGORITHM = "wrong_algorithm"
    UNKNOWN_KEY = "unknown_key"
    KEYS_UNAVAILABLE = "keys_unavailable"
    BAD_SIGNATURE = "bad_signature"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    MISSING_CLAIM = "missing_claim"
    SERVICE_URL_MISMATCH = "service_url_mismatch"
    CHANNEL_NOT_ENDORSED = "channel_not_endorsed"


class BotAuthError(Exception):
    """The request is not authenticated; answer 401 and process nothing.

    The message never contains the token.
    """

    def __init__(self, reason: BotAuthFailure, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


class Claims(BaseModel):
    """What a verified token says."""

    model_config = ConfigDict(frozen=True)

    issuer: str
    audience: str
    service_url: str
    channel_id: str
    key_id: str
    expires_at: datetime
    app_id: str | None = None
    """The calling service's app id (`appid` or `azp`), when present."""
    raw: dict[str, Any]
    """Every claim of the token."""


class BotFrameworkAuthenticator:
    """Verifies the Bearer JWT on each inbound activity against the Bot Framework's keys.

    Keys are fetched on first use, cached, refetched when older than `keys_max_age` and when a
    token names an unknown key id (at most once per `refresh_cooldown`, so a flood of forged
    kids cannot turn into a flood of fetches). Thread-safe.
    """

    def __init__(
        self,
        openid_metadata_url: str,
        app_id: str,
        session: requests.Session,
        *,
        issuers: Iterable[str] = (BOT_FRAMEWORK_ISSUER,),
        clock_skew: timedelta = timedelta(minutes=5),
        refresh_cooldown: timedelta = timedelta(seconds=30),
        keys_max_age: timedelta = timedelta(hours=24),
        http_timeout: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._app_id = app_id
        self._issuers = tuple(issuers)
        self._skew = clock_skew
        self._keys = SigningKeys(
            openid_metadata_url,
            session,
            source="Bot Framework",
            log=log,
            refresh_cooldown=refresh_cooldown.total_seconds(),
            max_age=keys_max_age.total_seconds(),
            http_timeout=http_timeout,
            monotonic=monotonic,
        )

    def authenticate(
        self, authorization_header: str | None, activity: Activity | tuple[str, str]
    ) -> Claims:
        """The verified claims of the request, or BotAuthError.

        `activity` is the inbound activity, or its `(service_url, channel_id)`.
        """
        service_url, channel_id = _addressing(activity)
        token = _bearer_token(authorization_header)
        header = _unverified_header(token)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise BotAuthError(BotAuthFailure.MALFORMED, "no key id (kid) in the token header")
        try:
            signing_key = self._keys.get(kid)
            if signing_key is None:
                raise BotAuthError(BotAuthFailure.UNKNOWN_KEY, f"no signing key {kid!r}")
            payload = decode(
                token,
                signing_key,
                audience=self._app_id,
                issuer=self._issuers,
                leeway=self._skew,
                require=("exp", "iss", "aud"),
            )
        except SigningKeyError as e:
            raise _bot_auth_error(e) from e

        claimed_url = next(
            (payload[c] for c in _SERVICE_URL_CLAIMS if isinstance(payload.get(c), str)), None
        )
        if claimed_url is None:
            raise BotAuthError(BotAuthFailure.MISSING_CLAIM, "no serviceurl claim")
        if _same_url(claimed_url) != _same_url(service_url):
            raise BotAuthError(
                BotAuthFailure.SERVICE_URL_MISMATCH,
                f"token is for {claimed_url!r}, activity says {service_url!r}",
            )
        if channel_id not in signing_key.endorsements:
            raise BotAuthError(
                BotAuthFailure.CHANNEL_NOT_ENDORSED,
                f"key {kid!r} is not endorsed for {channel_id!r}",
            )
        app_id = payload.get("appid") or payload.get("azp")
        return Claims(
            issuer=payload["iss"],
            audience=self._app_id,
            service_url=claimed_url,
            channel_id=channel_id,
            key_id=kid,
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
            app_id=app_id if isinstance(app_id, str) else None,
            raw=payload,
        )


def _bot_auth_error(e: SigningKeyError) -> BotAuthError:
    detail = f"{e.url}: {e.detail}" if e.url else e.detail
    return BotAuthError(BotAuthFailure(e.reason.value), detail)


def _addressing(activity: Activity | tuple[str, str]) -> tuple[str, str]:
    if isinstance(activity, Activity):
        service_url, channel_id = activity.service_url, activity.channel_id
    else:
        service_url, channel_id = activity
    if not service_url:
        raise BotAuthError(BotAuthFailure.MISSING_CLAIM, "the activity has no serviceUrl")
    if not channel_id:
        raise BotAuthError(BotAuthFailure.MISSING_CLAIM, "the activity has no channelId")
    return service_url, channel_id


def _bearer_token(header: str | None) -> str:
    if not header or not header.strip():
        raise BotAuthError(BotAuthFailure.MISSING_HEADER)
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BotAuthError(BotAuthFailure.NOT_BEARER)
    return token.strip()


def _unverified_header(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise BotAuthError(BotAuthFailure.MALFORMED, type(e).__name__) from e
    alg = header.get("alg")
    if not alg or str(alg).lower() == "none":
        raise BotAuthError(BotAuthFailure.UNSIGNED)
    if alg != "RS256":
        raise BotAuthError(BotAuthFailure.WRONG_ALGORITHM, f"alg {alg!r}")
    return header


def _same_url(url: str) -> str:
    # Teams sends serviceUrl with a trailing slash; the claim may lack it.
    return url.rstrip("/")
