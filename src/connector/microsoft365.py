"""The app's one Graph client (graph_sync), built lazily from the settings.

Building it imports nothing heavy (msgraph loads on the first call); ``close`` stops its event
loop. A missing Microsoft 365 setting raises :class:`NotConfigured` naming each one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from flask import Flask

from connector import metrics
from connector.errors import DealBridgeError
from connector.settings import SETTINGS_EXTENSION, Settings
from graph_sync.auth import CertificateCredential, GraphCredentials, TokenProvider
from graph_sync.client import GraphClient
from graph_sync.errors import EntraError, Forbidden, GraphError

WHOLE_APP = "all of DealBridge's application permissions (the app is not consented here)"

EXTENSION = "dealbridge.graph"
_LOCK = threading.Lock()


class NotConfigured(DealBridgeError):
    status, title, slug = 503, "Microsoft 365 is not configured", "not-configured"


@dataclass(frozen=True)
class Failure:
    """What a failed Graph or Entra call says, as a mailbox keeps it: the error's code, and the
    application permission an admin must consent to, decided by the code (never the text)."""

    code: str | None = None
    missing_permission: str | None = None

    @classmethod
    def of(cls, error: BaseException) -> Failure:
        if isinstance(error, EntraError):
            code = f"AADSTS{error.aadsts}" if error.aadsts else error.code
            return cls(code, WHOLE_APP if error.needs_admin_consent else None)
        if isinstance(error, Forbidden) and error.needs_admin_consent:
            named = error.permission or f"a permission Graph did not name ({error.code})"
            return cls(error.code, named)
        if isinstance(error, GraphError):
            return cls(error.code)
        return cls()


def credentials(settings: Settings) -> GraphCredentials:
    problems = [p for p in settings.microsoft365_problems() if "PUBLIC_URL" not in p]
    if problems:
        raise NotConfigured("; ".join(problems))
    certificate = None
    if settings.certificate_path and settings.certificate_thumbprint:
        certificate = CertificateCredential(
            private_key_path=settings.certificate_path,
            thumbprint=settings.certificate_thumbprint,
        )
    return GraphCredentials(
        tenant_id=str(settings.tenant_id),
        client_id=str(settings.client_id),
        client_secret=settings.client_secret,
        certificate=certificate,
        login_base_url=settings.login_base_url,
    )


def graph_client(app: Flask) -> GraphClient:
    """The app's client (one event loop, one token cache), made on first use."""
    client: GraphClient | None = app.extensions.get(EXTENSION)
    if client is None:
        with _LOCK:
            client = app.extensions.get(EXTENSION)
            if client is None:
                settings: Settings = app.extensions[SETTINGS_EXTENSION]
                creds = credentials(settings)
                client = GraphClient(
                    creds,
                    settings.graph_base_url,
                    tokens=TokenProvider(creds),
                    observer=metrics.graph_call,
                )
                app.extensions[EXTENSION] = client
    return client


def close(app: Flask) -> None:
    client: GraphClient | None = app.extensions.pop(EXTENSION, None)
    if client is not None:
        client.close()
