"""Public pages the Teams app package links to: privacy and terms, and the consent landing."""

from __future__ import annotations

from flask import Blueprint, Response, render_template_string, request

pages = Blueprint("pages", __name__)

_LAYOUT = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>DealBridge — {{ title }}</title>
<style>body{font:16px/1.6 system-ui,sans-serif;max-width:760px;margin:2em auto;padding:0 1em;
color:#222}h1{color:#0E7C86}</style></head>
<body><h1>{{ title }}</h1>{{ body|safe }}</body></html>"""

_PRIVACY = """
<p>DealBridge connects your company's CRM with Microsoft 365. It is run by your company;
what it stores stays in your company's database.</p>
<h2>What DealBridge reads</h2>
<ul>
<li>The calendars of the sales reps it serves: for each meeting with a customer, the subject,
start and end, organizer, attendees with their responses, whether it is an online meeting,
the location name and the series it belongs to. <strong>Meeting bodies are never
stored.</strong> Private and confidential meetings, internal-only meetings and meetings on the
exclusion lists are never logged.</li>
<li>Mailbox settings (time zone and working hours), to place reminders in working time.</li>
<li>The organization's verified domains, to tell internal from external attendees.</li>
</ul>
<h2>What DealBridge writes</h2>
<ul>
<li>Reminder events on the rep's own calendar, without attendees.</li>
<li>Adaptive Cards in the rep's chat with the DealBridge bot.</li>
<li>Interactions on deals in your CRM, through the webhooks your CRM administrators set up.</li>
</ul>
<p>Questions: ask your company's Microsoft 365 or CRM administrator.</p>
"""

_TERMS = """
<p>DealBridge is provided to you by your employer for your work with customers. Use it as
you would your CRM: the reminders and logged meetings it shows are business records.</p>
<p>Your administrator decides which calendars are read and which deals are connected; you can
fix a meeting logged on the wrong deal with <em>Wrong deal?</em> on its card.</p>
"""


@pages.get("/privacy")
def privacy() -> str:
    return render_template_string(_LAYOUT, title="Privacy", body=_PRIVACY)


@pages.get("/terms")
def terms() -> str:
    return render_template_string(_LAYOUT, title="Terms of use", body=_TERMS)


@pages.get("/admin/consented")
def consented() -> Response:
    """Where Entra sends the admin after the consent link (with ?admin_consent=True or an error)."""

    if request.args.get("admin_consent", "").lower() == "true":
        body = "<p>Consent granted. Run <code>dealbridge doctor</code> to check everything.</p>"
        return Response(render_template_string(_LAYOUT, title="Consent granted", body=body))
    error = request.args.get("error_description") or request.args.get("error") or "unknown"
    body = "<p>Consent was not granted: {{ error }}</p>"
    html = render_template_string(
        _LAYOUT, title="Consent not granted", body=render_template_string(body, error=error)
    )
    return Response(html, status=400)
