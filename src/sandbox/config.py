"""The sandbox tenant's settings: identity of the tenant and its one app, and Exchange's limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEMO_TENANT_ID = "8d3c1f52-6a0b-4a8e-9a43-2f6f1c0d7e11"
DEMO_DOMAIN = "contoso.example"
DEMO_CLIENT_ID = "4b1f2e9a-0c7d-4e35-8f60-9a2b7c3d5e14"
DEMO_CLIENT_SECRET = "sandbox-demo-secret"  # a demo value, printed at start on purpose

# The application permissions DealBridge uses (docs/admin guide); the sandbox grants them all.
ALL_ROLES = (
    "Calendars.ReadWrite",
    "MailboxSettings.Read",
    "User.Read.All",
    "Organization.Read.All",
    "TeamsAppInstallation.ReadWriteSelfForUser.All",
    "TeamsActivity.Send",
    # Teams attendance (optional in DealBridge): find the meeting, read its reports.
    "OnlineMeetings.Read.All",
    "OnlineMeetingArtifact.Read.All",
)


class SandboxConfig(BaseModel):
    """Everything the sandbox tenant is started with. Runtime changes go through the control API."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: str = DEMO_TENANT_ID
    """The tenant's GUID (`tid` in tokens, `id` of the organization)."""
    domain: str = DEMO_DOMAIN
    """The tenant's default verified domain; users' UPNs end with it."""
    organization_name: str = "Contoso (sandbox)"
    client_id: str = DEMO_CLIENT_ID
    """The one registered app's client id."""
    client_secret: str = DEMO_CLIENT_SECRET
    roles: tuple[str, ...] = ALL_ROLES
    """Application permissions admin-consented to the app; they become the `roles` claim."""
    login_authority_base: str = "https://login.microsoftonline.com"
    """Host advertised in the OpenID metadata and `iss`: clients rewrite it to the sandbox."""
    token_lifetime_seconds: int = Field(default=3599, gt=0)
    mailbox_concurrency_limit: int = Field(default=4, gt=0)
    """Outlook allows 4 concurrent requests per app and mailbox (throttling-limits.md)."""
    mailbox_request_budget: int = Field(default=10_000, gt=0)
    """Outlook allows 10,000 requests per app and mailbox in 10 minutes (throttling-limits.md)."""
    mailbox_budget_window_seconds: float = Field(default=600.0, gt=0)
    latency_seconds: float = Field(default=0.0, ge=0)
    """Artificial service time added to every Graph request (benchmarks, concurrency tests)."""
    fault_timeout_seconds: float = Field(default=30.0, ge=0)
    """How long a `timeout` fault holds the request before answering 504."""
    validation_timeout_seconds: float = Field(default=10.0, gt=0)
    """Graph gives a notification endpoint 10 s to answer the validation request."""
    notification_timeout_seconds: float = Field(default=3.0, gt=0)
    """Graph expects a notification endpoint to answer within 3 s."""
    delta_states_kept: int = Field(default=5_000, gt=0)
    """Delta and skip tokens kept; older ones answer 410 SyncStateNotFound like expired ones."""
    shuffle_batch_responses: bool = True
    """Answer `$batch` items in an order other than the request's, as Graph may."""
    seed: int = 0
    """Seed of the random choices (fault rates, batch order), so runs repeat."""
