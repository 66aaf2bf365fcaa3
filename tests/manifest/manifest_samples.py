"""Settings the manifest tests build from: the smallest valid set and every legal variation."""

from __future__ import annotations

from typing import Any

from manifest import PackageConfig

TEAMS_APP_ID = "8f3a0a4e-1b7c-4d8e-9f00-112233445566"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
BOT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
PUBLIC_URL = "https://deals.example.com"


def minimal(**overrides: Any) -> PackageConfig:
    """Only the three settings without a default, plus `overrides`."""
    values: dict[str, Any] = {
        "teams_app_id": TEAMS_APP_ID,
        "client_id": CLIENT_ID,
        "public_url": PUBLIC_URL,
    }
    values.update(overrides)
    return PackageConfig(**values)


def every_buildable() -> dict[str, PackageConfig]:
    """Each kind of manifest we can build, by a name that says what varies."""
    return {
        "defaults": minimal(),
        "every optional field": minimal(
            bot_id=BOT_ID,
            app_version="2.13.7",
            short_name="Pipeline Buddy",
            full_name="Pipeline Buddy for Contoso sales",
            short_description="Reminders for Contoso deals.",
            full_description="Everything about Contoso deals, in Teams.",
            developer_name="Contoso IT",
            developer_website_url="https://it.contoso.com/apps/deals",
            privacy_url="https://contoso.com/legal/privacy?app=deals",
            terms_url="https://contoso.com/legal/terms#deals",
            accent_color="#a1b2c3",
        ),
        "longest legal texts": minimal(
            short_name="S" * 30,
            full_name="F" * 100,
            short_description="d" * 80,
            full_description="D" * 4000,
            developer_name="N" * 32,
        ),
        "non-ascii texts": minimal(
            short_name="Délais & Deals ✓",
            full_name="Délais & Deals: rappels d'étape «ventes»",
            developer_name="Société Générale d'Outils",
        ),
        "upper-case GUIDs": minimal(
            teams_app_id=TEAMS_APP_ID.upper(), client_id=CLIENT_ID.upper(), bot_id=BOT_ID.upper()
        ),
        "CRM link pattern (link unfurling)": minimal(
            crm_link_pattern="https://crm.contoso.com/sales/deals/{deal_id}?view=full"
        ),
        "public URL with a port": minimal(public_url="https://deals.example.com:8443"),
        "public URL with a path": minimal(public_url="https://apps.example.com/dealbridge/"),
        "public URL with port 443 and a path": minimal(
            public_url="https://EDGE.Example.com:443/crm/dealbridge"
        ),
        "tunnel host": minimal(public_url="https://a1b2-203-0-113-7.ngrok-free.app"),
        "no resource-specific permission": minimal(activity_feed_rsc=False),
        "big version numbers": minimal(app_version="10.200.3000"),
    }
