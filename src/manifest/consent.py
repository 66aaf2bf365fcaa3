"""The admin-consent link: one page where a tenant admin grants the app its Graph permissions."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote, urlencode, urlsplit

PUBLIC_CLOUD_LOGIN: Final = "https://login.microsoftonline.com"
#: `.default` asks for every application permission configured on the app registration.
GRAPH_DEFAULT_SCOPE: Final = "https://graph.microsoft.com/.default"

_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")


def _check_http_url(value: str, what: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute http(s) URL, got {value!r}")


def admin_consent_url(
    login_base_url: str,
    tenant_id: str,
    client_id: str,
    redirect_uri: str,
    state: str,
    *,
    scope: str = GRAPH_DEFAULT_SCOPE,
) -> str:
    """The Microsoft identity platform v2.0 admin-consent URL for the app `client_id`.

    `tenant_id` is the tenant's GUID or a verified domain (or `organizations` for a
    multi-tenant app); `redirect_uri` must be registered on the app; Entra sends `state` back
    with `admin_consent=True` or an `error` to it. `login_base_url` is
    https://login.microsoftonline.com, a national cloud's, or the sandbox's.
    """
    _check_http_url(login_base_url, "login_base_url")
    _check_http_url(redirect_uri, "redirect_uri")
    if not _TENANT.fullmatch(tenant_id):
        raise ValueError(
            f"tenant_id must be a tenant GUID, a verified domain or 'organizations', "
            f"got {tenant_id!r}"
        )
    if not _GUID.fullmatch(client_id):
        raise ValueError(f"client_id must be the app registration's GUID, got {client_id!r}")
    query = urlencode(
        {"client_id": client_id, "scope": scope, "redirect_uri": redirect_uri, "state": state},
        quote_via=quote,
        safe=":/",
    )
    return f"{login_base_url.rstrip('/')}/{tenant_id}/v2.0/adminconsent?{query}"
