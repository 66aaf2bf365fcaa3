"""The control API under `/_sandbox/` (not Graph): seed users and events, arm faults, read the log.

No token is needed: tests, the demo and the benchmarks drive the tenant through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeVar

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from sandbox.calendars import Instance
from sandbox.directory import DuplicateUserError, User, UserInput
from sandbox.errors import GraphError
from sandbox.event_fields import parse_event_input
from sandbox.faults import FaultRule
from sandbox.graph.events import EventView, event_json
from sandbox.graph.teams_apps import TeamsAppInput
from sandbox.online_meetings import AttendanceInput
from sandbox.tenant import RuntimeSettings

if TYPE_CHECKING:
    from sandbox.tenant import Tenant

_Model = TypeVar("_Model", bound=BaseModel)


class LifecycleRequest(BaseModel):
    """`POST /_sandbox/lifecycle`: which subscription gets which lifecycle notification."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    subscription_id: str
    lifecycle_event: Literal["reauthorizationRequired", "subscriptionRemoved", "missed"]


class ControlError(Exception):
    """A control API refusal."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _body(model: type[_Model]) -> _Model:
    try:
        return model.model_validate(request.get_json(force=True, silent=False))
    except ValidationError as e:
        raise ControlError(
            400,
            "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
            ),
        ) from e


def _user(tenant: Tenant, key: str) -> User:
    with tenant.lock:
        user = tenant.directory.find(key)
    if user is None:
        raise ControlError(404, f"No user '{key}' in the sandbox tenant.")
    return user


def _stored_json(instance: Instance) -> dict[str, Any]:
    return event_json(instance, EventView(expanded=True))


def create_blueprint(tenant: Tenant) -> Blueprint:
    """The `/_sandbox/` routes."""
    blueprint = Blueprint("control", __name__, url_prefix="/_sandbox")

    @blueprint.errorhandler(ControlError)
    def refused(error: ControlError) -> tuple[Response, int]:
        return jsonify(
            {"error": {"code": "SandboxControlError", "message": error.message}}
        ), error.status

    @blueprint.errorhandler(GraphError)
    def graph_refused(error: GraphError) -> tuple[Response, int]:
        return jsonify({"error": {"code": error.code, "message": error.message}}), error.status

    @blueprint.post("/reset")
    def reset() -> Response:
        tenant.reset()
        return jsonify({"reset": True})

    @blueprint.post("/users")
    def add_user() -> tuple[Response, int]:
        given = _body(UserInput)
        with tenant.lock:
            try:
                user = tenant.directory.add(given, tenant.calendars.now())
            except DuplicateUserError as e:
                raise ControlError(409, f"A user '{e}' already exists.") from e
        return jsonify(user.to_graph() | {"mailboxSettings": user.mailbox_settings_graph()}), 201

    @blueprint.get("/users")
    def list_users() -> Response:
        with tenant.lock:
            return jsonify({"value": [u.to_graph() for u in tenant.directory.all()]})

    @blueprint.post("/users/<key>/events")
    def add_event(key: str) -> tuple[Response, int]:
        user = _user(tenant, key)
        sent = request.get_json(force=True)
        # {"value": [...]} seeds many events in one call (demo and benchmark set-up).
        many = isinstance(sent, dict) and isinstance(sent.get("value"), list) and len(sent) == 1
        given = [parse_event_input(body) for body in (sent["value"] if many else [sent])]
        with tenant.changing():
            created = [tenant.calendars.create(user, one) for one in given]
            bodies = [_stored_json(Instance(e.id, e.type, e.start, e.end, e)) for e in created]
        return jsonify({"value": bodies} if many else bodies[0]), 201

    @blueprint.get("/users/<key>/events")
    def stored_events(key: str) -> Response:
        user = _user(tenant, key)
        with tenant.lock:
            calendar = tenant.calendars.calendar(user.id)
            value = [
                _stored_json(Instance(e.id, e.type, e.start, e.end, e, e.original_start))
                for e in calendar.stored()
            ]
        return jsonify({"value": value})

    @blueprint.post("/teamsApps")
    def publish_teams_app() -> tuple[Response, int]:
        given = _body(TeamsAppInput)
        with tenant.lock:
            app = tenant.teams.publish(given, tenant.config.client_id)
        return jsonify(app.to_graph() | {"azureADAppId": app.azure_ad_app_id}), 201

    @blueprint.get("/users/<key>/activities")
    def activity_feed(key: str) -> Response:
        user = _user(tenant, key)
        with tenant.lock:
            return jsonify({"value": list(tenant.teams.activities.get(user.id, []))})

    @blueprint.post("/faults")
    def add_fault() -> tuple[Response, int]:
        rule = _body(FaultRule)
        with tenant.lock:
            fault = tenant.faults.add(rule)
            return jsonify(fault.to_json()), 201

    @blueprint.get("/faults")
    def list_faults() -> Response:
        with tenant.lock:
            return jsonify({"value": [f.to_json() for f in tenant.faults.faults]})

    @blueprint.delete("/faults")
    def clear_faults() -> Response:
        with tenant.lock:
            tenant.faults.clear()
        return Response(status=204)

    @blueprint.delete("/faults/<fault_id>")
    def remove_fault(fault_id: str) -> Response:
        with tenant.lock:
            if not tenant.faults.remove(fault_id):
                raise ControlError(404, f"No fault '{fault_id}'.")
        return Response(status=204)

    @blueprint.get("/requests")
    def requests_served() -> Response:
        return jsonify(tenant.log.summary())

    @blueprint.delete("/requests")
    def forget_requests() -> Response:
        tenant.log.reset()
        return Response(status=204)

    @blueprint.get("/notifications")
    def notifications() -> Response:
        return jsonify({"value": tenant.notifier.outcomes()})

    @blueprint.post("/lifecycle")
    def lifecycle() -> tuple[Response, int]:
        given = _body(LifecycleRequest)
        with tenant.lock:
            sub = tenant.subscriptions.by_id.get(given.subscription_id.lower())
            if sub is None:
                raise ControlError(404, f"No subscription '{given.subscription_id}'.")
            if sub.lifecycle_url is None:
                raise ControlError(400, "The subscription has no lifecycleNotificationUrl.")
            delivery = tenant.subscriptions.lifecycle(sub, given.lifecycle_event, tenant.tenant_id)
            if given.lifecycle_event == "subscriptionRemoved":
                del tenant.subscriptions.by_id[sub.id]
        tenant.notifier.send([delivery])
        return jsonify({"sent": delivery.payload}), 202

    @blueprint.get("/settings")
    def settings() -> Response:
        with tenant.lock:
            return jsonify(tenant.settings.model_dump(by_alias=True))

    @blueprint.patch("/settings")
    def change_settings() -> Response:
        changes = request.get_json(force=True)
        with tenant.lock:
            merged = tenant.settings.model_dump(by_alias=True) | (changes or {})
        try:
            updated = RuntimeSettings.model_validate(merged)
        except ValidationError as e:
            raise ControlError(400, str(e.errors()[0]["msg"])) from e
        with tenant.lock:
            tenant.settings = updated
            return jsonify(updated.model_dump(by_alias=True))

    @blueprint.get("/state")
    def state() -> Response:
        with tenant.lock:
            return jsonify(
                {
                    "tenantId": tenant.tenant_id,
                    "domain": tenant.config.domain,
                    "clientId": tenant.config.client_id,
                    "users": len(tenant.directory.all()),
                    "eventsByMailbox": {
                        u.user_principal_name: len(tenant.calendars.calendar(u.id).events)
                        for u in tenant.directory.all()
                    },
                    "subscriptions": [s.to_graph() for s in tenant.subscriptions.by_id.values()],
                    "faults": [f.to_json() for f in tenant.faults.faults],
                }
            )

    # ---- Teams attendance: who joined an online meeting's session; the access policy ----

    @blueprint.post("/attendance")
    def set_attendance() -> tuple[Response, int]:
        given = _body(AttendanceInput)
        with tenant.lock:
            session = tenant.online.add(given)
        return jsonify({"reportId": session.report_id}), 201

    @blueprint.put("/online-meetings/policy")
    def set_access_policy() -> Response:
        given = request.get_json(force=True)
        if not isinstance(given, dict) or not isinstance(given.get("granted"), bool):
            raise ControlError(400, "granted: a boolean is required.")
        with tenant.lock:
            tenant.online.access_policy = given["granted"]
        return jsonify({"granted": given["granted"]})

    return blueprint
