"""The admin console: sign-in through the sandbox's Entra, who gets in, CSRF, session expiry,
bad input shown next to its field, stored strings escaped, and each action's effect and audit."""

from __future__ import annotations

import datetime as dt
import time
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from pydantic import SecretStr
from sqlalchemy import select

from connector.admin.console.signing import FLOW_COOKIE, SESSION_COOKIE, new_admin, session_cookie
from connector.api.keys import create_key
from connector.settings import SETTINGS_EXTENSION
from connector.store.db import get_store
from connector.store.models import (
    AuditEntry,
    Deal,
    Interaction,
    Mailbox,
    OutboxItem,
    PrivacyExclusion,
    Rep,
)
from connector.store.types import InteractionKind, InteractionStatus, OutboxStatus
from tests.connector.console_fixtures import (
    Console,
    csrf_in,
    csrf_of,
    signed_in_client,
)

PAGES = [
    "/admin/setup",
    "/admin/sync",
    "/admin/deliveries",
    "/admin/reps",
    "/admin/meetings",
    "/admin/meetings/skipped?rep=x@contoso.example",
    "/admin/funnel",
    "/admin/privacy",
    "/admin/audit",
    "/admin/setup/teams-package.zip",
]
ACTIONS = [
    "/admin/sync/sync-now",
    "/admin/sync/resubscribe",
    "/admin/deliveries/retry",
    "/admin/deliveries/drop",
    "/admin/reps/active",
    "/admin/reps/mapping",
    "/admin/privacy/exclusions",
    "/admin/privacy/exclusions/remove",
    "/admin/sign-out",
]
EVIL = "<script>alert('x')</script>"


def _audit(app: Flask) -> list[tuple[str, str, str]]:
    with get_store(app).session() as session:
        return [(a.actor, a.action, a.target) for a in session.scalars(select(AuditEntry))]


# ---- who gets in ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_no_page_without_sign_in(console_app: Flask, path: str) -> None:
    answer = console_app.test_client().get(path)

    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/admin/sign-in?next=")


@pytest.mark.parametrize("path", ACTIONS[:-1])
def test_no_action_without_sign_in(console_app: Flask, path: str) -> None:
    answer = console_app.test_client().post(path, data={"rep": "a@b.example"})

    assert answer.status_code == 401
    assert _audit(console_app) == []


def test_sign_in_is_off_without_a_session_key_and_says_which_setting(
    tmp_path: object, console_app: Flask
) -> None:
    settings = console_app.extensions[SETTINGS_EXTENSION]
    console_app.extensions[SETTINGS_EXTENSION] = settings.model_copy(
        update={"admin_session_key": None}
    )

    answer = console_app.test_client().get("/admin/sign-in")

    assert answer.status_code == 503
    assert "DEALBRIDGE_ADMIN_SESSION_KEY" in answer.text


def test_an_admin_with_the_app_role_signs_in_through_entra(console_m365: Console) -> None:
    upn = console_m365.add_admin()
    http = requests.Session()

    back = console_m365.sign_in(upn, http)

    assert back.status_code == 302
    assert back.headers["Location"] == "/admin/"
    cookie = next(c for c in http.cookies if c.name == SESSION_COOKIE)
    assert cookie.path == "/admin"
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert FLOW_COOKIE not in {c.name for c in http.cookies}  # the flow is used once
    page = http.get(f"{console_m365.base_url}/admin/reps", timeout=30)
    assert page.status_code == 200
    assert "Ada Admin" in page.text


def test_a_user_without_the_role_is_refused(console_m365: Console) -> None:
    upn = console_m365.add_admin("bob", "Bob Rep", role=False)
    http = requests.Session()

    back = console_m365.sign_in(upn, http)

    assert back.status_code == 403
    assert "DealBridge.Admin" in back.text
    assert SESSION_COOKIE not in {c.name for c in http.cookies}
    assert http.get(f"{console_m365.base_url}/admin/reps", allow_redirects=False).status_code == 302


def test_a_user_listed_in_dealbridge_admins_gets_in_without_the_role(
    console_m365: Console,
) -> None:
    upn = console_m365.add_admin("carol", "Carol Ops", role=False)
    app = console_m365.app
    settings = app.extensions[SETTINGS_EXTENSION]
    app.extensions[SETTINGS_EXTENSION] = settings.model_copy(update={"admins": [upn.upper()]})

    back = console_m365.sign_in(upn)

    assert back.status_code == 302


def test_the_sign_in_cookie_is_secure_off_localhost_and_lax(console_m365: Console) -> None:
    client = console_m365.app.test_client()

    local = client.get("/admin/sign-in", base_url="http://127.0.0.1")
    public = client.get("/admin/sign-in", base_url="http://dealbridge.contoso.example")

    assert "Secure" not in local.headers["Set-Cookie"]
    assert "Secure" in public.headers["Set-Cookie"]
    for answer in (local, public):
        assert "HttpOnly" in answer.headers["Set-Cookie"]
        assert "SameSite=Lax" in answer.headers["Set-Cookie"]
    assert urlsplit(public.headers["Location"]).path.endswith("/oauth2/v2.0/authorize")


def test_a_code_from_another_sign_in_is_refused(console_m365: Console) -> None:
    upn = console_m365.add_admin()
    first, second = requests.Session(), requests.Session()
    start = first.get(f"{console_m365.base_url}/admin/sign-in", allow_redirects=False)
    second.get(f"{console_m365.base_url}/admin/sign-in", allow_redirects=False)
    chosen = first.post(start.headers["Location"], data={"login": upn}, allow_redirects=False)

    stolen = second.get(chosen.headers["Location"], allow_redirects=False)  # state differs

    assert stolen.status_code == 401
    assert SESSION_COOKIE not in {c.name for c in second.cookies}


def test_an_expired_session_is_sent_to_sign_in(console_app: Flask) -> None:
    settings = console_app.extensions[SETTINGS_EXTENSION]
    old = new_admin("ada@contoso.example", "Ada", "oid", at=time.time() - 9 * 3600)
    client = console_app.test_client()
    client.set_cookie(SESSION_COOKIE, session_cookie(settings, old))

    assert client.get("/admin/reps").status_code == 302
    assert client.post("/admin/reps/active", data={"csrf": old.csrf}).status_code == 401


def test_a_cookie_signed_with_another_key_is_not_a_session(console_app: Flask) -> None:
    other = console_app.extensions[SETTINGS_EXTENSION].model_copy(
        update={"admin_session_key": SecretStr("another-key-" + "z" * 32)}
    )
    client = console_app.test_client()
    client.set_cookie(SESSION_COOKIE, session_cookie(other, new_admin("ada@x.example", "A", "o")))

    assert client.get("/admin/reps").status_code == 302


def test_sign_out_ends_the_session(console_app: Flask) -> None:
    client = signed_in_client(console_app)

    answer = client.post("/admin/sign-out", data={"csrf": csrf_of(client)})

    assert answer.status_code == 302
    assert f"{SESSION_COOKIE}=;" in answer.headers["Set-Cookie"]


# ---- CSRF -----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_a_form_without_the_sessions_csrf_token_changes_nothing(
    console_app: Flask, token: str | None
) -> None:
    with get_store(console_app).session() as session:
        session.add(Rep(email="rita@contoso.example", display_name="Rita"))
    client = signed_in_client(console_app)
    data = {"rep": "rita@contoso.example", "active": "false"}
    if token is not None:
        data["csrf"] = token

    answer = client.post("/admin/reps/active", data=data)

    assert answer.status_code == 400
    with get_store(console_app).session() as session:
        assert session.scalar(select(Rep.active)) is True
    assert _audit(console_app) == []


# ---- actions: the store's effect and the audit row ------------------------------------------


def _dead_item(app: Flask, error: str = "Graph said 403") -> int:
    with get_store(app).session() as session:
        item = OutboxItem(
            kind="calendar",
            idempotency_key="calendar:reminder:1",
            payload={},
            status=OutboxStatus.DEAD,
            attempts=15,
            last_error=error,
        )
        session.add(item)
        session.flush()
        return item.id


def test_retry_makes_a_dead_delivery_due_now_and_is_audited(console_app: Flask) -> None:
    item_id = _dead_item(console_app)
    client = signed_in_client(console_app)

    answer = client.post("/admin/deliveries/retry", data={"item": item_id, "csrf": csrf_of(client)})

    assert answer.status_code == 303
    with get_store(console_app).session() as session:
        item = session.get(OutboxItem, item_id)
        assert item is not None
        assert (item.status, item.attempts) == (OutboxStatus.PENDING, 0)
    assert _audit(console_app) == [
        ("ada@contoso.example", "delivery.retry", f"calendar #{item_id}")
    ]


def test_drop_forgets_a_dead_delivery_and_records_its_error(console_app: Flask) -> None:
    item_id = _dead_item(console_app, "the calendar is gone")
    client = signed_in_client(console_app)

    client.post("/admin/deliveries/drop", data={"item": item_id, "csrf": csrf_of(client)})

    with get_store(console_app).session() as session:
        assert session.get(OutboxItem, item_id) is None
        entry = session.scalar(select(AuditEntry))
        assert entry is not None
        assert entry.action == "delivery.drop"
        assert "the calendar is gone" in (entry.detail or "")


def test_retry_of_an_item_that_is_not_dead_does_nothing(console_app: Flask) -> None:
    client = signed_in_client(console_app)

    answer = client.post("/admin/deliveries/retry", data={"item": "999", "csrf": csrf_of(client)})

    assert answer.status_code == 303
    assert _audit(console_app) == []


def test_deactivating_a_rep_has_the_apis_effects(console_app: Flask) -> None:
    with get_store(console_app).session() as session:
        session.add(Rep(email="rita@contoso.example", display_name="Rita"))
        session.add(Mailbox(rep_email="rita@contoso.example", subscription_id="sub-1"))
    client = signed_in_client(console_app)

    client.post(
        "/admin/reps/active",
        data={"rep": "rita@contoso.example", "active": "false", "csrf": csrf_of(client)},
    )

    with get_store(console_app).session() as session:
        assert session.scalar(select(Rep.active)) is False
        assert session.scalar(select(Mailbox)) is None  # her mailbox is no longer read
        kinds = set(session.scalars(select(OutboxItem.kind)))
        assert "subscription" in kinds  # Graph's subscription deleted through the outbox
    assert _audit(console_app) == [
        ("ada@contoso.example", "rep.deactivate", "rita@contoso.example")
    ]


def test_an_exclusion_is_validated_stored_and_audited(console_app: Flask) -> None:
    client = signed_in_client(console_app)

    answer = client.post(
        "/admin/privacy/exclusions",
        data={"kind": "address", "value": " CEO@Fabrikam.example ", "csrf": csrf_of(client)},
    )

    assert answer.status_code == 303
    with get_store(console_app).session() as session:
        row = session.scalar(select(PrivacyExclusion))
        assert row is not None
        assert (row.kind, row.value, row.created_by) == (
            "address",
            "ceo@fabrikam.example",
            "ada@contoso.example",
        )
    assert _audit(console_app)[0][1:] == ("exclusion.add", "address ceo@fabrikam.example")


def test_the_csv_mapping_dry_run_writes_nothing_and_apply_writes(console_app: Flask) -> None:
    with get_store(console_app).session() as session:
        session.add(Rep(email="rita@contoso.example", display_name="Rita"))
    client = signed_in_client(console_app)
    text = (
        "email,display_name,time_zone,manager\n"
        "rita@contoso.example,Rita Rep,Europe/Berlin,\n"
        "sam@contoso.example,Sam New,,boss@contoso.example\n"
    )

    dry = client.post(
        "/admin/reps/mapping",
        data={"text": text, "csrf": csrf_of(client)},
    )

    assert dry.status_code == 200
    assert "update" in dry.text
    assert "create" in dry.text
    with get_store(console_app).session() as session:
        assert session.scalar(select(Rep).where(Rep.email == "sam@contoso.example")) is None

    client.post("/admin/reps/mapping", data={"text": text, "apply": "1", "csrf": csrf_of(client)})

    with get_store(console_app).session() as session:
        rita = session.scalar(select(Rep).where(Rep.email == "rita@contoso.example"))
        sam = session.scalar(select(Rep).where(Rep.email == "sam@contoso.example"))
        assert rita is not None
        assert sam is not None
        assert (rita.display_name, rita.time_zone) == ("Rita Rep", "Europe/Berlin")
        assert sam.manager_email == "boss@contoso.example"
    assert _audit(console_app)[0][1] == "reps.mapping"


# ---- bad input next to its field ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "data", "field", "words"),
    [
        (
            "/admin/privacy/exclusions",
            {"kind": "address", "value": "not an address"},
            "value",
            "not an address such as",
        ),
        ("/admin/privacy/exclusions", {"kind": "domain", "value": "a b"}, "value", ""),
        ("/admin/privacy/exclusions", {"kind": "planet", "value": "x"}, "kind", "choose"),
        ("/admin/reps/mapping", {"text": "email\nnot-an-address\n"}, "file", "line 2"),
        (
            "/admin/reps/mapping",
            {"text": "email,time_zone\na@b.example,Mars/Base\n"},
            "file",
            "IANA",
        ),
        ("/admin/reps/mapping", {"text": ""}, "file", "choose a CSV file"),
    ],
)
def test_a_forms_bad_input_is_shown_next_to_its_field(
    console_app: Flask, path: str, data: dict[str, str], field: str, words: str
) -> None:
    client = signed_in_client(console_app)

    answer = client.post(path, data={**data, "csrf": csrf_of(client)})

    assert answer.status_code == 422
    marker = f'id="{field}-error"'
    assert marker in answer.text
    shown = answer.text.split(marker, 1)[1].split("</span>", 1)[0]
    assert words in shown
    assert f'aria-describedby="{field}-error"' in answer.text
    assert _audit(console_app) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("pipeline=nope", "pipeline"),
        ("from=2026-13-40", "from"),
        ("owner=not-an-address", "owner"),
        ("from=2026-06-01&to=2026-01-01", "to"),
    ],
)
def test_the_funnels_bad_cuts_are_shown_next_to_their_field(
    console_app: Flask, query: str, field: str
) -> None:
    answer = signed_in_client(console_app).get(f"/admin/funnel?{query}")

    assert answer.status_code == 422
    assert f'id="{field}-error"' in answer.text


def test_an_unknown_rep_for_skipped_meetings_is_shown_next_to_the_field(
    console_app: Flask,
) -> None:
    answer = signed_in_client(console_app).get("/admin/meetings/skipped?rep=nobody@x.example")

    assert answer.status_code == 422
    assert 'id="rep-error"' in answer.text


# ---- escaping and the page's security headers -----------------------------------------------


def test_every_stored_string_is_escaped(console_app: Flask) -> None:
    now = dt.datetime.now(dt.UTC)
    with get_store(console_app).session() as session:
        session.add(Rep(email="rita@contoso.example", display_name=EVIL, manager_email=None))
        deal = Deal(
            crm_id=EVIL[:20],
            title=EVIL,
            pipeline_id="classic5",
            stage_key="qualify",
            owner_email="rita@contoso.example",
            lead_source=EVIL,
            product=EVIL,
        )
        session.add(deal)
        session.flush()
        session.add(
            Interaction(
                deal_id=deal.id,
                kind=InteractionKind.MEETING,
                source="outlook",
                external_key="k1",
                status=InteractionStatus.HELD,
                subject=EVIL,
                started_at=now,
                match_rule="contact",
                matched_address=EVIL,
            )
        )
        session.add(Mailbox(rep_email="rita@contoso.example", last_error=EVIL, failures=2))
        session.add(
            OutboxItem(
                kind="calendar",
                idempotency_key=EVIL,
                payload={},
                status=OutboxStatus.DEAD,
                last_error=EVIL,
            )
        )
        session.add(PrivacyExclusion(kind="category", value=EVIL, created_by=EVIL))
        session.add(AuditEntry(actor=EVIL, action="x", target=EVIL, detail=EVIL))
    client = signed_in_client(console_app)

    for path in [
        "/admin/sync",
        "/admin/deliveries",
        "/admin/reps",
        "/admin/meetings",
        "/admin/funnel",
        "/admin/privacy",
        "/admin/audit",
    ]:
        page = client.get(path).text
        assert "<script" not in page, path
        assert "&lt;script&gt;" in page, path


def test_pages_have_a_strict_policy_and_no_inline_script(console_app: Flask) -> None:
    client = signed_in_client(console_app)

    answer = client.get("/admin/reps")

    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "<script" not in answer.text
    assert "<style" not in answer.text
    with client.get("/admin/static/console.css") as stylesheet:
        assert stylesheet.status_code == 200


def test_a_signed_in_admin_sees_the_csrf_field_in_every_form(console_app: Flask) -> None:
    with get_store(console_app).session() as session:
        session.add(Rep(email="rita@contoso.example", display_name="Rita"))
    client = signed_in_client(console_app)

    page = client.get("/admin/reps").text

    assert csrf_in(page) == csrf_of(client)
    assert page.count('method="post"') == page.count('name="csrf"')


def test_deactivating_a_rep_whose_mailbox_has_events_is_not_a_500(console_app: Flask) -> None:
    # Found by the browser test on the demo: the mailbox's events went with the mailbox (ON
    # DELETE CASCADE) before their own DELETE ran, which SQLAlchemy reports (SAWarning).
    from connector.store.models import MailboxEvent

    with get_store(console_app).session() as session:
        session.add(Rep(email="rita@contoso.example", display_name="Rita"))
        mailbox = Mailbox(rep_email="rita@contoso.example", subscription_id="sub-1")
        session.add(mailbox)
        session.flush()
        for n in range(3):
            session.add(MailboxEvent(mailbox_id=mailbox.id, event_id=f"e{n}", meeting_key=f"k{n}"))

    with get_store(console_app).session() as session:
        key = create_key(session, "test", "write")
    answer = console_app.test_client().put(
        "/api/v1/reps/rita@contoso.example",
        json={"active": False},
        headers={"Authorization": f"Bearer {key}"},
    )

    assert answer.status_code == 200, answer.text
    with get_store(console_app).session() as session:
        assert session.scalar(select(MailboxEvent)) is None


def test_an_exclusion_added_in_the_console_keeps_the_next_rounds_meeting_off_the_deal(
    console_m365: Console,
) -> None:
    from connector.meetings.sync import sync_mailbox
    from tests.connector.conftest import meeting
    from tests.connector.test_meeting_sync import PAST, add_deal

    tenant = console_m365.tenant
    ann = tenant.add_rep("ann", "Ann Lee")
    add_deal(tenant, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    tenant.add_event(ann, meeting("Pricing", PAST, ["dana@fabrikam.com"]))
    client = signed_in_client(console_m365.app)
    client.post(
        "/admin/privacy/exclusions",
        data={"kind": "domain", "value": "Fabrikam.com", "csrf": csrf_of(client)},
    )

    report = sync_mailbox(console_m365.app, ann)

    assert report.error is None
    assert report.skipped == {"excluded_domain": 1}
    with get_store(console_m365.app).session() as session:
        assert session.scalar(select(Interaction)) is None


def test_the_same_exclusion_twice_is_refused_next_to_the_field(console_app: Flask) -> None:
    client = signed_in_client(console_app)
    data = {"kind": "category", "value": "Private", "csrf": csrf_of(client)}
    client.post("/admin/privacy/exclusions", data=data)

    again = client.post("/admin/privacy/exclusions", data={**data, "value": "PRIVATE"})

    assert again.status_code == 422
    assert "already excluded" in again.text.split('id="value-error"', 1)[1]


def test_removing_an_exclusion_is_audited(console_app: Flask) -> None:
    with get_store(console_app).session() as session:
        row = PrivacyExclusion(kind="domain", value="litware.com", created_by="x@contoso.example")
        session.add(row)
        session.flush()
        row_id = row.id
    client = signed_in_client(console_app)

    client.post(
        "/admin/privacy/exclusions/remove", data={"exclusion": row_id, "csrf": csrf_of(client)}
    )

    with get_store(console_app).session() as session:
        assert session.scalar(select(PrivacyExclusion)) is None
    assert _audit(console_app)[0][1:] == ("exclusion.remove", "domain litware.com")


def test_sync_now_makes_the_mailbox_due_and_is_audited(console_app: Flask) -> None:
    with get_store(console_app).session() as session:
        session.add(Mailbox(rep_email="rita@contoso.example", needs_sync=False))
    client = signed_in_client(console_app)

    answer = client.post(
        "/admin/sync/sync-now", data={"rep": "rita@contoso.example", "csrf": csrf_of(client)}
    )

    assert answer.status_code == 303
    with get_store(console_app).session() as session:
        assert session.scalar(select(Mailbox.needs_sync)) is True
    assert _audit(console_app) == [
        ("ada@contoso.example", "mailbox.sync_now", "rita@contoso.example")
    ]


def test_resubscribe_subscribes_the_mailbox_again_through_graph(console_m365: Console) -> None:
    tenant = console_m365.tenant
    ann = tenant.add_rep("ann", "Ann Lee")
    with get_store(console_m365.app).session() as session:
        session.add(Mailbox(rep_email=ann))
    client = signed_in_client(console_m365.app)

    answer = client.post("/admin/sync/resubscribe", data={"rep": ann, "csrf": csrf_of(client)})

    assert answer.status_code == 303
    with get_store(console_m365.app).session() as session:
        mailbox = session.scalar(select(Mailbox))
        assert mailbox is not None
        assert mailbox.subscription_id
        assert mailbox.subscription_expires_at is not None
    [(_actor, action, target)] = _audit(console_m365.app)
    assert (action, target) == ("mailbox.resubscribe", ann)


def test_the_teams_package_downloads_from_setup(console_app: Flask) -> None:
    import io
    import zipfile

    settings = console_app.extensions[SETTINGS_EXTENSION]
    console_app.extensions[SETTINGS_EXTENSION] = settings.model_copy(
        update={
            "teams_app_id": "11111111-2222-4333-8444-555555555555",
            "client_id": "4b1f2e9a-0c7d-4e35-8f60-9a2b7c3d5e14",
            "public_url": "https://dealbridge.contoso.example",
        }
    )

    answer = signed_in_client(console_app).get("/admin/setup/teams-package.zip")

    assert answer.status_code == 200, answer.text[:500]
    assert answer.mimetype == "application/zip"
    assert "manifest.json" in zipfile.ZipFile(io.BytesIO(answer.data)).namelist()


def test_a_teams_package_that_cannot_be_built_says_why_on_the_page(console_app: Flask) -> None:
    answer = signed_in_client(console_app).get("/admin/setup/teams-package.zip")

    assert answer.status_code == 422
    assert "The Teams package cannot be built" in answer.text


def test_a_reps_preferences_are_shown_with_their_defaults(console_app: Flask) -> None:
    from connector.deals.reps import set_digest

    with get_store(console_app).session() as session:
        session.add(Rep(email="rita@contoso.example", display_name="Rita"))
        session.add(Rep(email="sam@contoso.example", display_name="Sam"))
        set_digest(session, "sam@contoso.example", True)

    page = signed_in_client(console_app).get("/admin/reps").text

    rita = page.split("rita@contoso.example", 1)[1].split("</tr>", 1)[0]
    sam = page.split("sam@contoso.example", 1)[1].split("</tr>", 1)[0]
    assert "<td>off</td>" in rita
    assert "<td>on</td>" in sam
