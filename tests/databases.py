"""The databases the tests run on: a SQLite file, or a throwaway PostgreSQL cluster.

``pytest`` runs on SQLite; ``pytest --database=postgresql`` runs the tests that touch the store
again on PostgreSQL. The cluster is started from the installed server binaries with ``pg_ctl``
(in a temporary folder, on a free port, fsync off) once per session; one template database is
migrated, and each test gets its own copy (``CREATE DATABASE ... TEMPLATE``), dropped after it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

HOW_TO_GET_IT = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install them "
    "(`apt-get install postgresql`) or put their folder on PATH; skipping the PostgreSQL run"
)


def find_server_binaries() -> Path | None:
    """The folder of initdb and pg_ctl: ``DEALBRIDGE_TEST_PG_BIN`` if set, else PATH, else
    Debian's /usr/lib/postgresql/NN/bin (the newest NN)."""
    chosen = os.environ.get("DEALBRIDGE_TEST_PG_BIN")
    if chosen:
        folder = Path(chosen)
        return folder if (folder / "initdb").exists() and (folder / "pg_ctl").exists() else None
    on_path = shutil.which("initdb"), shutil.which("pg_ctl")
    if all(on_path):
        return Path(os.path.realpath(on_path[0] or "")).parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in [*candidates, Path("/usr/local/pgsql/bin")]:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as ``postgres`` (Debian) or ``nobody``."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


@dataclass
class Cluster:
    """A throwaway PostgreSQL cluster: its own folder, port and superuser ``postgres``."""

    bin: Path
    root: Path
    port: int = 0
    user: str | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.root, timeout=120)

    def init(self) -> None:
        self.user = _server_user()
        if self.user:
            info = pwd.getpwnam(self.user)
            os.chown(self.root, info.pw_uid, info.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip

    def _options(self) -> str:
        """Our own port and socket folder; durability off: a throwaway cluster for tests."""
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories='{self.root}' -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
            "-c shared_buffers=32MB"
        )

    def start(self) -> None:
        """Start on a free port (another engineer's test may take the one we picked: try again)."""
        for attempt in itertools.count():
            self.port = _free_port()
            try:
                self._run(
                    "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                    "-l", str(self.root / "server.log"), "-o", self._options(),
                )  # fmt: skip
                return
            except subprocess.CalledProcessError:
                if attempt >= 3:
                    raise

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "stop", "-w", "-D", str(self.data), "-m", mode)

    def start_again(self) -> None:
        """Start a stopped cluster on the port it had (the app's URL still points there)."""
        self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
            "-l", str(self.root / "server.log"), "-o", self._options(),
        )  # fmt: skip

    def restart(self) -> None:
        """Stop and start on the same port: every pooled connection is now dead."""
        self._run(
            "pg_ctl", "restart", "-w", "-t", "60", "-D", str(self.data), "-m", "fast",
            "-l", str(self.root / "server.log"), "-o", self._options(),
        )  # fmt: skip

    def execute(self, *statements: str) -> None:
        """Run statements outside a transaction (CREATE/DROP DATABASE need that)."""
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        try:
            with engine.connect() as connection:
                for statement in statements:
                    connection.execute(sa.text(statement))
        finally:
            engine.dispose()

    @classmethod
    def create(cls, bin_folder: Path) -> Cluster:
        root = Path(tempfile.mkdtemp(prefix="dealbridge-pg-"))
        cluster = cls(bin=bin_folder, root=root)
        try:
            cluster.init()
            cluster.start()
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cluster

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


# ---- templates: where each test's database comes from ---------------------------------------


_created: list[Callable[[], None]] = []


def drop_test_databases() -> None:
    """Called after each test: drop the databases it created."""
    while _created:
        _created.pop()()


class Template:
    """A migrated database; ``fresh(path)`` gives a test its own copy and returns its URL."""

    dialect: str

    def fresh(self, path: Path) -> str:
        raise NotImplementedError

    def empty(self, path: Path) -> str:
        """A database with no tables yet (for migration tests)."""
        raise NotImplementedError


@dataclass
class SQLiteTemplate(Template):
    path: Path
    dialect: str = "sqlite"

    def fresh(self, path: Path) -> str:
        shutil.copy(self.path, path)
        return f"sqlite:///{path}"

    def empty(self, path: Path) -> str:
        return f"sqlite:///{path}"


@dataclass
class PostgresTemplate(Template):
    cluster: Cluster
    name: str
    dialect: str = "postgresql"
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fresh(self, path: Path) -> str:
        name = f"t_{next(self._numbers)}"
        self.cluster.execute(
            f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
            f"CREATE DATABASE {name} TEMPLATE {self.name}",
        )
        _created.append(lambda: self.drop(name))
        return self.cluster.url(name)

    def drop(self, name: str) -> None:
        self.cluster.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def empty(self, path: Path) -> str:
        name = f"e_{next(self._numbers)}"
        self.cluster.execute(f"CREATE DATABASE {name}")
        _created.append(lambda: self.drop(name))
        return self.cluster.url(name)
