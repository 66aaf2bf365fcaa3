"""The organization's Teams app catalog through Graph: find our app by its manifest id, publish
the package, or upload a new version of it.

Graph takes these only on a signed-in user's behalf (delegated AppCatalog.Submit; see
`graph_sync.device_code`), so this client holds a user's token rather than the app's. The body
is the zip itself (`Content-Type: application/zip`), sent as raw bytes through GraphClient
(msgraph's request adapter and its retry middleware). Docs: appcatalogs-list-teamsapps.md,
teamsapp-publish.md, teamsapp-update.md.
"""

from __future__ import annotations

import io
import json
import zipfile
from enum import StrEnum
from types import TracebackType
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from graph_sync.auth import SignedInUserToken
from graph_sync.client import GRAPH_BASE_URL, GraphAnswer, GraphClient
from graph_sync.errors import GraphError, GraphSyncError

SUBMIT_PERMISSION = "AppCatalog.Submit"


class PublishingState(StrEnum):
    """A catalog app version's `publishingState` (teamsappdefinition.md)."""

    PUBLISHED = "published"
    SUBMITTED = "submitted"
    """Waiting for an admin's review in the Teams admin center."""
    REJECTED = "rejected"


class _Camel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class AppDefinition(_Camel):
    """One version of a catalog app (`teamsAppDefinition`)."""

    id: str
    """Graph's id of this definition."""
    teams_app_id: str = Field(alias="teamsAppId")
    """The catalog app it belongs to."""
    display_name: str | None = Field(default=None, alias="displayName")
    """The manifest's short name."""
    version: str
    """The manifest's version."""
    publishing_state: PublishingState = Field(
        default=PublishingState.PUBLISHED, alias="publishingState"
    )
    """`submitted` while it waits for an admin's review."""


class CatalogApp(_Camel):
    """An app of the org catalog (`teamsApp`)."""

    id: str
    """The catalog id: what installs and updates name (not the manifest id)."""
    external_id: str | None = Field(default=None, alias="externalId")
    """The manifest's `id`."""
    display_name: str | None = Field(default=None, alias="displayName")
    distribution_method: str | None = Field(default=None, alias="distributionMethod")
    """`organization` for apps an admin uploaded."""
    app_definitions: list[AppDefinition] = Field(default_factory=list, alias="appDefinitions")
    """Its versions (with `$expand=appDefinitions`)."""

    @property
    def latest_version(self) -> str | None:
        """The highest version uploaded, published or waiting for review."""
        versions = [d.version for d in self.app_definitions]
        return max(versions, key=version_key) if versions else None


class _CatalogPage(_Camel):
    value: list[CatalogApp] = Field(default_factory=list)


class PackageManifest(_Camel):
    """What the catalog reads from a package's manifest.json."""

    external_id: str
    """The manifest's `id` (a GUID kept for every version)."""
    version: str
    """The manifest's `version`."""
    short_name: str
    """`name.short`."""


class PublishOutcome(_Camel):
    """What `publish_package` did."""

    app_id: str
    """The catalog id of the app."""
    external_id: str
    """The manifest id."""
    version: str
    """The version uploaded."""
    publishing_state: PublishingState
    """`published`, or `submitted` when an admin must approve it in the Teams admin center."""
    created: bool
    """True for a new catalog app, False for a new version of an existing one."""
    previous_version: str | None = None
    """The catalog's version before an update."""


class NotAPackage(ValueError):
    """The bytes are not a Teams app zip with a readable manifest.json."""


class AlreadyInCatalog(GraphSyncError):
    """The app is in the catalog already and no update was asked for."""

    def __init__(self, app: CatalogApp, package_version: str) -> None:
        self.app = app
        self.package_version = package_version
        super().__init__(
            f"the app is already in the catalog as {app.id} "
            f"(version {app.latest_version or 'unknown'})"
        )


class VersionNotHigher(GraphSyncError):
    """An update must carry a higher version than the catalog's."""

    def __init__(self, app: CatalogApp, package_version: str) -> None:
        self.app = app
        self.package_version = package_version
        super().__init__(
            f"version {package_version} is not higher than the catalog's {app.latest_version}"
        )


def version_key(version: str) -> tuple[int, ...]:
    """A sortable key for a major.minor.patch version (unparsable parts count as 0)."""
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


def package_manifest(package: bytes) -> PackageManifest:
    """The manifest of a Teams app zip; NotAPackage when it has none or it is not JSON."""
    try:
        with zipfile.ZipFile(io.BytesIO(package)) as archive:
            raw = json.loads(archive.read("manifest.json").decode("utf-8-sig"))
    except (zipfile.BadZipFile, KeyError) as e:
        raise NotAPackage("not a Teams app package: a zip with manifest.json at its root") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise NotAPackage("the package's manifest.json is not valid JSON") from e
    try:
        return PackageManifest(
            external_id=str(raw["id"]).lower(),
            version=str(raw["version"]),
            short_name=str(raw["name"]["short"]),
        )
    except (KeyError, TypeError) as e:
        raise NotAPackage("the package's manifest.json lacks id, version or name.short") from e


class AppCatalog:
    """Graph's `/appCatalogs/teamsApps` with a signed-in user's token, through GraphClient."""

    def __init__(
        self,
        access_token: SecretStr,
        graph_base_url: str = GRAPH_BASE_URL,
        *,
        timeout: float = 60.0,
    ) -> None:
        self._graph = GraphClient(
            None, graph_base_url, tokens=SignedInUserToken(access_token), timeout=timeout
        )
        self.api_base = self._graph.api_base

    def close(self) -> None:
        """Close the Graph client's connections and loop."""
        self._graph.close()

    def __enter__(self) -> AppCatalog:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(
        self,
        method: Literal["GET", "POST"],
        path: str,
        *,
        params: dict[str, str] | None = None,
        package: bytes | None = None,
    ) -> GraphAnswer:
        headers = {"Content-Type": "application/zip"} if package is not None else None
        return self._graph.bridge.run(
            self._graph.send_ok(
                method,
                path,
                body=package,
                headers=headers,
                params=params,
                permission=SUBMIT_PERMISSION,
                # A 429 was refused before any work; a 503/504 upload may have happened.
                retry_unavailable=method == "GET",
            ),
            self._graph.timeout,
        )

    def find(self, external_id: str) -> CatalogApp | None:
        """The org app whose manifest id is `external_id`, with its versions; None if absent."""
        wanted = external_id.replace("'", "''")
        answer = self._send(
            "GET",
            "/appCatalogs/teamsApps",
            params={
                "$filter": f"externalId eq '{wanted}' and distributionMethod eq 'organization'",
                "$expand": "appDefinitions",
            },
        )
        try:
            found = _CatalogPage.model_validate_json(answer.content).value
        except ValidationError as e:
            raise GraphError(answer.status, "UnexpectedAnswer", str(e)) from e
        return found[0] if found else None

    def publish_new(self, package: bytes, *, requires_review: bool = False) -> CatalogApp:
        """Upload the zip as a new org app; a GraphError with status 409 if its id is taken."""
        params = {"requiresReview": "true"} if requires_review else None
        answer = self._send("POST", "/appCatalogs/teamsApps", params=params, package=package)
        return CatalogApp.model_validate_json(answer.content)

    def publish_version(
        self, app_id: str, package: bytes, *, requires_review: bool = False
    ) -> AppDefinition | None:
        """Upload the zip as a new version of catalog app `app_id`. Graph answers 204 when it
        is published at once (None here), or the definition waiting for review."""
        params = {"requiresReview": "true"} if requires_review else None
        answer = self._send(
            "POST",
            f"/appCatalogs/teamsApps/{quote(app_id, safe='')}/appDefinitions",
            params=params,
            package=package,
        )
        if not answer.content:
            return None
        return AppDefinition.model_validate_json(answer.content)


def find_catalog_app(
    client: GraphClient, external_id: str, *, permission: str = "AppCatalog.Read.All"
) -> CatalogApp | None:
    """The catalog app whose manifest id is `external_id`, read with the app's own token."""
    wanted = external_id.replace("'", "''")
    raw = client.get_bytes(
        "/appCatalogs/teamsApps",
        params={"$filter": f"externalId eq '{wanted}'"},
        permission=permission,
    )
    try:
        found = _CatalogPage.model_validate_json(raw).value
    except ValidationError as e:
        raise GraphError(200, "UnexpectedAnswer", str(e)) from e
    return found[0] if found else None


def publish_package(
    catalog: AppCatalog,
    package: bytes,
    *,
    update: bool = False,
    requires_review: bool = False,
) -> PublishOutcome:
    """Publish the package as a new org app, or (with `update`) as a new version of the app
    with the same manifest id. Raises AlreadyInCatalog when it exists and `update` is False,
    VersionNotHigher when the catalog already has this version or a higher one."""
    manifest = package_manifest(package)
    found = catalog.find(manifest.external_id)
    if found is None:
        created = catalog.publish_new(package, requires_review=requires_review)
        return PublishOutcome(
            app_id=created.id,
            external_id=manifest.external_id,
            version=manifest.version,
            publishing_state=(
                PublishingState.SUBMITTED if requires_review else PublishingState.PUBLISHED
            ),
            created=True,
        )
    if not update:
        raise AlreadyInCatalog(found, manifest.version)
    current = found.latest_version
    if current is not None and version_key(manifest.version) <= version_key(current):
        raise VersionNotHigher(found, manifest.version)
    definition = catalog.publish_version(found.id, package, requires_review=requires_review)
    return PublishOutcome(
        app_id=found.id,
        external_id=manifest.external_id,
        version=manifest.version,
        publishing_state=definition.publishing_state if definition else PublishingState.PUBLISHED,
        created=False,
        previous_version=current,
    )
