"""Settings values are parsed once, at start-up: dates are dates."""

from __future__ import annotations

import datetime as dt

import pytest

from connector.settings import SettingsError, load_settings


def test_the_client_secret_expiry_is_read_as_a_date() -> None:
    settings = load_settings({"client_secret_expires_on": "2027-03-01"}, env_file=False)

    assert settings.client_secret_expires_on == dt.date(2027, 3, 1)


def test_a_client_secret_expiry_that_is_not_a_date_stops_start_up_and_names_the_setting() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"client_secret_expires_on": "next spring"}, env_file=False)

    assert "DEALBRIDGE_CLIENT_SECRET_EXPIRES_ON" in str(caught.value)
    assert "YYYY-MM-DD" in str(caught.value)


def test_a_near_miss_of_a_setting_is_refused_and_an_unrelated_name_only_warned() -> None:
    from connector.settings import environment_problems

    refused, warned = environment_problems(
        {
            "DEALBRIDGE_LOG_LEVL": "DEBUG",
            "DEALBRIDGE_COLOUR": "blue",
            "DEALBRIDGE_LOG_LEVEL": "INFO",
            "PATH": "/usr/bin",
        }
    )
    assert refused == [
        "DEALBRIDGE_LOG_LEVL: not a setting; did you mean DEALBRIDGE_LOG_LEVEL? Rename it"
    ]
    assert warned == ["DEALBRIDGE_COLOUR: not a DealBridge setting; ignored"]


def test_the_projects_own_tooling_variables_are_no_settings_and_pass_quietly() -> None:
    """CI sets DEALBRIDGE_TEST_REQUIRE_POSTGRESQL: its warning broke `db current`'s output."""
    from connector.settings import environment_problems

    tooling = {
        "DEALBRIDGE_TEST_REQUIRE_POSTGRESQL": "1",
        "DEALBRIDGE_TEST_DATABASE": "postgresql",
        "DEALBRIDGE_TEST_PG_BIN": "/usr/lib/postgresql/15/bin",
        "DEALBRIDGE_BENCH_ROUNDS": "3",
        "DEALBRIDGE_CHAOS": "1",
    }
    assert environment_problems(tooling) == ([], [])


def test_a_list_that_is_not_json_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEALBRIDGE_EXCLUDED_DOMAINS", "a.com, b.com")
    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=False)
    assert caught.value.problems == [
        'DEALBRIDGE_EXCLUDED_DOMAINS: not a JSON list; write it as ["a.com", "b.com"]'
    ]


def test_the_database_shown_masks_the_password() -> None:
    from connector.settings import shown_database

    settings = load_settings(
        {"database_url": "postgresql+psycopg://db:pa55@host/deals"}, env_file=False
    )
    assert shown_database(settings) == "postgresql+psycopg://db:***@host/deals"


@pytest.mark.parametrize(
    "pattern",
    [
        "crm.example.com/deals/{deal_id}",
        "https://crm.example.com/deals/",
        "https://{deal_id}.x.com/",
    ],
)
def test_a_crm_link_pattern_without_one_deal_id_in_its_path_stops_start_up(pattern: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"crm_link_pattern": pattern}, env_file=False)

    assert "DEALBRIDGE_CRM_LINK_PATTERN" in str(caught.value)


def test_a_crm_link_pattern_is_kept_as_given() -> None:
    pattern = "https://crm.example.com/deals/{deal_id}?view=full"
    assert load_settings({"crm_link_pattern": pattern}, env_file=False).crm_link_pattern == pattern
