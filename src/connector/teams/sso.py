"""Teams single sign-on for the "My deals" tab: is this bearer token Entra's, for us, for our
tenant, and whose?

The tab asks the Teams JS SDK for a token (``authentication.getAuthToken``); Teams gets it from
Entra for the manifest's ``webApplicationInfo.resource`` (``api://{public host}/{client id}``)
and the tab sends it with each request. Checked as the Bot Framework JWT is
(``cards.auth``; both through ``cards.signing_keys``): RS256 only; the key by ``kid`` from the
tenant's OpenID metadata (``{login}/{tenant}/v2.0/.well-known/openid-configuration`` →
``jwks_uri``), cached, fetched again for an unknown ``kid`` at most every 30 s; ``iss`` the
metadata's issuer; ``aud`` our resource (or our client id, which Entra also uses for v2.0
tokens); expiry with 5 minutes of skew; ``tid`` our tenant; ``scp`` containing
``access_as_user``; an ``oid``. Anything else is
refused, and the reason is logged, never the token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import jwt
import requests

from cards.signing_keys import SigningKeyError, SigningKeys, decode
from connector.settings import MICROSOFT_LOGIN, Settings
from graph_sync.auth import LoginRedirectSession
from manifest.build import public_domain

log = logging.getLogger(__name__)
SCOPE = "access_as_user"


class TabAuthFailure(StrEnum):
    MISSING_HEADER = "missing_header"
    MALFORMED = "malformed"
    WRONG_ALGORITHM = "wrong_algorithm"
    UNKNOWN_KEY = "unknown_key"
    KEYS_UNAVAILABLE = "keys_unavailable"
    BAD_SIGNATURE = "bad_signature"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_TENANT = "wrong_tenant"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    MISSING_CLAIM = "missing_claim"
    MISSING_SCOPE = "missing_scope"
    NOT_CONFIGURED = "not_configured"


class TabAuthError(Exception):
    """The tab's token is refused (401); the message never holds the token."""

    def __init__(self, reason: TabAuthFailure, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason


@dataclass(frozen=True)
class TabUser:
    """Who the verified token is for."""

    oid: str
    username: str | None
    name: str | None
    tenant_id: str


def tab_resource(settings: Settings) -> str | None:
    """The manifest's ``webApplicationInfo.resource``: ``api://{public host}/{client id}``."""
    if not settings.public_url or not settings.client_id:
        return None
    return f"api://{public_domain(settings.public_url)}/{settings.client_id}"


class TabTokenValidator:
    """Validates tab SSO tokens against the tenant's Entra keys. Thread-safe."""

    def __init__(
        self,
        metadata_url: str,
        audiences: Sequence[str],
        http: requests.Session,
        *,
        clock_skew: float = 300.0,
        refresh_cooldown: float = 30.0,
        keys_max_age: float = 24 * 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._audiences = list(audiences)
        self._skew = clock_skew
        self._keys = SigningKeys(
            metadata_url,
            http,
            source="Entra",
            log=log,
            required_metadata=("issuer",),
            refresh_cooldown=refresh_cooldown,
            max_age=keys_max_age,
            monotonic=monotonic,
        )

    @classmethod
    def for_settings(cls, settings: Settings) -> TabTokenValidator:
        tenant = settings.tenant_id or "organizations"
        url = f"{MICROSOFT_LOGIN}/{tenant}/v2.0/.well-known/openid-configuration"
        http: requests.Session = (
            LoginRedirectSession(settings.login_base_url)
            if settings.login_base_url.rstrip("/") != MICROSOFT_LOGIN
            else requests.Session()
        )
        resource = tab_resource(settings)
        audiences = [a for a in (resource, settings.client_id) if a]
        return cls(url, audiences, http)

    def validate(self, authorization: str | None) -> TabUser:
        if not self._audiences:
            raise TabAuthError(TabAuthFailure.NOT_CONFIGURED, "no public URL or client id")
        token = _bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise TabAuthError(TabAuthFailure.MALFORMED, type(e).__name__) from e
        if header.get("alg") != "RS256":
            raise TabAuthError(TabAuthFailure.WRONG_ALGORITHM, str(header.get("alg"))[:20])
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TabAuthError(TabAuthFailure.MALFORMED, "no kid")
        try:
            key = self._keys.get(kid)
            if key is None or key.issuer is None:
                raise TabAuthError(TabAuthFailure.UNKNOWN_KEY)
            claims = decode(
                token,
                key,
                audience=self._audiences,
                issuer=key.issuer,
                leeway=self._skew,
                require=("exp", "iss", "aud", "tid"),
            )
        except SigningKeyError as e:
            # the URL of keys that could not be fetched is not the tab's to say
            raise TabAuthError(TabAuthFailure(e.reason.value), e.detail) from e
        expected_tid = _tenant_of(key.issuer)
        if str(claims.get("tid", "")).lower() != expected_tid:
            raise TabAuthError(TabAuthFailure.WRONG_TENANT)
        scopes = str(claims.get("scp", "")).split()
        if SCOPE not in scopes:
            raise TabAuthError(TabAuthFailure.MISSING_SCOPE)
        oid = claims.get("oid")
        if not isinstance(oid, str) or not oid:
            raise TabAuthError(TabAuthFailure.MISSING_CLAIM, "oid")
        username = claims.get("preferred_username")
        name = claims.get("name")
        return TabUser(
            oid=oid.lower(),
            username=username.lower() if isinstance(username, str) else None,
            name=name if isinstance(name, str) else None,
            tenant_id=expected_tid,
        )


def _bearer(header: str | None) -> str:
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TabAuthError(TabAuthFailure.MISSING_HEADER)
    return token.strip()


def _tenant_of(issuer: str) -> str:
    """The tenant id in an Entra v2.0 issuer (``https://login.../{tid}/v2.0``)."""
    parts = issuer.rstrip("/").split("/")
    return parts[-2].lower() if len(parts) >= 2 else ""
