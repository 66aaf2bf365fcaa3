"""Email addresses are checked the way pydantic's ``EmailStr`` (email-validator) checks them,
with a fast path for plain ASCII addresses: the fast path may only accept what email-validator
accepts, giving the same address. Generated addresses and the edges email-validator refuses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, EmailStr, TypeAdapter, ValidationError

from connector.deals.models import Email

ours = TypeAdapter(Email)


class _Reference(BaseModel):
    email: EmailStr


def reference(value: str) -> str | None:
    """What the product accepted before the fast path (EmailStr, then lower-cased)."""
    try:
        return _Reference(email=value).email.strip().lower()
    except ValidationError:
        return None


def checked(value: str) -> str | None:
    try:
        return ours.validate_python(value)
    except ValidationError:
        return None


_ATOMS = st.text(alphabet="abcXYZ019_+-.%!#'~", min_size=0, max_size=12)
_LABELS = st.text(alphabet="abcQ09-", min_size=0, max_size=10)
_ADDRESSES = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join([*labels, tld])}",
    _ATOMS,
    st.lists(_LABELS, min_size=0, max_size=3),
    st.sampled_from(
        ["com", "COM", "de", "c0m", "1", "test", "local", "onion", "x", "", "xn--p1ai"]
    ),
)


@settings(max_examples=3000, deadline=None)
@given(_ADDRESSES)
def test_generated_addresses_are_judged_as_email_validator_judges_them(value: str) -> None:
    assert checked(value) == reference(value)


@pytest.mark.parametrize(
    "value",
    [
        "ada@contoso.com",
        "  Ada.Lovelace@Contoso.COM ",
        "ada+deals@mail.contoso.co.uk",
        "a" * 64 + "@contoso.com",
        "a" * 65 + "@contoso.com",
        "ada@" + "b" * 63 + ".com",
        "ada@" + "b" * 64 + ".com",
        "ada@" + ".".join(["b" * 60] * 4) + ".com",
        "ada@" + ".".join(["b" * 61] * 4) + ".com",
        "ada..lovelace@contoso.com",
        ".ada@contoso.com",
        "ada.@contoso.com",
        "ada@contoso",
        "ada@-contoso.com",
        "ada@contoso-.com",
        "ada@con--toso.com",
        "ada@xn--80ak6aa92e.com",
        "ada@contoso.123",
        "ada@sub.localhost",
        "ada@printer.local",
        "ada@example.test",
        "ada@intranet.invalid",
        "ada@1.2.3.4",
        "ada@[127.0.0.1]",
        "Ada Lovelace <ada@contoso.com>",
        "\u212aelvin@contoso.com",  # the Kelvin sign lower-cases to an ASCII "k"
        "ada@contoso.com\u212a",
        "adá@contoso.com",
        "ada@bücher.de",
        "",
        "@contoso.com",
        "ada@",
        "ada@@contoso.com",
    ],
)
def test_edges_are_judged_as_email_validator_judges_them(value: str) -> None:
    assert checked(value) == reference(value)


def test_the_openapi_schema_still_says_email() -> None:
    assert ours.json_schema() == {"format": "email", "type": "string"}
