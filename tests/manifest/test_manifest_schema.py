"""Every manifest we can build passes Microsoft's official schema, checked by Microsoft's tool.

`@microsoft/app-manifest` (pinned in tests/package.json) bundles the Teams schemas and
validates offline; one node process checks every manifest.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from manifest import build_manifest

from .manifest_samples import every_buildable, minimal

NODE = shutil.which("node")
VALIDATOR = Path(__file__).with_name("validate_manifests.js")
APP_MANIFEST = Path(__file__).resolve().parents[1] / "node_modules" / "@microsoft" / "app-manifest"

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(NODE is None, reason="node is not installed (make test installs it)"),
    pytest.mark.skipif(
        not APP_MANIFEST.is_dir(),
        reason="tests/node_modules/@microsoft/app-manifest is missing: run `make npm`",
    ),
]


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A built manifest with one value forced in, past our own checks."""
    manifest = copy.deepcopy(build_manifest(minimal()))
    node: Any = manifest
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return manifest


# Values check_config refuses, forced into a manifest: the schema must refuse them too, which
# proves the validator really runs and our limits are the schema's.
SCHEMA_REFUSES: dict[str, tuple[tuple[Any, ...], Any, str]] = {
    "app id not a GUID": (("id",), "abc", "/id"),
    "bot id not a GUID": (("bots", 0, "botId"), "my-bot", "/bots/0/botId"),
    "client id not a GUID": (("webApplicationInfo", "id"), "x", "/webApplicationInfo/id"),
    "short name of 31": (("name", "short"), "x" * 31, "/name/short"),
    "full name of 101": (("name", "full"), "x" * 101, "/name/full"),
    "short description of 81": (("description", "short"), "x" * 81, "/description/short"),
    "developer name of 33": (("developer", "name"), "x" * 33, "/developer/name"),
    "accent colour by name": (("accentColor",), "teal", "/accentColor"),
    "privacy URL without scheme": (("developer", "privacyUrl"), "x.com", "/developer/privacyUrl"),
}


@pytest.fixture(scope="module")
def schema_errors() -> dict[str, list[str]]:
    entries = [
        {"name": name, "manifest": build_manifest(cfg)} for name, cfg in every_buildable().items()
    ]
    entries += [
        {"name": name, "manifest": _with(path, value)}
        for name, (path, value, _) in SCHEMA_REFUSES.items()
    ]
    assert NODE is not None
    run = subprocess.run(
        [NODE, str(VALIDATOR)],
        input=json.dumps(entries),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return {result["name"]: result["errors"] for result in json.loads(run.stdout)}


@pytest.mark.parametrize("name", list(every_buildable()))
def test_manifest_we_build_passes_the_official_schema(
    schema_errors: dict[str, list[str]], name: str
) -> None:
    assert schema_errors[name] == []


@pytest.mark.parametrize("name", list(SCHEMA_REFUSES))
def test_official_schema_refuses_what_our_checks_refuse(
    schema_errors: dict[str, list[str]], name: str
) -> None:
    pointer = SCHEMA_REFUSES[name][2]

    assert schema_errors[name], f"the schema accepted {name}"
    assert all(error.startswith(f"{pointer} ") for error in schema_errors[name])
