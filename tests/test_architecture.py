"""The arrows between our packages point one way: read every import under src/ with `ast`.

Every import counts, at module level, inside functions and under `if TYPE_CHECKING:` (a
type-only arrow is still an arrow). `from pkg import name` is an arrow to `pkg.name` when
that is a module of ours, else to `pkg`; relative imports are resolved against the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# --- the rules -------------------------------------------------------------------------------

# importer → the only packages of ours it may import besides itself
ONLY: dict[str, tuple[str, ...]] = {
    "graph_sync": (),  # the leaves import nothing of ours
    "reminders": (),
    "cards": (),
    "manifest": (),
    "sandbox": (),
    # the domain: its rows, its signals, its errors, and the pure leaf whose presets seed pipelines
    "connector.deals": ("connector.store", "connector.signals", "connector.errors", "reminders"),
}

# (importer, imported, why): never, anywhere in the importer's package
NEVER: list[tuple[str, str, str]] = [
    ("connector", "sandbox", "the sandbox is a test double; production code must not need it"),
    ("connector.api", "connector.teams", "REST does not depend on the Teams channel"),
    ("connector.api", "connector.crm", "REST does not depend on the outbound CRM webhooks"),
    ("connector.meetings", "connector.teams", "meetings tell Teams through signals"),
    ("connector.stage_reminders", "connector.teams", "reminders tell Teams through signals"),
]

# (importer, imported): exceptions to NEVER
EXCEPT: set[tuple[str, str]] = {
    ("connector.admin", "sandbox"),  # `dealbridge demo` starts the sandbox
}

# (importer, imported, why): the imports allowed inside a function, each for a measured cost.
# Figures: `python -X importtime` (cumulative, alone), or the wall time of `dealbridge --help`
# (0.08 s with what cli.py imports at module level), on the project's venv, Python 3.11.
IN_FUNCTIONS: list[tuple[str, str, str]] = [
    ("graph_sync", "msgraph", "msgraph-sdk: 400-500 ms, paid only by the Graph calls that use it"),
    ("graph_sync", "msgraph_core", "430 ms, only for building the Graph adapter"),
    ("graph_sync", "kiota_abstractions", "105 ms, only for a Graph request"),
    ("graph_sync", "kiota_http", "300 ms, only for building the Graph adapter"),
    ("graph_sync", "httpx", "155 ms, only for building the Graph adapter"),
    ("graph_sync", "msal", "160 ms, only when a token is first needed"),
    ("connector.jobs", "apscheduler", "120-390 ms, only in the process that runs the jobs"),
    ("connector", "alembic", "380 ms, only for migrations and the doctor's check"),
    ("connector.admin", "waitress", "52 ms, only when serving (`demo --seed-only` never does)"),
    ("reminders", "holidays", "72 ms, only when a country's public holidays are asked for"),
    ("cards.render", "PIL", "Pillow's Image: 23 ms, only for a card's screenshot"),
    ("connector.admin", "connector.admin.pages", "Flask: --help 0.05 s -> 0.26 s"),
    ("connector.admin", "connector.admin.console", "Flask and the store: as pages, for --help"),
    ("connector.admin.cli", "sqlalchemy", "--help 0.08 s -> 0.5 s"),
    ("connector.admin.cli", "connector", "--help 0.08 s -> 0.3 s (settings) up to 3.1 s (app)"),
    ("connector.admin.cli", "graph_sync.catalog", "--help 0.08 s -> 0.5 s"),
    ("connector.admin.cli", "graph_sync.device_code", "--help 0.08 s -> 0.4 s"),
    ("connector.admin.cli", "manifest", "pydantic: --help 0.08 s -> 0.4 s"),
    ("connector.admin.cli", "sandbox", "--help 0.08 s -> 0.95 s"),
]

# --- reading the imports ---------------------------------------------------------------------


@dataclass(frozen=True)
class Arrow:
    importer: str
    imported: str  # a module of ours, or the top-level name of another package
    line: int
    function: str | None  # the enclosing function, None at module level

    def __str__(self) -> str:
        where = f" in {self.function}()" if self.function else ""
        return f"{self.importer}:{self.line}{where} -> {self.imported}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}
    assert found, f"no modules under {SRC}"
    return found


def _ours(name: str) -> bool:
    return name.split(".")[0] in {m.split(".")[0] for m in modules()}


def _nearest_module(name: str) -> str:
    """`connector.store.models.Deal` → `connector.store.models` (the longest known prefix)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules():
            return candidate
    return parts[0]


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield _nearest_module(alias.name) if _ours(alias.name) else alias.name.split(".")[0]
        return
    if node.level:
        is_package = modules()[module].name == "__init__.py"
        base = module.split(".")
        base = base if is_package else base[:-1]
        base = base[: len(base) - (node.level - 1)]
        pkg = ".".join(base + ([node.module] if node.module else []))
    else:
        pkg = node.module or ""
    if not _ours(pkg):
        yield pkg.split(".")[0]
        return
    for alias in node.names:
        yield _nearest_module(f"{pkg}.{alias.name}")


def _walk(module: str, node: ast.AST, function: str | None) -> Iterator[Arrow]:
    for child in ast.iter_child_nodes(node):
        inside = function
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            inside = child.name if function is None else f"{function}.{child.name}"
        if isinstance(child, ast.Import | ast.ImportFrom):
            for target in _targets(module, child):
                yield Arrow(module, target, child.lineno, function)
        yield from _walk(module, child, inside)


@cache
def arrows() -> tuple[Arrow, ...]:
    found: dict[Arrow, None] = {}  # ordered, and one arrow per line however many names
    for module, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found.update((a, None) for a in _walk(module, tree, None) if a.imported != module)
    return tuple(found)


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


# --- what breaks them ------------------------------------------------------------------------


def cycles() -> list[str]:
    """Each strongly connected group of our modules (Tarjan), with one shortest cycle in it."""
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for arrow in arrows():
        if arrow.imported in graph:
            graph[arrow.importer].add(arrow.imported)
            graph[arrow.importer].update(_packages_run_first(arrow.importer, arrow.imported))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [
        f"{' -> '.join(_shortest_cycle(graph, group))}  (all of: {', '.join(sorted(group))})"
        for group in groups
    ]


def _packages_run_first(importer: str, imported: str) -> list[str]:
    """Importing `a.b.c` runs `a.b`'s `__init__` first, unless the importer is inside `a.b`
    (then that package is already being initialised)."""
    parts = imported.split(".")
    parents = [".".join(parts[:end]) for end in range(1, len(parts))]
    return [p for p in parents if p in modules() and not _within(importer, p)]


def _shortest_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    paths = [[start]]
    seen = {start}
    while paths:
        path = paths.pop(0)
        for w in sorted(graph[path[-1]] & group):
            if w == start:
                return [*path, start]
            if w not in seen:
                seen.add(w)
                paths.append([*path, w])
    raise AssertionError(f"no cycle through {start}")  # a group always has one


def forbidden(rule: str) -> list[Arrow]:
    """The arrows that break one rule ("ONLY <importer>" or "NEVER <importer> <imported>")."""
    kind, importer, *rest = rule.split()
    broken = []
    for arrow in arrows():
        if not _within(arrow.importer, importer) or not _ours(arrow.imported):
            continue
        if _within(arrow.imported, importer):
            continue
        if kind == "ONLY":
            ok = any(_within(arrow.imported, p) for p in ONLY[importer])
        else:
            [imported] = rest
            excepted = any(
                _within(arrow.importer, a) and _within(arrow.imported, b) for a, b in EXCEPT
            )
            ok = not _within(arrow.imported, imported) or excepted
        if not ok:
            broken.append(arrow)
    return broken


def unexplained_function_imports() -> list[Arrow]:
    return [
        a
        for a in arrows()
        if a.function is not None
        and not any(
            _within(a.importer, who) and _within(a.imported, what) for who, what, _ in IN_FUNCTIONS
        )
    ]


def _report(broken: Iterable[object]) -> str:
    return "\n".join(str(b) for b in broken)


# --- the tests -------------------------------------------------------------------------------

# A rule that fails for a known reason gets an entry here (a strict xfail) until it is fixed.
STILL_BROKEN: dict[str, str] = {}

RULES = [f"ONLY {importer}" for importer in ONLY] + [f"NEVER {a} {b}" for a, b, _ in NEVER]


def _marks(name: str) -> list[pytest.MarkDecorator]:
    if name in STILL_BROKEN:
        return [pytest.mark.xfail(strict=True, reason=STILL_BROKEN[name])]
    return []


def test_the_import_reader_resolves_every_form() -> None:
    source = """
import sandbox.graph.users
import msgraph.generated.users
from . import events
from .. import timezones
from sandbox import tenant
from sandbox.tenant import utc_now
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from sandbox.identity import Authority
def later():
    from .users import mailbox_user
"""
    found = [
        (a.imported, a.function) for a in _walk("sandbox.graph.delta", ast.parse(source), None)
    ]
    assert found == [
        ("sandbox.graph.users", None),
        ("msgraph", None),
        ("sandbox.graph.events", None),
        ("sandbox.timezones", None),
        ("sandbox.tenant", None),
        ("sandbox.tenant", None),
        ("typing", None),
        ("sandbox.identity", None),
        ("sandbox.graph.users", "later"),
    ]
    in_package = _walk("sandbox.graph", ast.parse("from . import delta"), None)
    assert [a.imported for a in in_package] == ["sandbox.graph.delta"]


def test_the_import_reader_sees_the_whole_tree() -> None:
    assert {m.split(".")[0] for m in modules()} >= {
        "connector",
        "graph_sync",
        "reminders",
        "cards",
        "manifest",
        "sandbox",
    }
    seen = {(a.importer, a.imported, a.function) for a in arrows()}
    assert ("connector.admin.cli", "connector.admin.demo", "demo") in seen  # inside a function
    assert ("connector.app", "flask", None) in seen  # another package, at module level


@pytest.mark.parametrize("name", ["cycles"], ids=["no cycles in src"])
def test_no_import_cycles(name: str, request: pytest.FixtureRequest) -> None:
    for mark in _marks(name):
        request.applymarker(mark)
    found = cycles()
    assert not found, "import cycles:\n" + _report(found)


@pytest.mark.parametrize("rule", RULES)
def test_no_forbidden_arrow(rule: str, request: pytest.FixtureRequest) -> None:
    for mark in _marks(rule):
        request.applymarker(mark)
    broken = forbidden(rule)
    assert not broken, f"{rule} is broken by:\n" + _report(broken)


def test_imports_inside_functions_are_only_the_measured_ones(
    request: pytest.FixtureRequest,
) -> None:
    for mark in _marks("functions"):
        request.applymarker(mark)
    found = unexplained_function_imports()
    assert not found, "imports inside functions with no measured cost:\n" + _report(found)
