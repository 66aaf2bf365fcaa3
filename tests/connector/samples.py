"""Sample request bodies."""

from __future__ import annotations

from typing import Any


def deal_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Fabrikam ERP rollout",
        "pipeline": "classic5",
        "stage": "first_interaction",
        "owner": "ann.lee@contoso.com",
        "account": {"name": "Fabrikam", "domains": ["fabrikam.com"]},
        "contacts": [{"name": "Dana Ruiz", "email": "dana.ruiz@fabrikam.com"}],
        "amount": "84000.00",
        "currency": "EUR",
        "expected_close_date": "2027-01-31",
        "crm_url": "https://crm.example.com/opportunities/OPP-1001",
    }
    body.update(fields)
    return body
