"""The Teams app package: manifest template, icons, builder. Imports nothing else of ours."""

from manifest.build import (
    MANIFEST_VERSION,
    PACKAGE_FILES,
    SETTING_NAMES,
    ManifestError,
    PackageConfig,
    Problem,
    activity_types,
    bot_commands,
    build_manifest,
    build_package,
    check_config,
    package_bytes,
    public_domain,
)
from manifest.consent import GRAPH_DEFAULT_SCOPE, PUBLIC_CLOUD_LOGIN, admin_consent_url

__all__ = [
    "GRAPH_DEFAULT_SCOPE",
    "MANIFEST_VERSION",
    "PACKAGE_FILES",
    "PUBLIC_CLOUD_LOGIN",
    "SETTING_NAMES",
    "ManifestError",
    "PackageConfig",
    "Problem",
    "activity_types",
    "admin_consent_url",
    "bot_commands",
    "build_manifest",
    "build_package",
    "check_config",
    "package_bytes",
    "public_domain",
]
