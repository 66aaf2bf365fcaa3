"""The tenant's directory: users with their mailboxes' settings, and the organization."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from sandbox import timezones

WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class TimeZoneBaseInput(_Wire):
    """`workingHours.timeZone`: a named zone, or a `customTimeZone` with bias rules."""

    model_config = ConfigDict(extra="allow")
    name: str


class WorkingHoursInput(_Wire):
    """`workingHours` as Outlook stores it: days, local start and end times, and a zone."""

    days_of_week: list[str] = Field(
        default_factory=lambda: ["monday", "tuesday", "wednesday", "thursday", "friday"]
    )
    start_time: str = "08:00:00.0000000"
    end_time: str = "17:00:00.0000000"
    time_zone: TimeZoneBaseInput | None = None

    @field_validator("days_of_week")
    @classmethod
    def _known_days(cls, days: list[str]) -> list[str]:
        for day in days:
            if day.lower() not in WEEKDAYS:
                raise ValueError(f"not a day of the week: {day}")
        return [day.lower() for day in days]


class LanguageInput(_Wire):
    """`mailboxSettings.language`: the mailbox's locale."""

    locale: str = "en-US"
    display_name: str = "English (United States)"


class MailboxSettingsInput(_Wire):
    """The parts of `mailboxSettings` a sandbox user is created with."""

    time_zone: str = "UTC"
    working_hours: WorkingHoursInput = Field(default_factory=WorkingHoursInput)
    date_format: str = "yyyy-MM-dd"
    time_format: str = "HH:mm"
    language: LanguageInput = Field(default_factory=LanguageInput)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        timezones.zone(name)
        return name


class UserInput(_Wire):
    """`POST /_sandbox/users`: a user with a mailbox in the sandbox tenant."""

    user_principal_name: str
    display_name: str
    mail: str | None = None
    given_name: str | None = None
    surname: str | None = None
    job_title: str | None = None
    id: str | None = None
    mailbox_settings: MailboxSettingsInput = Field(default_factory=MailboxSettingsInput)

    @field_validator("user_principal_name")
    @classmethod
    def _has_domain(cls, upn: str) -> str:
        if "@" not in upn:
            raise ValueError("userPrincipalName must look like alias@domain")
        return upn

    @field_validator("id")
    @classmethod
    def _is_guid(cls, value: str | None) -> str | None:
        return None if value is None else str(uuid.UUID(value))


@dataclass
class User:
    """A directory user who has an Exchange mailbox."""

    id: str
    user_principal_name: str
    display_name: str
    mail: str
    given_name: str | None
    surname: str | None
    job_title: str | None
    mailbox_settings: MailboxSettingsInput
    created: datetime
    addresses: frozenset[str] = field(default_factory=frozenset)

    def to_graph(self) -> dict[str, Any]:
        """The user as `GET /users/{id}` shows it by default."""
        return {
            "businessPhones": [],
            "displayName": self.display_name,
            "givenName": self.given_name,
            "jobTitle": self.job_title,
            "mail": self.mail,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": self.mailbox_settings.language.locale,
            "surname": self.surname,
            "userPrincipalName": self.user_principal_name,
            "id": self.id,
        }

    def mailbox_settings_graph(self) -> dict[str, Any]:
        """`GET /users/{id}/mailboxSettings`, as in mailboxsettings.md."""
        settings = self.mailbox_settings
        hours = settings.working_hours
        hours_zone = (
            hours.time_zone.model_dump(by_alias=True)
            if hours.time_zone
            else {"name": settings.time_zone}
        )
        return {
            "archiveFolder": None,
            "timeZone": settings.time_zone,
            "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
            "dateFormat": settings.date_format,
            "timeFormat": settings.time_format,
            "userPurpose": "user",
            "automaticRepliesSetting": {
                "status": "disabled",
                "externalAudience": "all",
                "internalReplyMessage": "",
                "externalReplyMessage": "",
                "scheduledStartDateTime": {
                    "dateTime": "2020-01-01T00:00:00.0000000",
                    "timeZone": "UTC",
                },
                "scheduledEndDateTime": {
                    "dateTime": "2020-01-02T00:00:00.0000000",
                    "timeZone": "UTC",
                },
            },
            "language": settings.language.model_dump(by_alias=True),
            "workingHours": {
                "daysOfWeek": list(hours.days_of_week),
                "startTime": hours.start_time,
                "endTime": hours.end_time,
                "timeZone": hours_zone,
            },
        }


class DuplicateUserError(ValueError):
    """A user with that UPN or id already exists."""


class Directory:
    """Users by id, UPN and SMTP address (all compared case-insensitively, as Entra does)."""

    def __init__(self) -> None:
        self._by_id: dict[str, User] = {}
        self._by_address: dict[str, User] = {}

    def add(self, given: UserInput, now: datetime) -> User:
        """Create a user and their mailbox identity; refuse a taken UPN, mail or id."""
        mail = given.mail or given.user_principal_name
        addresses = frozenset({given.user_principal_name.lower(), mail.lower()})
        user_id = given.id or str(uuid.uuid4())
        if user_id in self._by_id or any(a in self._by_address for a in addresses):
            raise DuplicateUserError(given.user_principal_name)
        user = User(
            id=user_id,
            user_principal_name=given.user_principal_name,
            display_name=given.display_name,
            mail=mail,
            given_name=given.given_name,
            surname=given.surname,
            job_title=given.job_title,
            mailbox_settings=given.mailbox_settings,
            created=now,
            addresses=addresses,
        )
        self._by_id[user.id] = user
        for address in addresses:
            self._by_address[address] = user
        return user

    def find(self, id_or_upn: str) -> User | None:
        """The user named by a path segment: an object id or a UPN/SMTP address."""
        return self._by_id.get(id_or_upn.lower()) or self._by_address.get(id_or_upn.lower())

    def by_address(self, address: str) -> User | None:
        """The user an attendee address resolves to, if that address is in this tenant."""
        return self._by_address.get(address.lower())

    def all(self) -> list[User]:
        """Every user, in creation order."""
        return list(self._by_id.values())


def organization_graph(tenant_id: str, name: str, domain: str, created: datetime) -> dict[str, Any]:
    """The tenant as `GET /organization` shows it, with its verified domains."""
    initial = f"{domain.split('.')[0]}.onmicrosoft.com"
    domains = [
        {
            "capabilities": "Email, OfficeCommunicationsOnlineService",
            "isDefault": True,
            "isInitial": False,
            "name": domain,
            "type": "Managed",
        }
    ]
    if initial != domain:
        domains.append(
            {
                "capabilities": "Email, OfficeCommunicationsOnlineService",
                "isDefault": False,
                "isInitial": True,
                "name": initial,
                "type": "Managed",
            }
        )
    return {
        "id": tenant_id,
        "businessPhones": [],
        "city": None,
        "country": None,
        "countryLetterCode": "US",
        "createdDateTime": timezones.format_utc_seconds(created) + "Z",
        "displayName": name,
        "marketingNotificationEmails": [],
        "onPremisesLastSyncDateTime": None,
        "onPremisesSyncEnabled": None,
        "postalCode": None,
        "preferredLanguage": "en",
        "securityComplianceNotificationMails": [],
        "securityComplianceNotificationPhones": [],
        "state": None,
        "street": None,
        "technicalNotificationMails": [],
        "tenantType": "AAD",
        "assignedPlans": [],
        "provisionedPlans": [],
        "verifiedDomains": domains,
    }
