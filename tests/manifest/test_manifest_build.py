"""The manifest filled from settings, the checks that refuse bad settings, and the zip."""

from __future__ import annotations

import io
import json
import zipfile
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from manifest import (
    MANIFEST_VERSION,
    PACKAGE_FILES,
    ManifestError,
    PackageConfig,
    activity_types,
    bot_commands,
    build_manifest,
    build_package,
    check_config,
    package_bytes,
    public_domain,
)
from manifest.build import template

from .manifest_samples import BOT_ID, CLIENT_ID, TEAMS_APP_ID, every_buildable, minimal


def test_template_declares_the_chosen_manifest_version_and_its_schema() -> None:
    raw = template()

    assert raw["manifestVersion"] == MANIFEST_VERSION == "1.30"
    assert raw["$schema"] == (
        "https://developer.microsoft.com/json-schemas/teams/v1.30/MicrosoftTeams.schema.json"
    )


@pytest.mark.parametrize("name", list(every_buildable()))
def test_every_buildable_manifest_has_no_placeholder_left(name: str) -> None:
    manifest = build_manifest(every_buildable()[name])

    assert "${{" not in json.dumps(manifest)


def test_manifest_carries_the_ids_from_settings() -> None:
    manifest = build_manifest(minimal(bot_id=BOT_ID))

    assert manifest["id"] == TEAMS_APP_ID
    assert manifest["bots"][0]["botId"] == BOT_ID
    assert manifest["webApplicationInfo"]["id"] == CLIENT_ID


@pytest.mark.parametrize("bot_id", [None, "", "  "])
def test_bot_id_defaults_to_the_client_id(bot_id: str | None) -> None:
    manifest = build_manifest(minimal(bot_id=bot_id))

    assert manifest["bots"][0]["botId"] == CLIENT_ID


def test_ids_pasted_with_spaces_around_them_are_trimmed() -> None:
    manifest = build_manifest(minimal(teams_app_id=f" {TEAMS_APP_ID}\n", client_id=f"{CLIENT_ID} "))

    assert manifest["id"] == TEAMS_APP_ID
    assert manifest["webApplicationInfo"]["id"] == CLIENT_ID
    assert manifest["bots"][0]["botId"] == CLIENT_ID


def test_bot_is_personal_conversational_without_files_and_lists_its_commands() -> None:
    bot = build_manifest(minimal())["bots"][0]

    # team and groupChat: a deal card shared from the message extension into a chat works
    # only with the same bot in that scope (Teams docs, Universal Actions for search based
    # message extensions); the commands stay personal.
    assert bot["scopes"] == ["personal", "team", "groupChat"]
    assert bot["isNotificationOnly"] is False
    assert bot["supportsFiles"] is False
    assert [entry["scopes"] for entry in bot["commandLists"]] == [["personal"]]
    commands = bot["commandLists"][0]["commands"]
    titles = ["help", "reminders", "deals", "deal", "my day", "digest", "settings"]
    assert [command["title"] for command in commands] == titles
    assert all(command["description"].strip() for command in commands)
    assert bot_commands() == tuple(titles)


@pytest.mark.parametrize(
    ("public_url", "domain"),
    [
        ("https://deals.example.com", "deals.example.com"),
        ("https://deals.example.com/", "deals.example.com"),
        ("https://Deals.Example.COM/dealbridge/api", "deals.example.com"),
        ("https://deals.example.com:8443/x", "deals.example.com:8443"),
        ("https://deals.example.com:443", "deals.example.com"),
    ],
)
def test_valid_domains_is_the_public_host_without_scheme_or_path(
    public_url: str, domain: str
) -> None:
    manifest = build_manifest(minimal(public_url=public_url))

    assert public_domain(public_url) == domain
    assert manifest["validDomains"] == [domain]
    assert manifest["webApplicationInfo"]["resource"] == f"api://{domain}/{CLIENT_ID}"


def test_developer_urls_default_to_pages_under_the_public_url() -> None:
    developer = build_manifest(minimal(public_url="https://apps.example.com/dealbridge/"))[
        "developer"
    ]

    assert developer["websiteUrl"] == "https://apps.example.com/dealbridge"
    assert developer["privacyUrl"] == "https://apps.example.com/dealbridge/privacy"
    assert developer["termsOfUseUrl"] == "https://apps.example.com/dealbridge/terms"


def test_explicit_developer_fields_win_over_the_defaults() -> None:
    cfg = every_buildable()["every optional field"]

    manifest = build_manifest(cfg)

    assert manifest["developer"] == {
        "name": "Contoso IT",
        "websiteUrl": "https://it.contoso.com/apps/deals",
        "privacyUrl": "https://contoso.com/legal/privacy?app=deals",
        "termsOfUseUrl": "https://contoso.com/legal/terms#deals",
    }
    assert manifest["name"] == {
        "short": "Pipeline Buddy",
        "full": "Pipeline Buddy for Contoso sales",
    }
    assert manifest["accentColor"] == "#a1b2c3"
    assert manifest["version"] == "2.13.7"


def test_activity_feed_types_for_the_fallback_notifications_are_declared() -> None:
    declared = build_manifest(minimal())["activities"]["activityTypes"]

    assert [entry["type"] for entry in declared] == [
        "reminderDue",
        "meetingNeedsChoice",
        "meetingBrief",
    ]
    assert activity_types() == {
        "reminderDue": ("reminderTitle", "dealName"),
        "meetingNeedsChoice": ("meetingSubject",),
        "meetingBrief": ("meetingSubject", "dealName"),
    }
    for entry in declared:
        assert len(entry["templateText"]) <= 128
        assert len(entry["description"]) <= 128


def test_activity_feed_permission_is_resource_specific_unless_turned_off() -> None:
    with_rsc = build_manifest(minimal())
    without = build_manifest(minimal(activity_feed_rsc=False))

    assert with_rsc["authorization"]["permissions"]["resourceSpecific"] == [
        {"name": "TeamsActivity.Send.User", "type": "Application"}
    ]
    assert "authorization" not in without
    assert "permissions" not in with_rsc
    assert "devicePermissions" not in with_rsc


def test_defaults_need_only_the_three_ids_and_urls() -> None:
    assert check_config(minimal()) == []


def test_missing_required_settings_are_all_named_at_once() -> None:
    with pytest.raises(ManifestError) as refused:
        build_manifest(PackageConfig())

    settings = [problem.setting for problem in refused.value.problems]
    assert settings == ["DEALBRIDGE_TEAMS_APP_ID", "DEALBRIDGE_CLIENT_ID", "DEALBRIDGE_PUBLIC_URL"]
    assert "DEALBRIDGE_PUBLIC_URL is not set" in str(refused.value)


REFUSALS: list[tuple[str, dict[str, Any], str, str]] = [
    ("bad teams app GUID", {"teams_app_id": "abc"}, "DEALBRIDGE_TEAMS_APP_ID", "GUID"),
    (
        "GUID without dashes",
        {"teams_app_id": TEAMS_APP_ID.replace("-", "")},
        "DEALBRIDGE_TEAMS_APP_ID",
        "GUID",
    ),
    ("bad client GUID", {"client_id": f"{CLIENT_ID}x"}, "DEALBRIDGE_CLIENT_ID", "GUID"),
    ("bad bot GUID", {"bot_id": "my-bot"}, "DEALBRIDGE_BOT_ID", "GUID"),
    (
        "http public URL",
        {"public_url": "http://deals.example.com"},
        "DEALBRIDGE_PUBLIC_URL",
        "https",
    ),
    (
        "domain without scheme",
        {"public_url": "deals.example.com"},
        "DEALBRIDGE_PUBLIC_URL",
        "https",
    ),
    ("no host", {"public_url": "https:///path"}, "DEALBRIDGE_PUBLIC_URL", "host"),
    ("wildcard host", {"public_url": "https://*.example.com"}, "DEALBRIDGE_PUBLIC_URL", "host"),
    (
        "international host",
        {"public_url": "https://bücher.example"},
        "DEALBRIDGE_PUBLIC_URL",
        "xn--",
    ),
    ("query", {"public_url": "https://deals.example.com/?a=1"}, "DEALBRIDGE_PUBLIC_URL", "query"),
    (
        "bad port",
        {"public_url": "https://deals.example.com:99999"},
        "DEALBRIDGE_PUBLIC_URL",
        "https",
    ),
    ("two-part version", {"app_version": "1.0"}, "DEALBRIDGE_APP_VERSION", "1.4.0"),
    ("leading zero", {"app_version": "1.02.0"}, "DEALBRIDGE_APP_VERSION", "1.4.0"),
    ("prerelease", {"app_version": "1.0.0-beta"}, "DEALBRIDGE_APP_VERSION", "1.4.0"),
    ("short name 31", {"short_name": "x" * 31}, "DEALBRIDGE_APP_SHORT_NAME", "at most 30"),
    ("empty short name", {"short_name": "  "}, "DEALBRIDGE_APP_SHORT_NAME", "empty"),
    ("full name 101", {"full_name": "x" * 101}, "DEALBRIDGE_APP_FULL_NAME", "at most 100"),
    ("same names", {"full_name": "DealBridge"}, "DEALBRIDGE_APP_FULL_NAME", "differ"),
    (
        "short description 81",
        {"short_description": "x" * 81},
        "DEALBRIDGE_APP_SHORT_DESCRIPTION",
        "at most 80",
    ),
    (
        "full description 4001",
        {"full_description": "x" * 4001},
        "DEALBRIDGE_APP_FULL_DESCRIPTION",
        "at most 4000",
    ),
    ("developer 33", {"developer_name": "x" * 33}, "DEALBRIDGE_DEVELOPER_NAME", "at most 32"),
    (
        "http website",
        {"developer_website_url": "http://contoso.com"},
        "DEALBRIDGE_DEVELOPER_WEBSITE_URL",
        "https",
    ),
    ("http privacy", {"privacy_url": "http://contoso.com/p"}, "DEALBRIDGE_PRIVACY_URL", "https"),
    ("relative terms", {"terms_url": "/terms"}, "DEALBRIDGE_TERMS_URL", "https"),
    ("colour name", {"accent_color": "teal"}, "DEALBRIDGE_ACCENT_COLOR", "#0E7C86"),
    ("short colour", {"accent_color": "#fff"}, "DEALBRIDGE_ACCENT_COLOR", "#0E7C86"),
    (
        "link pattern without deal id",
        {"crm_link_pattern": "https://crm.example.com/deals/"},
        "DEALBRIDGE_CRM_LINK_PATTERN",
        "{deal_id} once",
    ),
    (
        "link pattern over http",
        {"crm_link_pattern": "http://crm.example.com/deals/{deal_id}"},
        "DEALBRIDGE_CRM_LINK_PATTERN",
        "https",
    ),
    (
        "link pattern with a port",
        {"crm_link_pattern": "https://crm.example.com:8443/deals/{deal_id}"},
        "DEALBRIDGE_CRM_LINK_PATTERN",
        "default https port",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "setting", "rule"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_check_config_refuses_a_bad_value_naming_its_setting(
    overrides: dict[str, Any], setting: str, rule: str
) -> None:
    problems = check_config(minimal(**overrides))

    assert [problem.setting for problem in problems] == [setting]
    assert problems[0].message.startswith(setting)
    assert rule in problems[0].message


def test_message_quotes_the_bad_value() -> None:
    (problem,) = check_config(minimal(teams_app_id="abc"))

    assert str(problem) == (
        "DEALBRIDGE_TEAMS_APP_ID must be a GUID like 00000000-0000-0000-0000-000000000000, "
        "got 'abc'"
    )


def test_a_password_in_the_public_url_is_refused_without_being_repeated() -> None:
    (problem,) = check_config(minimal(public_url="https://admin:hunter2@deals.example.com"))

    assert problem.setting == "DEALBRIDGE_PUBLIC_URL"
    assert "hunter2" not in problem.message


def test_messages_use_the_setting_names_the_connector_gives() -> None:
    cfg = minimal(teams_app_id="abc", setting_names={"teams_app_id": "teams.app_id"})

    (problem,) = check_config(cfg)

    assert problem.setting == "teams.app_id"
    assert problem.message.startswith("teams.app_id must be a GUID")


def test_every_problem_is_reported_in_one_error() -> None:
    cfg = minimal(teams_app_id="abc", public_url="http://x.example.com", accent_color="red")

    with pytest.raises(ManifestError) as refused:
        build_manifest(cfg)

    assert [problem.setting for problem in refused.value.problems] == [
        "DEALBRIDGE_TEAMS_APP_ID",
        "DEALBRIDGE_PUBLIC_URL",
        "DEALBRIDGE_ACCENT_COLOR",
    ]
    assert str(refused.value).count("\n- ") == 3


def test_package_holds_exactly_the_manifest_and_both_icons_at_its_root(tmp_path: Path) -> None:
    out = build_package(minimal(), tmp_path / "dealbridge-teams.zip")

    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == sorted(PACKAGE_FILES)
        assert archive.testzip() is None
        manifest = json.loads(archive.read("manifest.json").decode("utf-8"))
        icons = {name: archive.read(name) for name in ("color.png", "outline.png")}

    assert manifest == build_manifest(minimal())
    for name, data in icons.items():
        assert data == (files("manifest") / "icons" / name).read_bytes()
        assert manifest["icons"][name.removesuffix(".png")] == name


def test_package_creates_missing_folders_and_replaces_an_old_zip(tmp_path: Path) -> None:
    out = tmp_path / "dist" / "teams" / "dealbridge-teams.zip"
    build_package(minimal(app_version="1.0.0"), out)

    build_package(minimal(app_version="1.0.1"), out)

    with zipfile.ZipFile(out) as archive:
        assert json.loads(archive.read("manifest.json"))["version"] == "1.0.1"
    assert [path.name for path in out.parent.iterdir()] == ["dealbridge-teams.zip"]


def test_package_is_refused_and_nothing_written_when_a_setting_is_bad(tmp_path: Path) -> None:
    out = tmp_path / "dealbridge-teams.zip"

    with pytest.raises(ManifestError, match="DEALBRIDGE_APP_SHORT_NAME must be at most 30"):
        build_package(minimal(short_name="x" * 31), out)

    assert list(tmp_path.iterdir()) == []


def test_same_settings_give_the_same_zip_bytes() -> None:
    assert package_bytes(minimal()) == package_bytes(minimal())
    assert package_bytes(minimal()) != package_bytes(minimal(app_version="1.0.1"))


def test_manifest_json_in_the_zip_is_utf8_without_bom() -> None:
    data = package_bytes(every_buildable()["non-ascii texts"])

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        raw = archive.read("manifest.json")
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert json.loads(raw.decode("utf-8"))["name"]["short"] == "Délais & Deals ✓"


def test_the_message_extension_searches_deals_and_unfurls_the_crm_s_links() -> None:
    [extension] = build_manifest(
        minimal(bot_id=BOT_ID, crm_link_pattern="https://CRM.contoso.com/deals/{deal_id}")
    )["composeExtensions"]

    assert extension["botId"] == BOT_ID  # the same bot as the chat: Universal Actions need it
    [command] = extension["commands"]
    assert (command["id"], command["type"], command["initialRun"]) == ("searchDeals", "query", True)
    assert [p["name"] for p in command["parameters"]] == ["searchText"]
    assert extension["messageHandlers"] == [
        {"type": "link", "value": {"domains": ["crm.contoso.com"]}}
    ]


def test_without_a_link_pattern_the_extension_only_searches() -> None:
    [extension] = build_manifest(minimal())["composeExtensions"]

    assert "messageHandlers" not in extension
    assert [c["id"] for c in extension["commands"]] == ["searchDeals"]
