"""`calendarView` and `calendarView/delta` (user-list-calendarview.md, event-delta.md,
delta-query-events.md).

A delta round pages through the window with `@odata.nextLink` (`$skiptoken`) and ends with an
`@odata.deltaLink` (`$deltatoken`); tokens are opaque keys to state kept here. The next round
returns what changed since: new or changed items, `@removed` for items gone from the window,
and `@removed` for items outside the window that changed (as the docs warn).
As Exchange does, a series comes as its master plus bare occurrences (id, type,
seriesMasterId, start, end), exceptions in full, and a series is never split across pages.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sandbox import timezones
from sandbox.calendars import Instance, MailboxCalendar
from sandbox.errors import GraphError
from sandbox.graph.delta_states import DeltaItem, DeltaPages, DeltaRound
from sandbox.graph.events import MAX_PAGE, EventView, event_json, paged, time_window
from sandbox.graph.permissions import CALENDARS_READ
from sandbox.graph.service import Router
from sandbox.graph.users import mailbox_user
from sandbox.graph.wire import GraphRequest, GraphResponse, applied_preferences, ok

if TYPE_CHECKING:
    from sandbox.tenant import Tenant

DEFAULT_DELTA_PAGE = 10


def _groups(instances: list[Instance], calendar: MailboxCalendar) -> list[list[DeltaItem]]:
    """Items of the window grouped so that a series (master, occurrences, exceptions) is whole."""
    series: dict[str, list[DeltaItem]] = {}
    groups: list[list[DeltaItem]] = []
    for instance in instances:
        master_id = (
            instance.event.id if instance.type == "occurrence" else instance.event.series_master_id
        )
        if master_id is None:
            groups.append([DeltaItem(instance.id, instance)])
            continue
        group = series.get(master_id)
        if group is None:
            master = calendar.events.get(master_id)
            group = series[master_id] = []
            groups.append(group)
            if master is not None:
                group.append(
                    DeltaItem(
                        master.id,
                        Instance(master.id, "seriesMaster", master.start, master.end, master),
                    )
                )
        group.append(DeltaItem(instance.id, instance, bare=instance.type == "occurrence"))
    return groups


def _keys(groups: list[list[DeltaItem]]) -> dict[str, str]:
    return {
        item.id: item.instance.change_key for group in groups for item in group if item.instance
    }


def _first_round(
    tenant: Tenant, user_key: str, mailbox_id: str, start: datetime, end: datetime
) -> DeltaPages:
    calendar = tenant.calendars.calendar(mailbox_id)
    groups = _groups(calendar.view(start, end), calendar)
    completes = DeltaRound(mailbox_id, user_key, start, end, _keys(groups), tenant.calendars.seq)
    return DeltaPages(groups, 0, completes)


def _next_round(tenant: Tenant, held: DeltaRound) -> DeltaPages:
    calendar = tenant.calendars.calendar(held.mailbox_id)
    store_seq = tenant.calendars.seq
    if calendar.last_seq <= held.seq:
        return DeltaPages(
            [],
            0,
            DeltaRound(held.mailbox_id, held.user_key, held.start, held.end, held.seen, store_seq),
        )
    current = _groups(calendar.view(held.start, held.end), calendar)
    keys = _keys(current)
    changed = [
        [item for item in group if held.seen.get(item.id) != keys[item.id]] for group in current
    ]
    groups = [group for group in changed if group]
    removed = [item_id for item_id in held.seen if item_id not in keys]
    outside = [
        event.id
        for event in calendar.events.values()
        if event.seq > held.seq and event.id not in keys and event.id not in held.seen
    ]
    groups.extend([DeltaItem(item_id)] for item_id in removed + outside)
    return DeltaPages(
        groups, 0, DeltaRound(held.mailbox_id, held.user_key, held.start, held.end, keys, store_seq)
    )


def _item_json(item: DeltaItem, view: EventView) -> dict[str, Any]:
    if item.instance is None:
        return {
            "@odata.type": "#microsoft.graph.event",
            "id": item.id,
            "@removed": {"reason": "deleted"},
        }
    instance = item.instance
    if item.bare:
        return {
            "@odata.type": "#microsoft.graph.event",
            "@odata.etag": f'W/"{instance.change_key}"',
            "id": instance.id,
            "seriesMasterId": instance.event.id,
            "type": "occurrence",
            "start": timezones.format_local(instance.start, view.zone),
            "end": timezones.format_local(instance.end, view.zone),
        }
    return {"@odata.type": "#microsoft.graph.event"} | event_json(instance, view)


def calendar_view_delta(
    tenant: Tenant, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    """GET /users/{id}/calendarView/delta: one page of a round."""
    user = mailbox_user(tenant, params["user"])
    query = request.query
    for unsupported in ("$select", "$expand", "$filter", "$orderby", "$search"):
        if unsupported in query:
            raise GraphError(
                400,
                "ErrorInvalidUrlQuery",
                f"The query parameter '{unsupported}' is not supported with change tracking over "
                "the 'CalendarView' resource.",
            )
    view = EventView(zone=EventView.of(request).zone, body_type=request.prefer.body_content_type)
    page_size = min(request.prefer.max_page_size or DEFAULT_DELTA_PAGE, MAX_PAGE)
    with tenant.lock:
        if "$skiptoken" in query:
            state = tenant.delta.get(query["$skiptoken"])
            pages = state if isinstance(state, DeltaPages) else _next_round(tenant, state)
        elif "$deltatoken" in query:
            state = tenant.delta.get(query["$deltatoken"])
            pages = _next_round(tenant, state) if isinstance(state, DeltaRound) else state
        else:
            start, end = time_window(request)
            pages = _first_round(tenant, params["user"], user.id, start, end)
        if pages.completes.mailbox_id != user.id:
            raise GraphError(
                400, "ErrorInvalidUrlQuery", "The state token belongs to another mailbox."
            )
        chosen: list[DeltaItem] = []
        position = pages.position
        while position < len(pages.groups):
            group = pages.groups[position]
            if chosen and len(chosen) + len(group) > page_size:
                break
            chosen.extend(group)
            position += 1
        value = [_item_json(item, view) for item in chosen]
        base = f"{request.graph_base}/users/{pages.completes.user_key}/calendarView/delta"
        body: dict[str, Any] = {
            "@odata.context": f"{request.graph_base}/$metadata#Collection(event)"
        }
        if position < len(pages.groups):
            token = tenant.delta.put(DeltaPages(pages.groups, position, pages.completes))
            body["@odata.nextLink"] = f"{base}?$skiptoken={token}"
        else:
            token = tenant.delta.put(pages.completes)
            body["@odata.deltaLink"] = f"{base}?$deltatoken={token}"
    body["value"] = value
    headers = applied_preferences(request, page_size)
    tracked = ", ".join(filter(None, ["odata.track-changes", headers.get("Preference-Applied")]))
    return ok(body, headers={"Preference-Applied": tracked})


def calendar_view(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """GET /users/{id}/calendarView: occurrences, exceptions and single events in the window."""
    user = mailbox_user(tenant, params["user"])
    start, end = time_window(request)
    view = EventView.of(request)
    with tenant.lock:
        items = tenant.calendars.calendar(user.id).view(start, end)
        context = f"{request.graph_base}/$metadata#users('{params['user']}')/calendarView"
        return paged(request, items, view, request.path, context)


def register(router: Router) -> None:
    """Serve calendarView and its delta (`delta` and `delta()`), also under `/calendar`."""
    for prefix in ("/users/{user}/calendarView", "/users/{user}/calendar/calendarView"):
        router.add("GET", prefix, calendar_view, CALENDARS_READ, mailbox=True)
        for name in ("delta", "delta()"):
            router.add("GET", f"{prefix}/{name}", calendar_view_delta, CALENDARS_READ, mailbox=True)
