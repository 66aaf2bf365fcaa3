"""Publishing to the org app catalog through Graph, with a signed-in admin (delegated token).

teamsapp-publish.md: `POST /appCatalogs/teamsApps[?requiresReview=true]` with the zip as body
(`Content-Type: application/zip`) → 201 and the `teamsApp`; a manifest id already in the
catalog → 409. teamsapp-update.md: `POST /appCatalogs/teamsApps/{id}/appDefinitions` → 204
(published), or 201 with the `teamsAppDefinition` in `publishingState: submitted` under
`requiresReview=true`. A broken package → 400 with `innerError.code`
`UnableToParseTeamsAppManifest` and one detail per problem (the docs' example 4).

Both need a user token (`scp`) with AppCatalog.Submit, AppCatalog.ReadWrite.All or
Directory.ReadWrite.All; app-only tokens are refused. Only an administrator (Global or Teams
Administrator in `wids`) publishes at once; anyone else must ask for a review.
`GET /appCatalogs/teamsApps` is served here too, for app and user tokens, with
`$expand=appDefinitions`.
"""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from sandbox.device_code import ADMIN_ROLES
from sandbox.errors import GraphError
from sandbox.graph.query import parse_filter
from sandbox.graph.routes import authenticated_call, to_flask
from sandbox.graph.service import GraphService, Router, require
from sandbox.graph.teams_apps import READ_CATALOG, TeamsApp, TeamsAppInput
from sandbox.graph.wire import GraphRequest, GraphResponse, error_response, no_content, ok
from sandbox.timezones import format_timestamp

if TYPE_CHECKING:
    from sandbox.tenant import Tenant

SUBMIT_SCOPES = ("AppCatalog.Submit", "AppCatalog.ReadWrite.All", "Directory.ReadWrite.All")
READ_SCOPES = (
    "AppCatalog.Read.All",
    "AppCatalog.ReadWrite.All",
    "AppCatalog.Submit",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
_PNG = b"\x89PNG\r\n\x1a\n"
# Teams app package icons (apps-package.md): color 192x192, outline 32x32.
_ICON_SIZES = {"color": (192, 192), "outline": (32, 32)}


@dataclass(frozen=True)
class PackageProblem:
    """One reason a package is refused, as Graph lists it in `innerError.details`."""

    code: str
    message: str
    target: str

    def to_graph(self) -> dict[str, str]:
        """A detail of the error answer."""
        return {"code": self.code, "message": self.message, "target": self.target}


class PackageRejected(Exception):
    """The zip is not a Teams app package Graph accepts."""

    def __init__(self, problems: list[PackageProblem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class AppPackage:
    """What the catalog keeps of an uploaded package's manifest."""

    external_id: str
    version: str
    short_name: str
    short_description: str | None
    full_description: str | None
    azure_ad_app_id: str | None
    activity_types: tuple[str, ...]
    resource_specific_permissions: tuple[str, ...]


def _lookup(manifest: dict[str, Any], path: str) -> Any:
    node: Any = manifest
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None when the bytes are not a PNG."""
    if len(data) < 24 or not data.startswith(_PNG) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def read_package(body: bytes) -> AppPackage:
    """The manifest of a Teams app zip, or PackageRejected naming every problem."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
    except zipfile.BadZipFile as e:
        raise PackageRejected(
            [PackageProblem("InvalidPackage", "The app package is not a zip file.", "package")]
        ) from e
    with archive:
        names = set(archive.namelist())
        if "manifest.json" not in names:
            raise PackageRejected(
                [
                    PackageProblem(
                        "ManifestNotFound",
                        "The app package has no manifest.json at its root.",
                        "manifest.json",
                    )
                ]
            )
        try:
            manifest = json.loads(archive.read("manifest.json").decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError) as e:
            raise PackageRejected(
                [PackageProblem("InvalidJson", "manifest.json is not valid JSON.", "manifest.json")]
            ) from e
        if not isinstance(manifest, dict):
            raise PackageRejected(
                [PackageProblem("InvalidJson", "manifest.json is not an object.", "manifest.json")]
            )
        problems = _manifest_problems(manifest)
        for kind, (width, height) in _ICON_SIZES.items():
            name = _lookup(manifest, f"icons.{kind}")
            if not isinstance(name, str):
                continue
            if name not in names:
                problems.append(
                    PackageProblem(
                        "IconNotFound",
                        f"The {kind} icon '{name}' is not in the app package.",
                        f"icons.{kind}",
                    )
                )
                continue
            size = _png_size(archive.read(name))
            if size != (width, height):
                found = "not a PNG" if size is None else f"{size[0]}x{size[1]}"
                problems.append(
                    PackageProblem(
                        "InvalidIcon",
                        f"The {kind} icon must be a {width}x{height} PNG, found {found}.",
                        f"icons.{kind}",
                    )
                )
    if problems:
        raise PackageRejected(problems)
    activities = _lookup(manifest, "activities.activityTypes") or []
    permissions = _lookup(manifest, "authorization.permissions.resourceSpecific") or []
    return AppPackage(
        external_id=str(manifest["id"]).lower(),
        version=str(manifest["version"]),
        short_name=str(_lookup(manifest, "name.short")),
        short_description=_lookup(manifest, "description.short"),
        full_description=_lookup(manifest, "description.full"),
        azure_ad_app_id=_lookup(manifest, "webApplicationInfo.id"),
        activity_types=tuple(
            str(a["type"]) for a in activities if isinstance(a, dict) and "type" in a
        ),
        resource_specific_permissions=tuple(
            str(p["name"]) for p in permissions if isinstance(p, dict) and "name" in p
        ),
    )


def _manifest_problems(manifest: dict[str, Any]) -> list[PackageProblem]:
    problems: list[PackageProblem] = []
    required = (
        "manifestVersion",
        "version",
        "id",
        "name.short",
        "description.short",
        "developer.name",
        "icons.color",
        "icons.outline",
    )
    for path in required:
        value = _lookup(manifest, path)
        if not isinstance(value, str) or not value.strip():
            problems.append(
                PackageProblem(
                    "SchemaError_Required",
                    "Required properties are missing from object: [].",
                    path,
                )
            )
    for path, pattern in (("id", _GUID), ("version", _SEMVER)):
        value = _lookup(manifest, path)
        if isinstance(value, str) and value and not pattern.match(value):
            problems.append(
                PackageProblem(
                    "SchemaError_Pattern",
                    f'String "{value}" does not match regex pattern "{pattern.pattern}".',
                    path,
                )
            )
    return problems


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@dataclass
class Definition:
    """One uploaded version of a catalog app (`teamsAppDefinition`)."""

    teams_app_id: str
    package: AppPackage
    publishing_state: str
    created_by: str
    modified: datetime

    @property
    def id(self) -> str:
        """base64 of `{appId}##{version}##{state}`, as the docs' examples decode."""
        state = self.publishing_state.capitalize()
        raw = f"{self.teams_app_id}##{self.package.version}##{state}"
        return base64.b64encode(raw.encode()).decode()

    def to_graph(self) -> dict[str, Any]:
        """`teamsAppDefinition`."""
        return {
            "id": self.id,
            "teamsAppId": self.teams_app_id,
            "azureADAppId": self.package.azure_ad_app_id,
            "displayName": self.package.short_name,
            "version": self.package.version,
            "requiredResourceSpecificApplicationPermissions": list(
                self.package.resource_specific_permissions
            ),
            "publishingState": self.publishing_state,
            "shortDescription": self.package.short_description,
            "description": self.package.full_description,
            "lastModifiedDateTime": format_timestamp(self.modified),
            "createdBy": {"user": {"userPrincipalName": self.created_by}},
        }


@dataclass
class CatalogVersions:
    """The definitions uploaded through Graph, per catalog app id (control-API apps have none)."""

    by_app: dict[str, list[Definition]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """Forget every upload."""
        with self.lock:
            self.by_app.clear()

    def of(self, app: TeamsApp) -> list[dict[str, Any]]:
        """The app's definitions as Graph lists them."""
        with self.lock:
            found = list(self.by_app.get(app.id, []))
        return [d.to_graph() for d in found] if found else [app.definition()]

    def latest_version(self, app: TeamsApp) -> str:
        """The highest version uploaded (published or waiting for review)."""
        with self.lock:
            versions = [d.package.version for d in self.by_app.get(app.id, [])]
        return max([app.version, *versions], key=_version_key)

    def add(self, definition: Definition) -> None:
        """Keep a new definition; a published one replaces the earlier published one."""
        with self.lock:
            kept = self.by_app.setdefault(definition.teams_app_id, [])
            if definition.publishing_state == "published":
                kept[:] = [d for d in kept if d.publishing_state != "published"]
            kept.append(definition)


def _signed_in_user(request: GraphRequest) -> tuple[str, bool]:
    """(UPN, is an admin) of the user behind a delegated token that may publish; else 403."""
    claims = request.claims
    if "scp" not in claims:
        raise GraphError(
            403,
            "Forbidden",
            "This API does not support application permissions: sign a user in with the "
            "delegated permission AppCatalog.Submit.",
        )
    granted = {s.lower() for s in str(claims["scp"]).split()}
    if not any(s.lower() in granted for s in SUBMIT_SCOPES):
        raise GraphError(
            403,
            "Forbidden",
            f"Missing scope permissions on the request. API requires one of "
            f"'{', '.join(SUBMIT_SCOPES)}'.",
        )
    upn = str(claims.get("upn") or claims.get("unique_name") or "")
    admin = bool(ADMIN_ROLES & {str(w).lower() for w in claims.get("wids", [])})
    return upn, admin


def _requires_review(request: GraphRequest) -> bool:
    value = request.query.get("requiresreview", "false").strip().lower()
    if value not in ("true", "false"):
        raise GraphError(400, "BadRequest", f"'{value}' is not a valid value for requiresReview.")
    return value == "true"


def _check_may_publish(admin: bool, review: bool) -> None:
    if not admin and not review:
        # teamsapp-publish.md: admins publish at once; other users must ask for a review.
        raise GraphError(
            403,
            "Forbidden",
            "Only a Teams Service Administrator or a higher role can publish an app without "
            "review. Set requiresReview=true to submit it for an administrator's approval.",
        )


def _package_of(request: GraphRequest) -> AppPackage:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/zip":
        raise GraphError(
            415, "UnsupportedMediaType", "The request body must be a zip (application/zip)."
        )
    body = request.body if isinstance(request.body, bytes) else b""
    return read_package(body)


def _rejection(error: PackageRejected, request: GraphRequest) -> GraphResponse:
    message = "; ".join(f"{p.target} | {p.message}" for p in error.problems)
    answer = error_response(GraphError(400, "BadRequest", message), request)
    answer.body["error"]["innerError"] |= {
        "code": "UnableToParseTeamsAppManifest",
        "message": message,
        "details": [p.to_graph() for p in error.problems],
    }
    return answer


def _app_json(request: GraphRequest, app: TeamsApp) -> dict[str, Any]:
    context = f"{request.graph_base}/$metadata#appCatalogs/teamsApps/$entity"
    return {"@odata.context": context} | app.to_graph()


Handler = Callable[["Tenant", GraphRequest, dict[str, str]], GraphResponse]


def _handlers(versions: CatalogVersions) -> dict[str, Handler]:
    def list_apps(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        """GET /appCatalogs/teamsApps (`$filter`, `$expand=appDefinitions`), app or user."""
        if "scp" in request.claims:
            granted = {s.lower() for s in str(request.claims["scp"]).split()}
            if not any(s.lower() in granted for s in READ_SCOPES):
                raise GraphError(
                    403,
                    "Forbidden",
                    f"Missing scope permissions on the request. API requires one of "
                    f"'{', '.join(READ_SCOPES)}'.",
                )
        else:
            require(request, READ_CATALOG)
        with tenant.lock:
            apps = list(tenant.teams.apps.values())
        items = [app.to_graph() | {"appDefinitions": versions.of(app)} for app in apps]
        if "$filter" in request.query:
            keep = parse_filter(request.query["$filter"])
            items = [item for item in items if keep(item)]
        if "appdefinitions" not in request.query.get("$expand", "").lower():
            items = [{k: v for k, v in item.items() if k != "appDefinitions"} for item in items]
        context = f"{request.graph_base}/$metadata#appCatalogs/teamsApps"
        return ok({"@odata.context": context, "value": items})

    def publish(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        """POST /appCatalogs/teamsApps: a new app in the catalog."""
        upn, admin = _signed_in_user(request)
        review = _requires_review(request)
        _check_may_publish(admin, review)
        try:
            package = _package_of(request)
        except PackageRejected as e:
            return _rejection(e, request)
        with tenant.lock:
            taken = [
                app
                for app in tenant.teams.apps.values()
                if app.external_id.lower() == package.external_id
            ]
            if taken:
                raise GraphError(
                    409,
                    "Conflict",
                    f"An app with the manifest id '{package.external_id}' is already in the "
                    f"catalog as '{taken[0].id}'. Upload a new version to "
                    f"/appCatalogs/teamsApps/{taken[0].id}/appDefinitions.",
                )
            app = tenant.teams.publish(
                TeamsAppInput(
                    external_id=package.external_id,
                    display_name=package.short_name,
                    azure_ad_app_id=package.azure_ad_app_id,
                    activity_types=list(package.activity_types),
                    version=package.version,
                ),
                tenant.authority.client_id,
            )
        state = "submitted" if review else "published"
        versions.add(Definition(app.id, package, state, upn, datetime.now(UTC)))
        location = f"{request.graph_base}/appCatalogs/teamsApps/{app.id}"
        return ok(_app_json(request, app), 201, {"Location": location})

    def publish_version(
        tenant: Tenant, request: GraphRequest, params: dict[str, str]
    ) -> GraphResponse:
        """POST /appCatalogs/teamsApps/{id}/appDefinitions: a new version of a catalog app."""
        upn, admin = _signed_in_user(request)
        review = _requires_review(request)
        _check_may_publish(admin, review)
        with tenant.lock:
            app = tenant.teams.apps.get(params["app"])
        if app is None:
            raise GraphError(
                404, "NotFound", f"App with id '{params['app']}' was not found in the catalog."
            )
        try:
            package = _package_of(request)
        except PackageRejected as e:
            return _rejection(e, request)
        if package.external_id != app.external_id.lower():
            raise GraphError(
                400,
                "BadRequest",
                f"The manifest id '{package.external_id}' is not the id of app '{app.id}' "
                f"('{app.external_id}').",
            )
        latest = versions.latest_version(app)
        if _version_key(package.version) <= _version_key(latest):
            # Teams keeps one definition per version: an update must raise the version.
            raise GraphError(
                409,
                "Conflict",
                f"Version {package.version} is not higher than the catalog's {latest}: "
                "raise the manifest version.",
            )
        definition = Definition(
            app.id, package, "submitted" if review else "published", upn, datetime.now(UTC)
        )
        versions.add(definition)
        if review:
            location = f"{request.graph_base}/appCatalogs/teamsApps/{app.id}/appDefinitions"
            context = f"{request.graph_base}/$metadata#appDefinition"
            body = {"@odata.context": context} | definition.to_graph()
            return ok(body, 201, {"Location": f"{location}/{definition.id}"})
        with tenant.lock:
            app.version = package.version
            app.display_name = package.short_name
            app.activity_types = package.activity_types
            if package.azure_ad_app_id:
                app.azure_ad_app_id = package.azure_ad_app_id
        return no_content()

    return {"list": list_apps, "publish": publish, "publish_version": publish_version}


def create_blueprint(tenant: Tenant) -> Blueprint:
    """The catalog routes that take a zip (and the list, for user tokens too)."""
    blueprint = Blueprint("catalog_upload", __name__)
    versions = CatalogVersions()
    handlers = _handlers(versions)
    router = Router()
    router.add("GET", "/appCatalogs/teamsApps", handlers["list"])
    router.add("POST", "/appCatalogs/teamsApps", handlers["publish"])
    router.add("POST", "/appCatalogs/teamsApps/{app}/appDefinitions", handlers["publish_version"])
    service = GraphService(tenant, router)

    @blueprint.before_app_request
    def forget_on_reset() -> None:
        if request.endpoint == "control.reset":
            versions.reset()

    # More specific than the Graph blueprint's `/v1.0/<path>`, which reads bodies as JSON only.
    @blueprint.route("/v1.0/appCatalogs/teamsApps", methods=["GET", "POST"])
    @blueprint.route("/v1.0/appCatalogs/teamsApps/<app_id>/appDefinitions", methods=["POST"])
    def catalog(app_id: str | None = None) -> Response:
        call = authenticated_call(tenant, request.path.removeprefix("/v1.0"))
        if isinstance(call, Response):
            return call
        if request.method == "POST":
            call.body = request.get_data(cache=False)
        return to_flask(service.serve(call))

    return blueprint
