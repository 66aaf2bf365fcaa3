"""The sandbox as the Bot Connector service towards the bot: its own signing key, its OpenID
metadata, and signed POSTs of activities to the bot's endpoint.

Real Teams traffic reaches a bot signed by the Bot Connector with keys published at
`https://login.botframework.com/v1/.well-known/openidconfiguration` (bot-docs,
rest-api-authentication "Connector to bot"): RS256, `iss` https://api.botframework.com,
`aud` the bot's app id, a `serviceurl` claim, keys carrying `endorsements` (channel ids).
The sandbox does the same with a key of its own, published under `/botframework/v1/`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
METADATA_PATH = "/botframework/v1/.well-known/openidconfiguration"
KEYS_PATH = "/botframework/v1/.well-known/keys"
CHANNEL_ID = "msteams"
BOT_TIMEOUT_SECONDS = 15.0
"""Teams waits about 15 s for a bot's answer to an invoke before showing an error."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class ChannelKeys:
    """The key the sandbox signs activities with, and the metadata that publishes it."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = _b64url(hashlib.sha256(der).digest()[:20])

    def metadata(self, base_url: str) -> dict[str, Any]:
        """The OpenID metadata, as login.botframework.com serves it."""
        base = base_url.rstrip("/")
        return {
            "issuer": BOT_FRAMEWORK_ISSUER,
            "authorization_endpoint": "https://invalid.botframework.com",
            "jwks_uri": f"{base}{KEYS_PATH}",
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        }

    def jwks(self) -> dict[str, Any]:
        """The public key, endorsed for Teams."""
        numbers = self._key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.kid,
                    "n": _uint(numbers.n),
                    "e": _uint(numbers.e),
                    "endorsements": [CHANNEL_ID],
                }
            ]
        }

    def sign(self, bot_id: str, service_url: str, *, lifetime: timedelta | None = None) -> str:
        """A token for one activity to the bot (valid an hour, like the Connector's)."""
        now = datetime.now(UTC)
        claims = {
            "iss": BOT_FRAMEWORK_ISSUER,
            "aud": bot_id,
            "serviceurl": service_url,
            "nbf": int(now.timestamp()) - 5,
            "iat": int(now.timestamp()),
            "exp": int((now + (lifetime or timedelta(hours=1))).timestamp()),
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})


@dataclass(frozen=True)
class BotAnswer:
    """How the bot answered an activity."""

    status: int
    """HTTP status; 0 when it could not be reached."""
    body: Any
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """For the control API."""
        answer: dict[str, Any] = {"status": self.status, "body": self.body}
        if self.error:
            answer["error"] = self.error
        return answer


def post_to_bot(
    endpoint: str, activity: dict[str, Any], token: str | None, http: requests.Session
) -> BotAnswer:
    """POST an activity to the bot, as the Connector does; never raises."""
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        answer = http.post(
            endpoint, data=json.dumps(activity), headers=headers, timeout=BOT_TIMEOUT_SECONDS
        )
    except requests.RequestException as e:
        return BotAnswer(0, None, f"{type(e).__name__}: the bot did not answer")
    try:
        body = answer.json() if answer.content else None
    except ValueError:
        body = answer.text[:2000]
    return BotAnswer(answer.status_code, body)
