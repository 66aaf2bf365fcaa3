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
