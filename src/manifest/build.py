"""The Teams app package: the manifest filled from settings, checked, and zipped with the icons.

`check_config` applies every rule of the manifest schema (and of the Teams docs) that a setting
can break, and names the setting in each message, so an admin fixes all of them in one go.
`build_package` refuses to write a zip while any problem remains.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from importlib.resources import files
from io import BytesIO
from pathlib import Path
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit

from pydantic import BaseModel, ConfigDict, Field

#: The newest manifest version whose official schema `@microsoft/app-manifest` bundles.
MANIFEST_VERSION: Final = "1.30"
SCHEMA_URL: Final = (
    f"https://developer.microsoft.com/json-schemas/teams/v{MANIFEST_VERSION}"
    "/MicrosoftTeams.schema.json"
)
#: What the zip holds, all at its root: Teams rejects a package with folders or extra files.
PACKAGE_FILES: Final = ("manifest.json", "color.png", "outline.png")

DEFAULT_ACCENT_COLOR: Final = "#0E7C86"
DEFAULT_SHORT_NAME: Final = "DealBridge"
DEFAULT_FULL_NAME: Final = "DealBridge: deal reminders and meeting logging"
DEFAULT_SHORT_DESCRIPTION: Final = (
    "Deal-stage reminders in Teams and Outlook; meetings logged on the right deal."
)
DEFAULT_FULL_DESCRIPTION: Final = (
    "DealBridge connects your company's CRM deal pipeline to Microsoft 365. When a deal needs "
    "your next step, it reminds you here in Teams and on your Outlook calendar; act on the card "
    "to mark the reminder done, snooze it, move the deal to its next stage or add a note. "
    "Meetings you hold with a customer are logged on the matching deal, and when a meeting "
    "could belong to more than one deal, DealBridge asks you to choose. "
    "Requires a CRM connected to DealBridge by your administrator."
)
DEFAULT_DEVELOPER_NAME: Final = "DealBridge"

#: The environment variable behind each field, so that messages name what the admin sets.
SETTING_NAMES: Final[Mapping[str, str]] = {
    "teams_app_id": "DEALBRIDGE_TEAMS_APP_ID",
    "bot_id": "DEALBRIDGE_BOT_ID",
    "client_id": "DEALBRIDGE_CLIENT_ID",
    "public_url": "DEALBRIDGE_PUBLIC_URL",
    "app_version": "DEALBRIDGE_APP_VERSION",
    "short_name": "DEALBRIDGE_APP_SHORT_NAME",
    "full_name": "DEALBRIDGE_APP_FULL_NAME",
    "short_description": "DEALBRIDGE_APP_SHORT_DESCRIPTION",
    "full_description": "DEALBRIDGE_APP_FULL_DESCRIPTION",
    "developer_name": "DEALBRIDGE_DEVELOPER_NAME",
    "developer_website_url": "DEALBRIDGE_DEVELOPER_WEBSITE_URL",
    "privacy_url": "DEALBRIDGE_PRIVACY_URL",
    "terms_url": "DEALBRIDGE_TERMS_URL",
    "accent_color": "DEALBRIDGE_ACCENT_COLOR",
    "crm_link_pattern": "DEALBRIDGE_CRM_LINK_PATTERN",
}

# The patterns and limits below are those of the v1.30 schema (definitions guid, semver,
# hexColor; maxLength of name, description, developer.name and URLs).
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_SEMVER = re.compile(r"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)")
_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PLACEHOLDER = re.compile(r"\$\{\{([A-Z_]+)\}\}")
_TEMPLATE_PARAMETER = re.compile(r"\{(\w+)\}")
_MAX_URL = 2048
_TEXT_LIMITS: Final[Mapping[str, int]] = {
    "short_name": 30,
    "full_name": 100,
    "short_description": 80,
    "full_description": 4000,
    "developer_name": 32,
}
# Fixed zip timestamps make the same settings give the same bytes, so a rebuild is no change.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class PackageConfig(BaseModel):
    """What the Teams app package is built from; the connector maps its settings onto it.

    Values are not validated on construction: `check_config` reports every broken value at
    once, each with the setting's name, which a pydantic error would not.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    teams_app_id: str | None = None
    """The manifest's own GUID. Keep it for every version: Teams sees a new id as a new app."""
    client_id: str | None = None
    """The Entra app (client) id DealBridge signs in with; goes to `webApplicationInfo.id`."""
    bot_id: str | None = None
    """The Azure Bot's Microsoft app id; `None` or empty means the same as `client_id`."""
    public_url: str | None = None
    """The https base URL Teams and Graph reach DealBridge at, e.g. https://deals.example.com."""
    app_version: str = "1.0.0"
    """The package version (major.minor.patch); raise it for every upload of a changed package."""
    short_name: str = DEFAULT_SHORT_NAME
    """The app's name in Teams, at most 30 characters."""
    full_name: str = DEFAULT_FULL_NAME
    """The longer name shown in the app details, at most 100 characters."""
    short_description: str = DEFAULT_SHORT_DESCRIPTION
    """At most 80 characters."""
    full_description: str = DEFAULT_FULL_DESCRIPTION
    """At most 4,000 characters."""
    developer_name: str = DEFAULT_DEVELOPER_NAME
    """Who publishes the app to the tenant, at most 32 characters."""
    developer_website_url: str | None = None
    """https; defaults to `public_url`."""
    privacy_url: str | None = None
    """https; defaults to `{public_url}/privacy`, a page the connector serves."""
    terms_url: str | None = None
    """https; defaults to `{public_url}/terms`, a page the connector serves."""
    accent_color: str = DEFAULT_ACCENT_COLOR
    """#RRGGBB; the default is the colour icon's background."""
    activity_feed_rsc: bool = True
    """Declare the resource-specific permission TeamsActivity.Send.User, so activity-feed
    notifications need no tenant-wide TeamsActivity.Send (Graph docs: RSC is recommended)."""
    # --- message extension and link unfurling (teamsext) ---
    crm_link_pattern: str | None = None
    """A deal's page in the CRM with `{deal_id}` in it; its host goes to the message
    extension's `messageHandlers`, so Teams sends DealBridge such links to unfurl. None: no
    link unfurling (deal search still works)."""
    setting_names: dict[str, str] = Field(default_factory=lambda: dict(SETTING_NAMES))
    """Field name → the setting an admin changes, used in every message."""

    def setting(self, field: str) -> str:
        """The name of the setting behind `field`, as the admin knows it."""
        return self.setting_names.get(field) or SETTING_NAMES.get(field) or field


class Problem(BaseModel):
    """One setting that stops the package from being built, and what to do about it."""

    model_config = ConfigDict(frozen=True)

    setting: str
    """The setting to fix, as the admin sets it (e.g. DEALBRIDGE_PUBLIC_URL)."""
    message: str
    """One sentence that names the setting, the rule, and the value found."""

    def __str__(self) -> str:
        return self.message


class ManifestError(Exception):
    """The package cannot be built; `problems` lists every setting to fix."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = "\n".join(f"- {problem.message}" for problem in self.problems)
        return f"The Teams app package cannot be built:\n{lines}"


def _shown(value: str) -> str:
    """The value as quoted in a message, cut short so a pasted blob stays readable."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _url_problem(url: str, name: str) -> str | None:
    """What is wrong with `url` as an https URL Teams opens, or None; never echoes a password."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"{name} must be an https URL like https://deals.example.com, got {_shown(url)}"
    if parts.username is not None or parts.password is not None:
        return f"{name} must not contain a user name or password"
    if parts.scheme != "https":
        return f"{name} must be an https URL (Teams opens only https), got {_shown(url)}"
    host = parts.hostname or ""
    labels = host.split(".")
    if not host or len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return (
            f"{name} must name a host of letters, digits, hyphens and dots (an international "
            f"name in its xn-- form), like https://deals.example.com, got {_shown(url)}"
        )
    if port == 0:
        return f"{name} must not use port 0, got {_shown(url)}"
    if len(url) > _MAX_URL:
        return f"{name} must be at most {_MAX_URL} characters, got {len(url)}"
    return None


def _public_base(public_url: str) -> str:
    """The public URL without its trailing slash, the base of the derived URLs."""
    return public_url.strip().rstrip("/")


def public_domain(public_url: str) -> str:
    """The host (and a non-default port) of the public URL: what `validDomains` lists."""
    parts: SplitResult = urlsplit(public_url.strip())
    host = (parts.hostname or "").lower()
    return host if parts.port in (None, 443) else f"{host}:{parts.port}"


def crm_link_domain(pattern: str | None) -> str:
    """The host of the CRM's deal links ("" without a pattern): the unfurling domain."""
    return (urlsplit((pattern or "").strip()).hostname or "").lower()


def _derived_urls(cfg: PackageConfig) -> dict[str, str]:
    """The developer URLs, each explicit or derived from the public URL."""
    base = _public_base(cfg.public_url or "")
    return {
        "developer_website_url": (cfg.developer_website_url or "").strip() or base,
        "privacy_url": (cfg.privacy_url or "").strip() or f"{base}/privacy",
        "terms_url": (cfg.terms_url or "").strip() or f"{base}/terms",
    }


def check_config(cfg: PackageConfig) -> list[Problem]:
    """Every problem with `cfg`, in field order; an empty list means the package can be built."""
    found: list[tuple[str, str]] = []

    def report(field: str, message: str) -> None:
        found.append((field, message))

    required = {
        "teams_app_id": "a GUID of the Teams app's own, generated once and kept for every version",
        "client_id": "the Application (client) ID of the Entra app registration",
        "public_url": "the https address Teams and Graph reach DealBridge at",
    }
    for field, what in required.items():
        if _blank(getattr(cfg, field)):
            report(field, f"{cfg.setting(field)} is not set: it must be {what}")

    for field in ("teams_app_id", "client_id", "bot_id"):
        value: str | None = getattr(cfg, field)
        if not _blank(value) and not _GUID.fullmatch((value or "").strip()):
            report(
                field,
                f"{cfg.setting(field)} must be a GUID like "
                f"00000000-0000-0000-0000-000000000000, got {_shown(value or '')}",
            )

    if not _blank(cfg.public_url):
        public_url = (cfg.public_url or "").strip()
        problem = _url_problem(public_url, cfg.setting("public_url"))
        if problem is None and (urlsplit(public_url).query or urlsplit(public_url).fragment):
            problem = (
                f"{cfg.setting('public_url')} must be a base URL without a query or fragment, "
                f"got {_shown(public_url)}"
            )
        if problem is not None:
            report("public_url", problem)

    if not _SEMVER.fullmatch(cfg.app_version):
        report(
            "app_version",
            f"{cfg.setting('app_version')} must be a version like 1.4.0 "
            f"(major.minor.patch, no leading zeros), got {_shown(cfg.app_version)}",
        )

    for field, limit in _TEXT_LIMITS.items():
        text: str = getattr(cfg, field)
        if not text.strip():
            report(field, f"{cfg.setting(field)} must not be empty")
        elif len(text) > limit:
            report(
                field,
                f"{cfg.setting(field)} must be at most {limit} characters, got {len(text)}",
            )
    # The Teams manifest reference: "The values of short and full must be different."
    for short, full in (("short_name", "full_name"), ("short_description", "full_description")):
        if getattr(cfg, short).strip() and getattr(cfg, short) == getattr(cfg, full):
            report(full, f"{cfg.setting(full)} must differ from {cfg.setting(short)}")

    # Derived URLs are only as good as the public URL, already reported above.
    for field, url in _derived_urls(cfg).items():
        if getattr(cfg, field) and getattr(cfg, field).strip():
            problem = _url_problem(url, cfg.setting(field))
            if problem is not None:
                report(field, problem)

    if not _HEX_COLOR.fullmatch(cfg.accent_color):
        report(
            "accent_color",
            f"{cfg.setting('accent_color')} must be a colour like #0E7C86, "
            f"got {_shown(cfg.accent_color)}",
        )

    if not _blank(cfg.crm_link_pattern):
        pattern = (cfg.crm_link_pattern or "").strip()
        name = cfg.setting("crm_link_pattern")
        problem = _url_problem(pattern.replace("{deal_id}", "D-1"), name)
        if problem is None and pattern.count("{deal_id}") != 1:
            problem = f"{name} must hold {{deal_id}} once, got {_shown(pattern)}"
        if problem is None and urlsplit(pattern).port not in (None, 443):
            problem = f"{name} must use the default https port (Teams matches domains only)"
        if problem is not None:
            report("crm_link_pattern", problem)

    order = list(PackageConfig.model_fields)
    found.sort(key=lambda item: order.index(item[0]))
    return [Problem(setting=cfg.setting(field), message=message) for field, message in found]


@functools.cache
def _template_text() -> str:
    return (files("manifest") / "template" / "manifest.json").read_text(encoding="utf-8")


def template() -> dict[str, Any]:
    """The manifest template with its `${{PLACEHOLDER}}`s, as a fresh dict."""
    loaded: dict[str, Any] = json.loads(_template_text())
    return loaded


def _fill(node: Any, values: Mapping[str, str]) -> Any:
    """`node` with every `${{NAME}}` in its strings replaced; values never need JSON escaping."""
    if isinstance(node, dict):
        return {key: _fill(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(item, values) for item in node]
    if isinstance(node, str):
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], node)
    return node


def build_manifest(cfg: PackageConfig) -> dict[str, Any]:
    """The manifest.json content for `cfg`; raises ManifestError naming every broken setting."""
    problems = check_config(cfg)
    if problems:
        raise ManifestError(problems)
    client_id = (cfg.client_id or "").strip()
    urls = _derived_urls(cfg)
    values = {
        "APP_VERSION": cfg.app_version,
        "TEAMS_APP_ID": (cfg.teams_app_id or "").strip(),
        "CLIENT_ID": client_id,
        "BOT_ID": (cfg.bot_id or "").strip() or client_id,
        "PUBLIC_DOMAIN": public_domain(cfg.public_url or ""),
        "PUBLIC_BASE": _public_base(cfg.public_url or ""),  # the "My deals" tab's URLs
        "SHORT_NAME": cfg.short_name,
        "FULL_NAME": cfg.full_name,
        "SHORT_DESCRIPTION": cfg.short_description,
        "FULL_DESCRIPTION": cfg.full_description,
        "DEVELOPER_NAME": cfg.developer_name,
        "DEVELOPER_WEBSITE_URL": urls["developer_website_url"],
        "PRIVACY_URL": urls["privacy_url"],
        "TERMS_URL": urls["terms_url"],
        "ACCENT_COLOR": cfg.accent_color,
        "CRM_LINK_DOMAIN": crm_link_domain(cfg.crm_link_pattern),
    }
    manifest: dict[str, Any] = _fill(template(), values)
    if not values["CRM_LINK_DOMAIN"]:
        for extension in manifest.get("composeExtensions", []):
            extension.pop("messageHandlers", None)
    if not cfg.activity_feed_rsc:
        del manifest["authorization"]
    return manifest


def _icon(name: str) -> bytes:
    return (files("manifest") / "icons" / name).read_bytes()


def package_bytes(cfg: PackageConfig) -> bytes:
    """The zip (manifest.json, color.png, outline.png at its root) as bytes, e.g. to upload."""
    manifest = json.dumps(build_manifest(cfg), indent=2, ensure_ascii=False) + "\n"
    contents = {
        "manifest.json": manifest.encode("utf-8"),
        "color.png": _icon("color.png"),
        "outline.png": _icon("outline.png"),
    }
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in PACKAGE_FILES:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, contents[name])
    return buffer.getvalue()


def build_package(cfg: PackageConfig, out: Path) -> Path:
    """Writes the Teams app zip to `out` and returns `out`; writes nothing on ManifestError."""
    data = package_bytes(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then rename: a failed write never leaves half a zip behind.
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return out


def bot_commands() -> tuple[str, ...]:
    """The commands the manifest offers in the bot's menu; the bot must answer each."""
    bot = template()["bots"][0]
    return tuple(command["title"] for entry in bot["commandLists"] for command in entry["commands"])


def activity_types() -> dict[str, tuple[str, ...]]:
    """Each declared activity-feed type → the template parameters a notification must send.

    `actor` is left out: Teams fills it with the app's name in app-only calls.
    """
    declared = template()["activities"]["activityTypes"]
    return {
        entry["type"]: tuple(
            name for name in _TEMPLATE_PARAMETER.findall(entry["templateText"]) if name != "actor"
        )
        for entry in declared
    }
