"""Application permissions the sandbox's Graph checks, and the 403 each answers without."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Permission:
    """Application permissions of which one suffices, and the 403 the service answers without."""

    any_of: tuple[str, ...]
    code: str
    message: str


_EXCHANGE_DENIED = "Access is denied. Check credentials and try again."
_DIRECTORY_DENIED = "Insufficient privileges to complete the operation."
CALENDARS_READ = Permission(
    ("Calendars.Read", "Calendars.ReadBasic", "Calendars.ReadWrite"),
    "ErrorAccessDenied",
    _EXCHANGE_DENIED,
)
CALENDARS_WRITE = Permission(("Calendars.ReadWrite",), "ErrorAccessDenied", _EXCHANGE_DENIED)
MAILBOX_SETTINGS_READ = Permission(
    ("MailboxSettings.Read", "MailboxSettings.ReadWrite"), "ErrorAccessDenied", _EXCHANGE_DENIED
)
USERS_READ = Permission(
    (
        "User.Read.All",
        "User.ReadBasic.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ),
    "Authorization_RequestDenied",
    _DIRECTORY_DENIED,
)
ORGANIZATION_READ = Permission(
    (
        "Organization.Read.All",
        "Organization.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ),
    "Authorization_RequestDenied",
    _DIRECTORY_DENIED,
)
