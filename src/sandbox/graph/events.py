"""`/users/{id}/events`: create, list, get, update, delete, cancel, respond, instances."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sandbox import exchange_ids, timezones
from sandbox.calendars import Instance, MailboxCalendar, ResponseKind, series_instances, web_link
from sandbox.errors import GraphError
from sandbox.event_fields import body_as, body_preview, check_zone, parse_event_input
from sandbox.graph.permissions import CALENDARS_READ, CALENDARS_WRITE
from sandbox.graph.query import Predicate, int_option, parse_filter, select_names, sort_items
from sandbox.graph.service import Handler, Router
from sandbox.graph.users import mailbox_user
from sandbox.graph.wire import GraphRequest, GraphResponse, applied_preferences, no_content, ok

if TYPE_CHECKING:
    from sandbox.tenant import Tenant

EVENT_PROPERTIES = {
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "transactionId",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "iCalUId",
    "reminderMinutesBeforeStart",
    "isReminderOn",
    "hasAttachments",
    "subject",
    "bodyPreview",
    "importance",
    "sensitivity",
    "isAllDay",
    "isCancelled",
    "isOrganizer",
    "responseRequested",
    "seriesMasterId",
    "showAs",
    "type",
    "webLink",
    "onlineMeetingUrl",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "allowNewTimeProposals",
    "isDraft",
    "hideAttendees",
    "responseStatus",
    "body",
    "start",
    "end",
    "location",
    "locations",
    "recurrence",
    "attendees",
    "organizer",
    "onlineMeeting",
    "originalStart",
    "singleValueExtendedProperties",
}
MAX_PAGE = 1000
DEFAULT_PAGE = 10
_EXPAND = re.compile(
    r"^\s*singleValueExtendedProperties\s*(?:\(\s*\$filter\s*=\s*(?P<filter>.+)\)\s*)?$", re.I
)


@dataclass(frozen=True)
class EventView:
    """How a client asked to see events: time zone, body type, `$select`, `$expand`."""

    zone: str = "UTC"
    body_type: str | None = None
    select: tuple[str, ...] | None = None
    expand: Predicate | None = None
    expanded: bool = False

    @classmethod
    def of(cls, request: GraphRequest) -> EventView:
        """The view a request asks for (Prefer headers, `$select`, `$expand`)."""
        prefer = request.prefer
        zone = check_zone(prefer.time_zone) if prefer.time_zone else "UTC"
        names = select_names(request.query.get("$select"), EVENT_PROPERTIES, "event")
        expand_text = request.query.get("$expand")
        predicate: Predicate | None = None
        if expand_text:
            match = _EXPAND.match(expand_text)
            if match is None:
                raise GraphError(
                    400,
                    "BadRequest",
                    f"Parsing OData Select and Expand failed: '{expand_text}' "
                    "cannot be expanded on microsoft.graph.event by the sandbox.",
                )
            if match["filter"]:
                predicate = parse_filter(match["filter"])
        return cls(
            zone,
            prefer.body_content_type,
            tuple(names) if names else None,
            predicate,
            bool(expand_text),
        )


def _date_time(moment: datetime, zone: str) -> dict[str, str]:
    return timezones.format_local(moment, zone)


def event_json(instance: Instance, view: EventView) -> dict[str, Any]:
    """An event, occurrence or exception as Graph returns it (user-post-events.md example)."""
    event = instance.event
    fields = event.fields
    occurrence = instance.type == "occurrence"
    master_id = event.id if occurrence else event.series_master_id
    ical_uid = event.ical_uid
    if occurrence and instance.original_start is not None:
        local_day = instance.original_start.astimezone(timezones.zone(event.start_zone))
        ical_uid = exchange_ids.occurrence_ical_uid(event.ical_uid, local_day)
    body = body_as(fields["body"], view.body_type)
    item: dict[str, Any] = {
        "@odata.etag": f'W/"{event.change_key}"',
        "id": instance.id,
        "createdDateTime": timezones.format_timestamp(event.created),
        "lastModifiedDateTime": timezones.format_timestamp(event.last_modified),
        "changeKey": event.change_key,
        "categories": list(fields["categories"]),
        "transactionId": None if occurrence else event.transaction_id,
        "originalStartTimeZone": event.start_zone,
        "originalEndTimeZone": event.end_zone,
        "iCalUId": ical_uid,
        "reminderMinutesBeforeStart": fields["reminderMinutesBeforeStart"],
        "isReminderOn": fields["isReminderOn"],
        "hasAttachments": False,
        "subject": fields["subject"],
        "bodyPreview": body_preview(fields["body"]),
        "importance": fields["importance"],
        "sensitivity": fields["sensitivity"],
        "isAllDay": fields["isAllDay"],
        "isCancelled": event.is_cancelled,
        "isOrganizer": event.is_organizer,
        "responseRequested": fields["responseRequested"],
        "seriesMasterId": master_id,
        "showAs": fields["showAs"],
        "type": instance.type,
        "webLink": web_link(instance.id),
        "onlineMeetingUrl": None,
        "isOnlineMeeting": fields["isOnlineMeeting"],
        "onlineMeetingProvider": fields["onlineMeetingProvider"],
        "allowNewTimeProposals": fields["allowNewTimeProposals"],
        "isDraft": fields["isDraft"],
        "hideAttendees": fields["hideAttendees"],
        "responseStatus": dict(event.response_status),
        "body": body,
        "start": _date_time(instance.start, view.zone),
        "end": _date_time(instance.end, view.zone),
        "location": fields["location"],
        "locations": fields["locations"],
        "recurrence": (
            event.recurrence.to_graph(event.start_zone)
            if event.recurrence is not None and instance.type == "seriesMaster"
            else None
        ),
        "attendees": fields["attendees"],
        "organizer": event.organizer,
        "onlineMeeting": event.online_meeting,
    }
    if instance.original_start is not None:
        item["originalStart"] = timezones.format_utc_seconds(instance.original_start) + "Z"
    if view.expanded:
        props = list(event.extended.values())
        if view.expand is not None:
            props = [p for p in props if view.expand(p)]
        item["singleValueExtendedProperties"] = [dict(p) for p in props]
    if view.select is not None:
        chosen = {"@odata.etag": item["@odata.etag"], "id": item["id"]}
        for name in view.select:
            if name in item:
                chosen[name] = item[name]
        if "singleValueExtendedProperties" in item:
            chosen["singleValueExtendedProperties"] = item["singleValueExtendedProperties"]
        return chosen
    return item


def filterable_json(instance: Instance) -> dict[str, Any]:
    """An item as `$filter` sees it: every property, extended properties included, in UTC."""
    return event_json(instance, EventView(expanded=True))


def _calendar(tenant: Tenant, user_id: str) -> MailboxCalendar:
    return tenant.calendars.calendar(user_id)


def paged(
    request: GraphRequest,
    items: list[Instance],
    view: EventView,
    path: str,
    context: str,
    default_page: int = DEFAULT_PAGE,
) -> GraphResponse:
    """A collection answer: `$filter`, `$orderby`, `$top`/`$skip` paging with `@odata.nextLink`."""
    query = request.query
    if "$filter" in query:
        keep = parse_filter(query["$filter"])
        items = [i for i in items if keep(filterable_json(i))]
    if "$orderby" in query:
        pairs = {id(i): i for i in items}
        ordered = sort_items(
            [filterable_json(i) | {"__key": id(i)} for i in items], query["$orderby"]
        )
        items = [pairs[row["__key"]] for row in ordered]
    top = int_option(query, "$top", maximum=MAX_PAGE)
    skip = int_option(query, "$skip") or 0
    prefer = request.prefer.max_page_size
    page_size = top or min(prefer or default_page, MAX_PAGE)
    page = items[skip : skip + page_size]
    body: dict[str, Any] = {"@odata.context": context}
    if skip + page_size < len(items):
        rest = {k: v for k, v in query.items() if k != "$skip"} | {"$skip": str(skip + page_size)}
        body["@odata.nextLink"] = f"{request.graph_base}{path}?{urlencode(rest, safe='$,()/:')}"
    body["value"] = [event_json(i, view) for i in page]
    return ok(body, headers=applied_preferences(request, page_size))


def list_events(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """GET /users/{id}/events: single instances and series masters (not occurrences)."""
    user = mailbox_user(tenant, params["user"])
    view = EventView.of(request)
    with tenant.lock:
        calendar = _calendar(tenant, user.id)
        items = [
            Instance(e.id, e.type, e.start, e.end, e)
            for e in calendar.top_level()
            if e.type in ("singleInstance", "seriesMaster")
        ]
        context = f"{request.graph_base}/$metadata#users('{params['user']}')/events"
        return paged(request, items, view, request.path, context)


def create_event(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """POST /users/{id}/events: 201 with the event; a repeated `transactionId` returns the first."""
    user = mailbox_user(tenant, params["user"])
    given = parse_event_input(request.body)
    view = EventView.of(request)
    with tenant.changing():
        event = tenant.calendars.create(user, given)
        instance = Instance(event.id, event.type, event.start, event.end, event)
        body = event_json(instance, view)
    context = f"{request.graph_base}/$metadata#users('{params['user']}')/events/$entity"
    location = f"{request.graph_base}/users('{user.id}')/events('{event.id}')"
    return ok(
        {"@odata.context": context} | body,
        201,
        headers={"Location": location} | applied_preferences(request),
    )


def get_event(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """GET /users/{id}/events/{id}: an event, an occurrence or an exception."""
    user = mailbox_user(tenant, params["user"])
    view = EventView.of(request)
    with tenant.lock:
        instance = _calendar(tenant, user.id).resolve(params["event"])
        body = event_json(instance, view)
    context = f"{request.graph_base}/$metadata#users('{params['user']}')/events/$entity"
    return ok({"@odata.context": context} | body, headers=applied_preferences(request))


def update_event(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """PATCH /users/{id}/events/{id}; an organizer's change reaches the attendees' copies."""
    user = mailbox_user(tenant, params["user"])
    given = parse_event_input(request.body)
    view = EventView.of(request)
    with tenant.changing():
        event = tenant.calendars.update(user, params["event"], given)
        instance = _calendar(tenant, user.id).resolve(event.id)
        body = event_json(instance, view)
    context = f"{request.graph_base}/$metadata#users('{params['user']}')/events/$entity"
    return ok({"@odata.context": context} | body, headers=applied_preferences(request))


def delete_event(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """DELETE /users/{id}/events/{id}: 204; attendees' copies are marked cancelled."""
    user = mailbox_user(tenant, params["user"])
    with tenant.changing():
        tenant.calendars.delete(user, params["event"])
    return no_content()


def cancel_event(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """POST /users/{id}/events/{id}/cancel: the organizer cancels; 202."""
    user = mailbox_user(tenant, params["user"])
    with tenant.changing():
        tenant.calendars.cancel(user, params["event"])
    return GraphResponse(202)


_ANSWERS: dict[str, ResponseKind] = {
    "accept": "accepted",
    "tentativelyAccept": "tentativelyAccepted",
    "decline": "declined",
}


def _responder(kind: ResponseKind) -> Handler:
    def respond(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        user = mailbox_user(tenant, params["user"])
        with tenant.changing():
            tenant.calendars.respond(user, params["event"], kind)
        return GraphResponse(202)

    respond.__doc__ = f"POST /users/{{id}}/events/{{id}}/{kind}: an attendee answers; 202."
    return respond


def list_instances(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """GET /users/{id}/events/{id}/instances?startDateTime&endDateTime: a series' occurrences."""
    user = mailbox_user(tenant, params["user"])
    start, end = time_window(request)
    view = EventView.of(request)
    with tenant.lock:
        calendar = _calendar(tenant, user.id)
        master = calendar.resolve(params["event"]).event
        if master.type != "seriesMaster":
            items = []
        else:
            items = series_instances(master, start, end)
            items += [
                Instance(e.id, "exception", e.start, e.end, e, e.original_start)
                for e in (calendar.events.get(x) for x in master.exception_ids.values())
                if e is not None and e.start < end and e.end > start
            ]
            items.sort(key=lambda i: (i.start, i.id))
        context = f"{request.graph_base}/$metadata#Collection(event)"
        return paged(request, items, view, request.path, context)


def time_window(request: GraphRequest) -> tuple[datetime, datetime]:
    """`startDateTime` and `endDateTime`, both required for calendar views."""
    start, end = request.query.get("startdatetime"), request.query.get("enddatetime")
    if not start or not end:
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters "
            "StartDateTime and EndDateTime.",
        )
    try:
        return timezones.parse_query(start), timezones.parse_query(end)
    except timezones.BadDateTimeError as e:
        raise GraphError(400, "ErrorInvalidParameter", str(e)) from e


def register(router: Router) -> None:
    """Serve the event routes (also under `/calendar`)."""
    for prefix in ("/users/{user}/events", "/users/{user}/calendar/events"):
        router.add("GET", prefix, list_events, CALENDARS_READ, mailbox=True)
        router.add("POST", prefix, create_event, CALENDARS_WRITE, mailbox=True)
        router.add("GET", prefix + "/{event}", get_event, CALENDARS_READ, mailbox=True)
        router.add("PATCH", prefix + "/{event}", update_event, CALENDARS_WRITE, mailbox=True)
        router.add("DELETE", prefix + "/{event}", delete_event, CALENDARS_WRITE, mailbox=True)
        router.add("POST", prefix + "/{event}/cancel", cancel_event, CALENDARS_WRITE, mailbox=True)
        for kind, answer in _ANSWERS.items():
            router.add(
                "POST",
                f"{prefix}/{{event}}/{kind}",
                _responder(answer),
                CALENDARS_WRITE,
                mailbox=True,
            )
        router.add(
            "GET", prefix + "/{event}/instances", list_instances, CALENDARS_READ, mailbox=True
        )
