"""The errors graph_sync raises: one small tree, each carrying the ids a log line needs.

GraphSyncError
├── EntraError          a token request refused by Entra (AADSTS code and advice)
└── GraphError          a Graph answer >= 400 (status, code, mailbox, request id)
    ├── Throttled       429 (or 503/504 after retries), with the Retry-After it gave
    ├── NotFound        404
    ├── Forbidden       403: a permission is missing (which one, when we know)
    └── SyncStateExpired 410 or syncStateNotFound/resyncRequired: restart the delta round
"""

from __future__ import annotations

# Short advice per AADSTS code (Entra error codes reference, learn.microsoft.com/entra).
AADSTS_ADVICE: dict[int, str] = {
    7000215: "The client secret is wrong: copy the secret's Value (not its Secret ID) "
    "from the app registration, Certificates & secrets.",
    7000222: "The client secret has expired: create a new one in the app registration "
    "and update DEALBRIDGE_CLIENT_SECRET.",
    700016: "No app with this client id in this tenant: check DEALBRIDGE_CLIENT_ID and "
    "DEALBRIDGE_TENANT_ID, and that an admin consented to the app in this tenant.",
    90002: "Tenant not found: check DEALBRIDGE_TENANT_ID (a GUID or a verified domain).",
    900023: "The tenant id is not valid: use the directory (tenant) GUID or a verified domain.",
    65001: "Admin consent is missing: open the admin-consent URL (dealbridge admin "
    "consent-url) as a Global or Privileged Role Administrator.",
    7000112: "The app is disabled in this tenant: an admin must re-enable its enterprise app.",
    700027: "The certificate signature is not valid: upload the certificate's public key to "
    "the app registration and check the thumbprint.",
    700024: "The client assertion is outside its valid time: check this machine's clock.",
    1002012: "The scope is not valid: app-only tokens need a '/.default' scope.",
    500011: "The resource is not in this tenant: check the Graph/Bot scope.",
}


# AADSTS codes that mean an admin has not consented the app in this tenant: 65001 (consent
# missing), 700016 (no service principal for the app: never consented here). Entra error codes ref.
CONSENT_AADSTS = frozenset({65001, 700016})
# Graph 403 codes for a missing application permission: Entra directory, Teams, Exchange (the last
# may also be an application access policy, as doctor explains).
CONSENT_CODES = frozenset({"Authorization_RequestDenied", "Forbidden", "ErrorAccessDenied"})


class GraphSyncError(Exception):
    """Base of every error graph_sync raises."""


class EntraError(GraphSyncError):
    """Entra refused a token: `code` is the OAuth error, `aadsts` the AADSTS number."""

    def __init__(self, code: str, aadsts: int | None, description: str) -> None:
        self.code = code
        self.aadsts = aadsts
        self.description = description
        super().__init__(f"{code} (AADSTS{aadsts}): {self.advice}" if aadsts else code)

    @property
    def needs_admin_consent(self) -> bool:
        """Whether the AADSTS code says an admin must consent the app (never read from text)."""
        return self.aadsts in CONSENT_AADSTS

    @property
    def advice(self) -> str:
        """What an admin should do, for the codes we know; else Entra's first line."""
        if self.aadsts in AADSTS_ADVICE:
            return AADSTS_ADVICE[self.aadsts]
        return self.description.splitlines()[0] if self.description else self.code


class GraphError(GraphSyncError):
    """Graph answered with an error status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        mailbox: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.mailbox = mailbox
        self.request_id = request_id
        where = f" mailbox={mailbox}" if mailbox else ""
        rid = f" request-id={request_id}" if request_id else ""
        super().__init__(f"{status} {code}: {message}{where}{rid}")


class Throttled(GraphError):
    """Still throttled after the retries we allow; `retry_after` seconds as Graph said."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        mailbox: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, code, message, mailbox, request_id)
        self.retry_after = retry_after


class NotFound(GraphError):
    """The user, event or subscription does not exist (any more)."""


class Forbidden(GraphError):
    """The app lacks a permission; `permission` names the one this call needs, when known."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        mailbox: str | None = None,
        request_id: str | None = None,
        permission: str | None = None,
    ) -> None:
        super().__init__(status, code, message, mailbox, request_id)
        self.permission = permission

    @property
    def needs_admin_consent(self) -> bool:
        """Whether Graph's error code says an application permission is not granted."""
        return self.code in CONSENT_CODES


class UnreadablePage(GraphSyncError):
    """Graph answered 200 with a page our models cannot read (a truncated or malformed body)."""

    def __init__(self, mailbox: str | None, problem: str) -> None:
        super().__init__(f"an unreadable page from Graph for {mailbox or 'the tenant'}: {problem}")
        self.mailbox = mailbox
        self.problem = problem


class SyncStateExpired(GraphError):
    """The delta token is no longer valid: start the round again from the initial query."""


SYNC_STATE_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})


def error_for(
    status: int,
    code: str,
    message: str,
    *,
    mailbox: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
    permission: str | None = None,
) -> GraphError:
    """The most specific error of the tree for a Graph error answer."""
    if status == 410 or code.lower() in SYNC_STATE_CODES:
        return SyncStateExpired(status, code, message, mailbox, request_id)
    if status == 429 or (status in (503, 504) and retry_after is not None):
        return Throttled(status, code, message, mailbox, request_id, retry_after)
    if status == 404:
        return NotFound(status, code, message, mailbox, request_id)
    if status == 403:
        return Forbidden(status, code, message, mailbox, request_id, permission)
    return GraphError(status, code, message, mailbox, request_id)
