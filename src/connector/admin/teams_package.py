"""The Teams app package from the settings (the ``manifest`` leaf does the building)."""

from __future__ import annotations

from typing import Any

from connector.settings import Settings
from manifest import PackageConfig

_OPTIONAL = {
    "app_short_name": "short_name",
    "app_full_name": "full_name",
    "app_short_description": "short_description",
    "app_full_description": "full_description",
    "developer_name": "developer_name",
    "accent_color": "accent_color",
}


def package_config(settings: Settings) -> PackageConfig:
    values: dict[str, Any] = {
        "teams_app_id": settings.teams_app_id,
        "client_id": settings.client_id,
        "bot_id": settings.bot_id,
        "public_url": settings.public_url,
        "app_version": settings.app_version,
        "developer_website_url": settings.developer_website_url,
        "privacy_url": settings.privacy_url,
        "terms_url": settings.terms_url,
        "crm_link_pattern": settings.crm_link_pattern,
    }
    for setting, field in _OPTIONAL.items():
        value = getattr(settings, setting)
        if value:
            values[field] = value
    return PackageConfig(**values)
