"""``make fuzz``: schemathesis against a served DealBridge, on SQLite and on PostgreSQL.

For each database: the sandbox tenant (Entra, Graph, the Bot Connector) runs in this process;
a fresh database is migrated (``dealbridge db upgrade``), a write key created
(``dealbridge keys create``), and ``dealbridge serve`` (waitress) started on a free port as a
subprocess. Then schemathesis (from its own virtual environment, ``.venv-fuzz``: see the
Makefile) runs every operation of ``/api/openapi.json``, seeded and bounded, with the checks
:data:`CHECKS`. PostgreSQL is a throwaway cluster (tests/databases.py's ``Cluster``).

Printed per database: the cases run, the statuses seen (from schemathesis's HAR report) and
each failure. Exits non-zero on any failure, or when a server could not be started.

    python -m tests.fuzz.run [--database sqlite|postgresql|both] [--seed 1] [--examples 100]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import requests

from sandbox.server import RunningSandbox, start_sandbox
from tests.databases import HOW_TO_GET_IT, Cluster, _free_port, find_server_binaries

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
SCHEMATHESIS = ROOT / ".venv-fuzz" / "bin" / "schemathesis"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
)


@dataclass
class Outcome:
    database: str
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    exit_code: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.failures


def _environment(sandbox: RunningSandbox, url: str, folder: Path, port: int) -> dict[str, str]:
    bot = requests.get(f"{sandbox.base_url}/_sandbox/teams/bot", timeout=30).json()
    settings = {
        "DATABASE_URL": url,
        "INSTANCE_PATH": str(folder / "instance"),
        "TENANT_ID": sandbox.tenant_id,
        "CLIENT_ID": sandbox.client_id,
        "CLIENT_SECRET": sandbox.client_secret,
        "LOGIN_BASE_URL": sandbox.base_url,
        "GRAPH_BASE_URL": sandbox.base_url,
        "BOT_OPENID_METADATA_URL": bot["openIdMetadata"],
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "AUTO_MIGRATE": "false",
        "LOG_LEVEL": "WARNING",
    }
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("DEALBRIDGE_")},
        **{f"DEALBRIDGE_{k}": v for k, v in settings.items()},
        "PYTHONPATH": os.pathsep.join([str(SRC), str(ROOT)]),
    }


def _dealbridge(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "connector", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"dealbridge {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


@contextlib.contextmanager
def _served(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """``dealbridge serve`` on ``port`` until the block ends; yields its base URL."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "connector", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"dealbridge serve exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/api/openapi.json", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"dealbridge serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


REP = "ann.lee@contoso.example"
DEAL = {
    "title": "Fabrikam ERP rollout",
    "pipeline": "classic5",
    "stage": "negotiation",
    "owner": REP,
    "account": {"name": "Fabrikam", "domains": ["fabrikam.example"]},
    "contacts": [{"name": "Dana Ruiz", "email": "dana.ruiz@fabrikam.example"}],
}


def _seed(base: str, key: str) -> dict[str, list[str | int]]:
    """A rep, a deal with its reminders and an interaction, made through the API: their ids are
    the dictionaries schemathesis draws path parameters from half of the time (else it makes
    its own), so operations on an existing resource are fuzzed too, not only their 404."""
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {key}"

    def call(method: str, path: str, body: dict[str, object] | None = None) -> Any:
        answer = api.request(method, f"{base}/api/v1{path}", json=body, timeout=30)
        if answer.status_code >= 300:
            raise RuntimeError(f"seeding: {method} {path}: {answer.status_code} {answer.text}")
        return answer.json()

    call("PUT", f"/reps/{REP}", {"display_name": "Ann Lee", "time_zone": "Europe/Berlin"})
    call("PUT", "/deals/OPP-1", DEAL)
    call("PUT", "/deals/OPP-2", {**DEAL, "title": "Contoso CRM", "stage": "first_interaction"})
    note = call("POST", "/deals/OPP-1/interactions", {"kind": "note", "text": "Call booked"})
    reminders = call("GET", "/deals/OPP-1/reminders")["items"]
    return {
        "deal_id": ["OPP-1", "OPP-2"],
        "email": [REP],
        "pipeline_id": ["classic5"],
        "interaction_id": [note["id"]],
        "reminder_id": [r["id"] for r in reminders] or [1],
    }


def _config(folder: Path, known: dict[str, list[str | int]]) -> Path:
    lines = ["[dictionaries]"]
    lines += [f"{name} = {{ values = {json.dumps(values)} }}" for name, values in known.items()]
    lines += ["", "[parameters]"]
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}' for name in known]
    path = folder / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _schemathesis(base: str, key: str, folder: Path, seed: int, examples: int, config: Path) -> int:
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"{base}/api/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--seed",
        str(seed),
        "--max-examples",
        str(examples),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
        "--header",
        f"Authorization: Bearer {key}",
        "--report",
        "har,junit",
        "--report-dir",
        str(folder / "report"),
        "--output-sanitize",
        "true",
        "--no-color",
    ]
    try:
        return subprocess.run(command, check=False, cwd=folder, timeout=900).returncode
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError("schemathesis did not finish in 15 minutes") from exc


def _read_reports(outcome: Outcome, folder: Path) -> None:
    report = folder / "report"
    for har in report.glob("har-*.json"):
        entries = json.loads(har.read_text())["log"]["entries"]
        outcome.cases += len(entries)
        outcome.statuses.update(int(e["response"]["status"]) for e in entries)
    for junit in report.glob("*.xml"):
        for case in ElementTree.parse(junit).iter("testcase"):
            for failure in [*case.iter("failure"), *case.iter("error")]:
                text = (failure.get("message") or failure.text or "").strip()
                outcome.failures.append(f"{case.get('name')}: {text[:2000]}")


def fuzz(database: str, sandbox: RunningSandbox, seed: int, examples: int) -> Outcome:
    outcome = Outcome(database)
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix=f"dealbridge-fuzz-{database}-"))
    cluster: Cluster | None = None
    try:
        if database == "postgresql":
            binaries = find_server_binaries()
            if binaries is None:
                raise RuntimeError(HOW_TO_GET_IT)
            cluster = Cluster.create(binaries)
            cluster.execute("CREATE DATABASE fuzz")
            url = cluster.url("fuzz")
        else:
            url = f"sqlite:///{folder / 'fuzz.db'}"
        port = _free_port()
        env = _environment(sandbox, url, folder, port)
        _dealbridge(env, "db", "upgrade")
        key = _dealbridge(env, "keys", "create", "--name", "fuzz", "--scope", "write")
        key = key.strip().splitlines()[-1].strip()
        with _served(env, port, folder / "serve.log") as base:
            config = _config(folder, _seed(base, key))
            outcome.exit_code = _schemathesis(base, key, folder, seed, examples, config)
        _read_reports(outcome, folder)
        log = (folder / "serve.log").read_text(errors="replace")
        if "Traceback" in log:
            outcome.failures.append(f"tracebacks in the server's log:\n{log[-4000:]}")
    finally:
        if cluster is not None:
            cluster.destroy()
        outcome.seconds = time.monotonic() - started
        if outcome.ok:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"[{database}] reports and server log kept in {folder}")
    return outcome


FUZZER_FAULT = "AST constructor recursion depth mismatch"
"""CPython 3.11's ``ast`` can raise this when hypothesis parses a strategy's lambda to describe
it (``hypothesis/internal/lambda_sources.py``): a fault inside the fuzzer, seen once in CI on
one operation, every request answered as documented. Such a run is made once more."""


def _fuzzer_fault_only(outcome: Outcome) -> bool:
    return bool(outcome.failures) and all(
        "Runtime Error" in f and FUZZER_FAULT in f for f in outcome.failures
    )


def _print(outcome: Outcome) -> None:
    statuses = ", ".join(f"{s}×{n}" for s, n in sorted(outcome.statuses.items()))
    print(f"\n== {outcome.database}: {outcome.cases} cases in {outcome.seconds:.0f} s", flush=True)
    print(f"   statuses: {statuses or 'none'}")
    print(f"   failures: {len(outcome.failures)} (schemathesis exit {outcome.exit_code})")
    for failure in outcome.failures:
        print("   - " + failure.replace("\n", "\n     "))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--examples", type=int, default=100, help="fuzzing-phase cases per operation"
    )
    args = parser.parse_args(argv)
    if not SCHEMATHESIS.exists():
        print(f"{SCHEMATHESIS} not found: run `make fuzz` (it creates .venv-fuzz)")
        return 2
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in databases and find_server_binaries() is None:
        # As the suite does: skipped with one line, except where CI requires the PostgreSQL run.
        if os.environ.get("DEALBRIDGE_TEST_REQUIRE_POSTGRESQL") == "1":
            print(f"{HOW_TO_GET_IT} - not allowed: DEALBRIDGE_TEST_REQUIRE_POSTGRESQL=1")
            return 1
        print(HOW_TO_GET_IT)
        databases.remove("postgresql")
    started = time.monotonic()
    sandbox = start_sandbox()
    outcomes: list[Outcome] = []
    try:
        user = {"userPrincipalName": REP, "displayName": "Ann Lee"}  # the seeded deals' rep
        requests.post(f"{sandbox.base_url}/_sandbox/users", json=user, timeout=30)
        for database in databases:
            print(
                f"== fuzzing on {database} (seed {args.seed}, {args.examples} per operation)",
                flush=True,
            )
            try:
                outcome = fuzz(database, sandbox, args.seed, args.examples)
                if _fuzzer_fault_only(outcome):  # not our server: run it once more
                    print(f"[{database}] the fuzzer itself crashed ({FUZZER_FAULT}); once more")
                    outcome = fuzz(database, sandbox, args.seed, args.examples)
                outcomes.append(outcome)
            except RuntimeError as exc:
                outcomes.append(Outcome(database, failures=[str(exc)], exit_code=2))
    finally:
        sandbox.stop()
    for outcome in outcomes:
        _print(outcome)
    failed = [o.database for o in outcomes if not o.ok]
    verdict = "FAILED on " + ", ".join(failed) if failed else "no failures"
    cases = sum(o.cases for o in outcomes)
    print(f"\nfuzz: {verdict} ({cases} cases, {time.monotonic() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
