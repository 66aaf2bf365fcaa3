"""App-only tokens from Entra through MSAL: one ConfidentialClientApplication, cache first."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from graph_sync.errors import EntraError

if TYPE_CHECKING:
    from msal import ConfidentialClientApplication

log = logging.getLogger(__name__)

MICROSOFT_LOGIN = "https://login.microsoftonline.com"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
BOT_SCOPE = "https://api.botframework.com/.default"


class CertificateCredential(BaseModel):
    """A certificate registered on the app: its private key (PEM file) and SHA-1 thumbprint."""

    model_config = ConfigDict(frozen=True)

    private_key_path: Path
    """PEM file holding the private key (and optionally the certificate)."""
    thumbprint: str
    """Hex SHA-1 thumbprint of the certificate, as the app registration shows it."""


class GraphCredentials(BaseModel):
    """Who DealBridge is to Entra: tenant, app (client) id, and a secret or a certificate."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    """Directory (tenant) GUID or a verified domain."""
    client_id: str
    """Application (client) id of the app registration."""
    client_secret: SecretStr | None = None
    """Client secret value; or use `certificate`."""
    certificate: CertificateCredential | None = None
    """Certificate credential; preferred over a secret when both are set."""
    login_base_url: str = Field(default=MICROSOFT_LOGIN)
    """Entra's host; the sandbox's base URL in tests and the demo."""


class LoginRedirectSession(requests.Session):
    """Sends MSAL's requests for login.microsoftonline.com to another base URL (the sandbox).

    MSAL refuses http:// authorities (ARCHITECTURE.md), so the authority string stays
    Microsoft's and only the transport is pointed elsewhere.
    """

    def __init__(self, login_base_url: str) -> None:
        super().__init__()
        self.login_base_url = login_base_url.rstrip("/")

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        target = url.decode() if isinstance(url, bytes) else url
        if target.startswith(MICROSOFT_LOGIN):
            target = self.login_base_url + target[len(MICROSOFT_LOGIN) :]
        return super().request(method, target, *args, **kwargs)


class AccessTokens(Protocol):
    """What GraphClient asks for a bearer token."""

    def token(self, scopes: list[str] | str = GRAPH_SCOPE) -> str:
        """An access token for `scopes`."""
        ...


class SignedInUserToken:
    """A delegated token a user signed in for (device code): given as is, never refreshed."""

    def __init__(self, access_token: SecretStr) -> None:
        self._access_token = access_token

    def token(self, scopes: list[str] | str = GRAPH_SCOPE) -> str:
        """The user's token, whatever the scopes (it carries the scopes they consented to)."""
        return self._access_token.get_secret_value()


class TokenProvider:
    """Gets app-only access tokens; thread-safe; MSAL's in-memory cache is read first."""

    def __init__(self, credentials: GraphCredentials, *, timeout: float = 30.0) -> None:
        if credentials.client_secret is None and credentials.certificate is None:
            raise ValueError("GraphCredentials need a client_secret or a certificate")
        self.credentials = credentials
        self._timeout = timeout
        self._lock = threading.Lock()
        self._app: ConfidentialClientApplication | None = None

    def _client_credential(self) -> str | dict[str, str]:
        certificate = self.credentials.certificate
        if certificate is not None:
            return {
                "private_key": certificate.private_key_path.read_text(encoding="utf-8"),
                "thumbprint": certificate.thumbprint,
            }
        assert self.credentials.client_secret is not None
        return self.credentials.client_secret.get_secret_value()

    def _application(self) -> ConfidentialClientApplication:
        if self._app is None:
            import msal

            http_client: requests.Session | None = None
            if self.credentials.login_base_url.rstrip("/") != MICROSOFT_LOGIN:
                http_client = LoginRedirectSession(self.credentials.login_base_url)
            self._app = msal.ConfidentialClientApplication(
                self.credentials.client_id,
                client_credential=self._client_credential(),
                authority=f"{MICROSOFT_LOGIN}/{self.credentials.tenant_id}",
                http_client=http_client,
                timeout=self._timeout,
            )
        return self._app

    def token(self, scopes: list[str] | str = GRAPH_SCOPE) -> str:
        """An access token for `scopes` (e.g. GRAPH_SCOPE, BOT_SCOPE); raises EntraError."""
        wanted = [scopes] if isinstance(scopes, str) else list(scopes)
        with self._lock:
            try:
                result = self._application().acquire_token_for_client(wanted)
            except ValueError as e:
                # MSAL raises ValueError when the tenant's metadata cannot be read: Entra's
                # openid-configuration answers AADSTS90002 for an unknown tenant.
                raise EntraError("invalid_tenant", 90002, str(e)) from e
            except requests.RequestException as e:
                raise EntraError("unreachable", None, f"Entra did not answer: {e}") from e
        if not isinstance(result, dict):
            raise EntraError("no_result", None, "MSAL returned no result")
        access_token = result.get("access_token")
        if isinstance(access_token, str):
            return access_token
        error = str(result.get("error") or "unknown_error")
        description = str(result.get("error_description") or "")
        codes = result.get("error_codes")
        aadsts = int(codes[0]) if isinstance(codes, list) and codes else None
        # The code comes from Entra's error_codes, never from the description's words.
        failure = EntraError(error, aadsts, description)
        log.warning("Entra refused a token: %s AADSTS%s", failure.code, failure.aadsts)
        raise failure
