"""Signing a person in with Entra ID: MSAL's authorization-code flow with PKCE (the admin console).

`begin` gives the flow to keep (state, nonce, PKCE verifier; MSAL makes them) and the address
to send the browser to; `finish` redeems the code MSAL checks against the flow (state, nonce)
and returns who signed in, from an id_token whose signature, audience, issuer and lifetime we
check ourselves: MSAL 1.38+ no longer validates id_tokens (MSAL Python issue #911).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jwt
import requests
from pydantic import BaseModel, ConfigDict, SecretStr

from graph_sync.auth import MICROSOFT_LOGIN, LoginRedirectSession

if TYPE_CHECKING:
    from msal import ConfidentialClientApplication

SIGN_IN_SCOPES = ["User.Read"]
"""Asked for at sign-in (MSAL adds openid, profile and offline_access)."""


class SignInError(Exception):
    """The sign-in did not finish: Entra's or MSAL's error code and what it said."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


class SignedInPerson(BaseModel):
    """Who signed in, from the checked id_token."""

    model_config = ConfigDict(frozen=True)

    object_id: str
    """`oid`: the user's object id in the tenant."""
    username: str
    """`preferred_username`: the UPN they signed in with."""
    name: str
    """`name`: the display name."""
    tenant_id: str
    """`tid`."""
    roles: tuple[str, ...]
    """`roles`: the app roles assigned to them on this app."""


class AuthCodeSignIn:
    """One confidential client for the sign-in flow (the app's own credentials)."""

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        login_base_url: str = MICROSOFT_LOGIN,
        timeout: float = 15.0,
    ) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._secret = client_secret
        self.login_base_url = login_base_url.rstrip("/")
        self._timeout = timeout
        self._http: requests.Session = (
            LoginRedirectSession(self.login_base_url)
            if self.login_base_url != MICROSOFT_LOGIN
            else requests.Session()
        )
        self._app: ConfidentialClientApplication | None = None

    def _application(self) -> ConfidentialClientApplication:
        if self._app is None:
            import msal

            self._app = msal.ConfidentialClientApplication(
                self.client_id,
                client_credential=self._secret.get_secret_value(),
                authority=f"{MICROSOFT_LOGIN}/{self.tenant_id}",
                http_client=self._http,
                timeout=self._timeout,
            )
        return self._app

    def begin(self, redirect_uri: str, login_hint: str | None = None) -> tuple[dict[str, Any], str]:
        """(the flow to keep until the browser comes back, the address to send it to);
        ``login_hint`` names who is expected to sign in (Entra skips the account picker)."""
        try:
            with warnings.catch_warnings():
                # MSAL recommends response_mode=form_post (RFC 9700 4.3.1). We keep the query:
                # Entra's form post is a cross-site POST, which does not carry the SameSite=Lax
                # cookie holding the flow; PKCE binds the code to this flow's verifier, and the
                # callback redirects at once so the code leaves the address bar.
                warnings.filterwarnings("ignore", "response_mode='form_post'", UserWarning)
                flow: dict[str, Any] = self._application().initiate_auth_code_flow(
                    SIGN_IN_SCOPES,
                    redirect_uri=redirect_uri,
                    login_hint=login_hint,
                    prompt=None if login_hint else "select_account",
                )
        except (ValueError, requests.RequestException) as e:
            raise SignInError("unreachable", f"Entra's metadata could not be read: {e}") from e
        url = str(flow["auth_uri"])
        if self.login_base_url != MICROSOFT_LOGIN and url.startswith(MICROSOFT_LOGIN):
            # The browser goes where MSAL's transport goes (the sandbox); see LoginRedirectSession.
            url = self.login_base_url + url[len(MICROSOFT_LOGIN) :]
        return flow, url

    def finish(self, flow: Mapping[str, Any], answer: Mapping[str, str]) -> SignedInPerson:
        """Redeem the code in Entra's answer (the redirect's query) and check the id_token."""
        try:
            result = self._application().acquire_token_by_auth_code_flow(dict(flow), dict(answer))
        except ValueError as e:  # MSAL: state mismatch, nonce mismatch, a flow reused
            raise SignInError("invalid_flow", str(e)) from e
        except requests.RequestException as e:
            raise SignInError("unreachable", f"Entra did not answer: {e}") from e
        if "error" in result:
            raise SignInError(str(result["error"]), str(result.get("error_description", "")))
        id_token = result.get("id_token")
        if not isinstance(id_token, str):
            raise SignInError("no_id_token", "Entra sent no id_token")
        claims = self._checked(id_token)
        return SignedInPerson(
            object_id=str(claims.get("oid", "")),
            username=str(claims.get("preferred_username", "")).lower(),
            name=str(claims.get("name", "")),
            tenant_id=str(claims.get("tid", "")),
            roles=tuple(str(r) for r in claims.get("roles", []) or []),
        )

    def _checked(self, id_token: str) -> dict[str, Any]:
        base = f"{MICROSOFT_LOGIN}/{self.tenant_id}"
        metadata = self._get(f"{base}/v2.0/.well-known/openid-configuration")
        keys = self._get(str(metadata["jwks_uri"]))
        try:
            kid = jwt.get_unverified_header(id_token).get("kid")
            key = next(jwt.PyJWK(k).key for k in keys.get("keys", []) if k.get("kid") == kid)
        except (StopIteration, jwt.PyJWTError) as e:
            raise SignInError("invalid_id_token", "no key of the tenant signed it") from e
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=["RS256"],
                audience=self.client_id,
                issuer=str(metadata["issuer"]),
                options={"require": ["exp", "iat", "aud", "iss", "tid", "oid"]},
                leeway=120,
            )
        except jwt.PyJWTError as e:
            raise SignInError("invalid_id_token", str(e)) from e
        return claims

    def _get(self, url: str) -> dict[str, Any]:
        try:
            answer = self._http.get(url, timeout=self._timeout)
            answer.raise_for_status()
            body: dict[str, Any] = json.loads(answer.content)
        except (requests.RequestException, ValueError) as e:
            raise SignInError("unreachable", f"{url}: {e}") from e
        return body

    def close(self) -> None:
        self._http.close()
