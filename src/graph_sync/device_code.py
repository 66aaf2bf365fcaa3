"""Signing an admin in with MSAL's device-code flow, for the few calls Graph allows only on a
user's behalf (publishing to the org app catalog).

The admin opens the verification page on any device and types the code; we poll Entra until
they are done (v2-oauth2-device-code.md). The app registration must allow public client flows
(Entra → App registrations → Authentication → "Allow public client flows") and have the
delegated permission asked for (AppCatalog.Submit).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, SecretStr

from graph_sync.auth import MICROSOFT_LOGIN, LoginRedirectSession
from graph_sync.errors import AADSTS_ADVICE, EntraError

#: Least privileged delegated permission to publish and update org apps (teamsapp-publish.md).
APP_CATALOG_SUBMIT = "https://graph.microsoft.com/AppCatalog.Submit"
#: The broader alternative the same docs list; needs an admin's consent.
APP_CATALOG_READ_WRITE = "https://graph.microsoft.com/AppCatalog.ReadWrite.All"

# What to do for the errors this flow adds to those of graph_sync.errors.AADSTS_ADVICE.
DEVICE_CODE_ADVICE: dict[str, str] = {
    "authorization_declined": "The sign-in was declined. Run the command again and accept.",
    "expired_token": "Nobody signed in before the code expired (15 minutes). Run the command "
    "again and enter the new code.",
    "bad_verification_code": "Entra did not recognize the device code. Run the command again.",
    "authorization_pending": "Nobody finished signing in within the time allowed. Run the "
    "command again and enter the code sooner.",
    "invalid_client": "The app registration does not allow public client flows: in Entra → App "
    "registrations → the app → Authentication, set 'Allow public client flows' to Yes.",
}


class DeviceCodeError(EntraError):
    """The device-code sign-in did not give a token."""

    @property
    def advice(self) -> str:
        """What the person signing in should do."""
        if self.code in DEVICE_CODE_ADVICE and self.aadsts not in AADSTS_ADVICE:
            return DEVICE_CODE_ADVICE[self.code]
        return super().advice


class DeviceCodePrompt(BaseModel):
    """What to show the admin: where to go and which code to type."""

    model_config = ConfigDict(frozen=True)

    verification_uri: str
    """The page to open, e.g. https://microsoft.com/devicelogin."""
    user_code: str
    """The short code to type there."""
    message: str
    """Entra's own sentence saying both."""
    expires_in: int
    """Seconds before the code expires."""


class SignedInUser(BaseModel):
    """A delegated access token for Microsoft Graph and who it speaks for."""

    model_config = ConfigDict(frozen=True)

    access_token: SecretStr
    """Bearer token for Graph; never logged."""
    username: str | None
    """The signed-in user's UPN (from the ID token), when Entra sent one."""
    scopes: tuple[str, ...]
    """The scopes the token holds, as Entra listed them."""
    expires_in: int
    """Seconds the token is valid for."""


def sign_in_with_device_code(
    tenant_id: str,
    client_id: str,
    *,
    show: Callable[[DeviceCodePrompt], None],
    scopes: Sequence[str] = (APP_CATALOG_SUBMIT,),
    login_base_url: str = MICROSOFT_LOGIN,
    timeout: float | None = None,
    http_timeout: float = 30.0,
) -> SignedInUser:
    """Sign a user in: `show` gets the prompt, then we poll until they finish (or `timeout`
    seconds pass, or the code expires). Raises DeviceCodeError with advice on any refusal."""
    import msal

    http_client: requests.Session | None = None
    if login_base_url.rstrip("/") != MICROSOFT_LOGIN:
        http_client = LoginRedirectSession(login_base_url)
    application = msal.PublicClientApplication(
        client_id,
        authority=f"{MICROSOFT_LOGIN}/{tenant_id}",
        http_client=http_client,
        timeout=http_timeout,
    )
    try:
        flow: dict[str, Any] = application.initiate_device_flow(scopes=list(scopes))
    except ValueError as e:
        # MSAL raises ValueError when the tenant's metadata cannot be read (AADSTS90002).
        raise DeviceCodeError("invalid_tenant", 90002, str(e)) from e
    except requests.RequestException as e:
        raise DeviceCodeError("unreachable", None, f"Entra did not answer: {e}") from e
    if "user_code" not in flow:
        raise _failure(flow)
    show(
        DeviceCodePrompt(
            verification_uri=str(flow.get("verification_uri", "")),
            user_code=str(flow["user_code"]),
            message=str(flow.get("message", "")),
            expires_in=int(flow.get("expires_in", 900)),
        )
    )
    # MSAL waits `interval` seconds per poll and checks its deadline only while waiting.
    flow["interval"] = max(1, int(flow.get("interval", 5)))
    if timeout is not None:
        # MSAL polls until flow["expires_at"]; an earlier deadline stops it sooner.
        flow["expires_at"] = min(float(flow["expires_at"]), time.time() + timeout)
    try:
        result: dict[str, Any] = application.acquire_token_by_device_flow(flow)
    except requests.RequestException as e:
        raise DeviceCodeError("unreachable", None, f"Entra did not answer: {e}") from e
    token = result.get("access_token")
    if not isinstance(token, str):
        raise _failure(result)
    claims = result.get("id_token_claims") or {}
    username = claims.get("preferred_username") if isinstance(claims, dict) else None
    return SignedInUser(
        access_token=SecretStr(token),
        username=str(username) if username else None,
        scopes=tuple(str(result.get("scope", "")).split()),
        expires_in=int(result.get("expires_in", 0)),
    )


def _failure(answer: dict[str, Any]) -> DeviceCodeError:
    error = str(answer.get("error") or "no_token")
    description = str(answer.get("error_description") or "")
    codes = answer.get("error_codes")
    aadsts = int(codes[0]) if isinstance(codes, list) and codes else None
    return DeviceCodeError(error, aadsts, description)
