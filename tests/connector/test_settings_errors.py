"""Bad settings an admin meets in the first hour: each is one line naming the setting and
the fix, exit code 2, never a traceback. Table-driven, the CLI run as a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from connector.app import prepare_database
from connector.store.db import Store

M365 = {
    "DEALBRIDGE_TENANT_ID": "8c5e4ad4-35a4-4bd6-9ac9-4b2f8d6a3f10",
    "DEALBRIDGE_CLIENT_ID": "1f0c3a2b-9d8e-4c7b-a6f5-0e1d2c3b4a59",
    "DEALBRIDGE_CLIENT_SECRET": "s3cr3t-for-the-test",
    "DEALBRIDGE_PUBLIC_URL": "https://dealbridge.contoso.com",
}


@dataclass
class Case:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    says: tuple[str, ...] = ()
    never: tuple[str, ...] = ()


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("db") / "ok.db"
    store = Store(f"sqlite:///{path}")
    prepare_database(store)
    store.dispose()
    return f"sqlite:///{path}"


def _cases(tmp: Path, busy: int, migrated: str) -> list[Case]:
    return [
        Case(
            "a PostgreSQL URL whose driver is not installed",
            ["pipelines", "list"],
            {"DEALBRIDGE_DATABASE_URL": "postgresql+pg8000://dealbridge:pa55word@db.local/deals"},
            ("DEALBRIDGE_DATABASE_URL", "pg8000", "pip install 'dealbridge[postgres]'"),
            ("pa55word",),
        ),
        Case(
            "a SQLite path that cannot be opened",
            ["keys", "list"],
            {"DEALBRIDGE_DATABASE_URL": f"sqlite:///{tmp}/no/such/folder/x.db"},
            ("DEALBRIDGE_DATABASE_URL", "cannot open", "folder"),
        ),
        Case(
            "a new SQLite file",
            ["keys", "list"],
            {"DEALBRIDGE_DATABASE_URL": f"sqlite:///{tmp}/new.db"},
            ("DEALBRIDGE_DATABASE_URL", "dealbridge db upgrade"),
        ),
        Case(
            "no database in this folder's instance/",
            ["keys", "list"],
            {"DEALBRIDGE_INSTANCE_PATH": str(tmp / "elsewhere")},
            ("DEALBRIDGE_INSTANCE_PATH", "dealbridge db upgrade", "DEALBRIDGE_DATABASE_URL"),
        ),
        Case(
            "a list setting that is not JSON",
            ["pipelines", "list"],
            {"DEALBRIDGE_DATABASE_URL": migrated, "DEALBRIDGE_INTERNAL_DOMAINS": "contoso.com"},
            ("DEALBRIDGE_INTERNAL_DOMAINS", "JSON", '["contoso.com"]'),
        ),
        Case(
            "a sandbox tenant that is not a GUID",
            ["sandbox", "--tenant", "foo", "--port", "0"],
            {},
            ("--tenant", "GUID"),
        ),
        Case(
            "a port that is taken",
            ["serve", "--port", str(busy)],
            {"DEALBRIDGE_DATABASE_URL": migrated, **M365},
            ("--port", str(busy), "in use"),
        ),
        Case(
            "a port that is not a port",
            ["serve", "--port", "70000"],
            {"DEALBRIDGE_DATABASE_URL": migrated, **M365},
            ("--port", "70000", "65535"),
        ),
        Case(
            "a demo port that is taken",
            ["demo", "--sandbox-port", str(busy)],
            {},
            ("--sandbox-port", "in use"),
        ),
        Case(
            "a sandbox port that is taken",
            ["sandbox", "--port", str(busy)],
            {},
            ("--port", "in use"),
        ),
        Case(
            "serve with a public URL that is not https on a real host",
            ["serve", "--port", "0"],
            {"DEALBRIDGE_DATABASE_URL": migrated, **M365, "DEALBRIDGE_PUBLIC_URL": "http://x"},
            ("DEALBRIDGE_PUBLIC_URL", "https"),
            ("s3cr3t",),
        ),
        Case(
            "serve without Microsoft 365 settings",
            ["serve", "--port", "0"],
            {"DEALBRIDGE_DATABASE_URL": migrated},
            (
                "DEALBRIDGE_TENANT_ID",
                "DEALBRIDGE_CLIENT_ID",
                "DEALBRIDGE_CLIENT_SECRET",
                "DEALBRIDGE_PUBLIC_URL",
                "dealbridge demo",
            ),
        ),
        Case(
            "a misspelt setting",
            ["pipelines", "list"],
            {"DEALBRIDGE_DATABASE_URL": migrated, "DEALBRIDGE_SYNC_DAYS_BAK": "10"},
            ("DEALBRIDGE_SYNC_DAYS_BAK", "DEALBRIDGE_SYNC_DAYS_BACK"),
        ),
    ]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DEALBRIDGE_")}


@pytest.mark.parametrize("index", range(13))
def test_a_bad_setting_is_one_line_naming_the_setting_and_the_fix(
    index: int, tmp_path: Path, busy_port: int, migrated: str
) -> None:
    case = _cases(tmp_path, busy_port, migrated)[index]
    result = subprocess.run(
        [sys.executable, "-m", "connector", *case.argv],
        env={**_clean_env(), **case.env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, f"{case.name}: {output}"
    assert "Traceback" not in output, case.name
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert errors, f"{case.name}: {output}"
    assert all(len(line) < 400 for line in errors), case.name
    for words in case.says:
        assert words in output, f"{case.name}: {words!r} not in {output}"
    for words in case.never:
        assert words not in output, f"{case.name}: {words!r} shown"
    assert not (tmp_path / "instance").exists(), f"{case.name}: created ./instance silently"


def test_the_table_is_complete(tmp_path: Path) -> None:
    assert len(_cases(tmp_path, 1, "sqlite://")) == 13
