"""The sandbox tenant's Entra authority: its signing key, app tokens, and token errors.

The tenant builds it and `sandbox.identity`'s routes use it, so it never imports the tenant.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sandbox import timezones

GRAPH_RESOURCES = ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")
GRAPH_AUDIENCE = "https://graph.microsoft.com"
BOT_AUDIENCE = "https://api.botframework.com"
_RESERVED_SCOPES = {"openid", "profile", "offline_access", "email"}


class TokenRequestError(Exception):
    """An Entra token error: HTTP status, OAuth `error`, AADSTS code and its description."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(f"{error}: AADSTS{code}")
        self.status = status
        self.error = error
        self.code = code
        self.description = description


class InvalidTokenError(Exception):
    """A bearer token Graph refuses; the message is the one Graph puts in its 401."""


@dataclass(frozen=True)
class AppToken:
    """An access token issued to the app, with the claims Graph checks."""

    access_token: str
    expires_in: int


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class Authority:
    """The tenant's token issuer: one signing key made at start, the app's credentials, roles."""

    def __init__(
        self,
        tenant_id: str,
        domains: tuple[str, ...],
        client_id: str,
        client_secret: str,
        login_base: str,
        token_lifetime: int,
    ) -> None:
        self.tenant_id = tenant_id.lower()
        self.domains = tuple(d.lower() for d in domains)
        self.client_id = client_id
        self._client_secret = client_secret
        self.login_base = login_base.rstrip("/")
        self.token_lifetime = token_lifetime
        self.service_principal_id = str(uuid.uuid5(uuid.UUID(tenant_id), client_id))
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._certificate = _self_signed(self._key)
        der = self._certificate.public_bytes(serialization.Encoding.DER)
        self.kid = _b64url(hashlib.sha1(der).digest())  # noqa: S324 - x5t is SHA-1 by definition (RFC 7517)
        self._x5c = base64.b64encode(der).decode("ascii")
        self._public_pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    # --- metadata --------------------------------------------------------------------------

    def knows_tenant(self, tenant: str) -> bool:
        """Whether a path's tenant segment names this tenant (its id or a verified domain)."""
        return tenant.lower() == self.tenant_id or tenant.lower() in self.domains

    def openid_configuration(self) -> dict[str, Any]:
        """`/{tenant}/v2.0/.well-known/openid-configuration`, as Entra publishes it."""
        base = f"{self.login_base}/{self.tenant_id}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def instance_discovery(self, authorization_endpoint: str | None) -> dict[str, Any]:
        """`/common/discovery/instance`: where the tenant's metadata is, and the host aliases."""
        tenant = "common"
        if authorization_endpoint:
            parts = urlparse(authorization_endpoint).path.strip("/").split("/")
            tenant = parts[0] if parts and parts[0] else "common"
        return {
            "tenant_discovery_endpoint": (
                f"{self.login_base}/{tenant}/v2.0/.well-known/openid-configuration"
            ),
            "api-version": "1.1",
            "metadata": [
                {
                    "preferred_network": "login.microsoftonline.com",
                    "preferred_cache": "login.windows.net",
                    "aliases": [
                        "login.microsoftonline.com",
                        "login.windows.net",
                        "login.microsoft.com",
                        "sts.windows.net",
                    ],
                }
            ],
        }

    def jwks(self) -> dict[str, Any]:
        """The tenant's signing keys (`jwks_uri`)."""
        numbers = self._key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.kid,
                    "x5t": self.kid,
                    "n": _uint(numbers.n),
                    "e": _uint(numbers.e),
                    "x5c": [self._x5c],
                    "cloud_instance_name": "microsoftonline.com",
                    "issuer": f"{self.login_base}/{self.tenant_id}/v2.0",
                }
            ]
        }

    # --- tokens ----------------------------------------------------------------------------

    def issue(
        self, form: dict[str, str], basic_auth: tuple[str, str] | None, roles: tuple[str, ...]
    ) -> AppToken:
        """The client-credentials grant, refusing what Entra refuses, with Entra's AADSTS codes."""
        grant = form.get("grant_type", "")
        if grant != "client_credentials":
            raise TokenRequestError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'. "
                "The sandbox tenant supports client_credentials.",
            )
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        if basic_auth is not None:
            client_id, secret = basic_auth
        if client_id.lower() != self.client_id.lower():
            raise TokenRequestError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant.",
            )
        if "client_assertion" in form:
            raise TokenRequestError(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation. "
                "The sandbox tenant's app has a client secret only.",
            )
        self._verify_secret(
            secret,
            "Invalid client secret provided. Ensure the secret being sent in the request is "
            "the client secret value, not the client secret ID, for a secret added to app "
            f"'{self.client_id}'.",
        )
        audience = self._audience(form.get("scope", ""))
        return AppToken(self._sign(audience, roles), self.token_lifetime)

    def _audience(self, scope: str) -> str:
        scopes = [s for s in scope.split() if s.lower() not in _RESERVED_SCOPES]
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise TokenRequestError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must "
                "have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        resource = scopes[0].removesuffix("/.default").rstrip("/")
        if resource.lower() in GRAPH_RESOURCES:
            return GRAPH_AUDIENCE
        if resource.lower() == BOT_AUDIENCE:
            return BOT_AUDIENCE
        raise TokenRequestError(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named "
            f"{self.tenant_id}. This can happen if the application has not been installed by the "
            "administrator of the tenant or consented to by any user in the tenant.",
        )

    def _sign(self, audience: str, roles: tuple[str, ...]) -> str:
        now = datetime.now(UTC)
        issuer = f"https://sts.windows.net/{self.tenant_id}/"
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": issuer,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self.token_lifetime)).timestamp()),
            "app_displayname": "DealBridge",
            "appid": self.client_id,
            "appidacr": "1",
            "idp": issuer,
            "idtyp": "app",
            "oid": self.service_principal_id,
            "sub": self.service_principal_id,
            "tid": self.tenant_id,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "1.0",
        }
        if audience == GRAPH_AUDIENCE:
            claims["roles"] = sorted(roles)
        return self.sign_claims(claims)

    # --- user tokens: sign-in (sandbox.auth_code), a Teams tab's SSO (sandbox.teams.tab) -------

    def sign_claims(self, claims: dict[str, Any]) -> str:
        """A JWT of the tenant's one signing key, the one ``jwks`` lists (app and user access
        tokens, id_tokens, a tab's SSO tokens)."""
        headers = {"typ": "JWT", "x5t": self.kid, "kid": self.kid}
        return jwt.encode(claims, self._key, algorithm="RS256", headers=headers)

    def verify_client(self, client_id: str, secret: str | None) -> None:
        """The app's own credentials at the token endpoint, refused with Entra's codes."""
        if client_id.lower() != self.client_id.lower():
            raise TokenRequestError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'.",
            )
        self._verify_secret(secret, "Invalid client secret provided.")

    def _verify_secret(self, secret: str | None, wrong_secret_description: str) -> None:
        if secret is None:
            raise TokenRequestError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        if not secrets.compare_digest(secret.encode(), self._client_secret.encode()):
            raise TokenRequestError(401, "invalid_client", 7000215, wrong_secret_description)

    def verify_graph_token(self, authorization: str | None) -> dict[str, Any]:
        """The claims of a Graph bearer token, or InvalidTokenError with Graph's message."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise InvalidTokenError("Access token is empty.")
        token = authorization[7:].strip()
        if not token:
            raise InvalidTokenError("Access token is empty.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public_pem,
                algorithms=["RS256"],
                audience=list(GRAPH_RESOURCES),
                issuer=f"https://sts.windows.net/{self.tenant_id}/",
                options={"require": ["exp", "aud", "iss", "tid"]},
            )
        except jwt.ExpiredSignatureError as e:
            raise InvalidTokenError("Lifetime validation failed, the token is expired.") from e
        except jwt.InvalidAudienceError as e:
            raise InvalidTokenError("Access token validation failure. Invalid audience.") from e
        except jwt.InvalidSignatureError as e:
            raise InvalidTokenError("Access token validation failure.") from e
        except jwt.DecodeError as e:
            raise InvalidTokenError(
                "IDX14100: JWT is not well formed, there are no dots (.)."
                if token.count(".") != 2
                else "Access token validation failure."
            ) from e
        except jwt.InvalidTokenError as e:
            raise InvalidTokenError("Access token validation failure.") from e
        return claims


def token_error_body(error: TokenRequestError, now: datetime) -> dict[str, Any]:
    """Entra's error answer: `error`, `error_description` starting with the AADSTS code, ids."""
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = timezones.format_utc_seconds(now) + "Z"
    return {
        "error": error.error,
        "error_description": f"AADSTS{error.code}: {error.description} Trace ID: {trace_id} "
        f"Correlation ID: {correlation_id} Timestamp: {stamp}",
        "error_codes": [error.code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={error.code}",
    }


def _self_signed(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "accounts.accesscontrol.windows.net")]
    )
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
