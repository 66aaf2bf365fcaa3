"""Test-wide settings: Hypothesis runs derandomized, so CI is repeatable; the test database.

Set ``HYPOTHESIS_PROFILE=explore`` to search with fresh random examples on every run.

``pytest`` runs on SQLite; ``pytest --database=postgresql`` (or
``DEALBRIDGE_TEST_DATABASE=postgresql``) runs every test that touches the store again on a
throwaway PostgreSQL cluster (tests/databases.py). Where the server binaries are missing, that
run is skipped with one line saying how to get them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.browser import browser  # noqa: F401  (a fixture for the page tests)
from tests.databases import (
    HOW_TO_GET_IT,
    Cluster,
    PostgresTemplate,
    SQLiteTemplate,
    Template,
    drop_test_databases,
    find_server_binaries,
)

settings.register_profile(
    "repeatable",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("explore", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


# ---- the database every store-touching test runs on ----------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database",
        choices=["sqlite", "postgresql"],
        default=os.environ.get("DEALBRIDGE_TEST_DATABASE", "sqlite"),
        help="the database the store-touching tests run on (PostgreSQL: a throwaway cluster)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--database") == "postgresql" and find_server_binaries() is None:
        # CI sets DEALBRIDGE_TEST_REQUIRE_POSTGRESQL=1: there, a skipped run would be a pass.
        required = os.environ.get("DEALBRIDGE_TEST_REQUIRE_POSTGRESQL") == "1"
        if required:
            pytest.exit(f"{HOW_TO_GET_IT} - not allowed: DEALBRIDGE_TEST_REQUIRE_POSTGRESQL=1")
        pytest.exit(HOW_TO_GET_IT, returncode=0)


def pytest_report_header(config: pytest.Config) -> str:
    return f"database: {config.getoption('--database')}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, run only what touches the store: the rest would run the same code twice."""
    if config.getoption("--database") != "postgresql":
        return
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:  # kept, and skipped: the report says why
            why = marker.args[0] if marker.args else "SQLite-specific"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {why}"))
        uses_store = "migrated_template" in getattr(item, "fixturenames", ())
        (keep if uses_store or marker is not None else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def database_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.config.getoption("--database")
    return kind


@pytest.fixture(scope="session")
def postgres_cluster(database_kind: str) -> Iterator[Cluster]:
    if database_kind != "postgresql":
        pytest.skip("needs --database=postgresql")
    binaries = find_server_binaries()
    if binaries is None:
        pytest.skip(HOW_TO_GET_IT)
    cluster = Cluster.create(binaries)
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def migrated_template(
    request: pytest.FixtureRequest, database_kind: str, tmp_path_factory: pytest.TempPathFactory
) -> Template:
    """Migrate once; each test gets a copy (an Alembic run per test would cost ~0.2 s)."""
    from connector.app import prepare_database
    from connector.store.db import Store

    if database_kind == "postgresql":
        cluster: Cluster = request.getfixturevalue("postgres_cluster")
        cluster.execute("CREATE DATABASE dealbridge_template")
        template: Template = PostgresTemplate(cluster, "dealbridge_template")
        url = cluster.url("dealbridge_template")
    else:
        path = tmp_path_factory.mktemp("template") / "template.db"
        template = SQLiteTemplate(path)
        url = f"sqlite:///{path}"
    store = Store(url)
    prepare_database(store)
    store.dispose()
    return template


@pytest.fixture(autouse=True)
def _drop_test_databases() -> Iterator[None]:
    yield
    drop_test_databases()
