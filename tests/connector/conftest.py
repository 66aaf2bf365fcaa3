"""Fixtures: a real app on a real SQLite file per test (copied from a migrated template)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from connector.app import create_app, prepare_database
from connector.keys import create_key
from connector.store.db import Store, get_store


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once; each test gets a copy (an Alembic run per test would cost ~0.2 s)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    store = Store(f"sqlite:///{path}")
    prepare_database(store)
    store.dispose()
    return path


def make_app(db_path: Path, template: Path, **overrides: Any) -> Flask:
    shutil.copy(template, db_path)
    config: dict[str, Any] = {
        "TESTING": True,
        "database_url": f"sqlite:///{db_path}",
        "auto_migrate": False,
        "scheduler_enabled": False,
        "instance_path": db_path.parent,
    }
    config.update(overrides)
    return create_app(config)


@pytest.fixture
def app(tmp_path: Path, migrated_template: Path) -> Iterator[Flask]:
    app = make_app(tmp_path / "dealbridge.db", migrated_template)
    yield app
    get_store(app).dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def _key(app: Flask, scope: str) -> str:
    with get_store(app).session() as session:
        return create_key(session, f"test-{scope}", scope)  # type: ignore[arg-type]


@pytest.fixture
def write_key(app: Flask) -> str:
    return _key(app, "write")


@pytest.fixture
def read_key(app: Flask) -> str:
    return _key(app, "read")


@pytest.fixture
def auth(write_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {write_key}"}
