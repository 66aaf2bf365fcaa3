"""Hardened at the edges (issue 14): deep JSON refused before parsing, security headers on
every answer, a clear line when the filesystem is read-only, and waitress's limits."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from connector.json_limits import nesting_exceeds
from sandbox.server import serve_in_background
from tests.connector.conftest import _free_port


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """The app over real HTTP (werkzeug), as a client on the network sees it."""
    port = _free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = serve_in_background(server)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


# ---- deep JSON -------------------------------------------------------------------------------

DEEP_ROUTES = [
    ("PUT", "/api/v1/deals/D-1"),
    ("POST", "/api/graph/notifications"),
    ("POST", "/api/graph/lifecycle"),
    ("POST", "/api/messages"),
]


@pytest.mark.parametrize("depth", [10_000, 100_000])
@pytest.mark.parametrize(("method", "path"), DEEP_ROUTES)
def test_deep_json_is_refused_naming_the_limit(
    served: str,
    auth: dict[str, str],
    method: str,
    path: str,
    depth: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = '{"a":' * depth + "1" + "}" * depth
    answer = requests.request(
        method,
        served + path,
        data=body,
        headers={**auth, "Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    problem = answer.json()
    assert "nested more than 64 levels" in problem["detail"]
    assert "Traceback" not in caplog.text
    assert "RecursionError" not in caplog.text


def test_deep_arrays_and_unclosed_brackets_are_refused(served: str, auth: dict[str, str]) -> None:
    for body in ("[" * 50_000 + "]" * 50_000, "[" * 50_000, '[{"a":' * 40 + "[" * 30):
        answer = requests.post(
            served + "/api/graph/notifications",
            data=body,
            headers={"Content-Type": "text/plain"},  # refused whatever the body says it is
            timeout=30,
        )
        assert answer.status_code == 400, (body[:20], answer.text)


def test_brackets_inside_strings_do_not_count(served: str, auth: dict[str, str]) -> None:
    """A deal named with many brackets is a string, not nesting: it reaches validation."""
    name = "[{" * 500 + '\\"' + "}]" * 500
    nested = '{"a":' * 63 + "1" + "}" * 63  # with the outer object: 64 levels, the limit
    answer = requests.put(
        served + "/api/v1/deals/D-1",
        data='{"name": "' + name + '", "deep": ' + nested + "}",
        headers={**auth, "Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 422, answer.text  # the model's answer, not the nesting limit
    assert "nested" not in answer.json()["detail"]


@pytest.mark.parametrize(
    ("body", "too_deep"),
    [
        (b"[" * 64 + b"]" * 64, False),
        (b"[" * 65 + b"]" * 65, True),
        (b"[[]]" * 10_000, False),
        (b'{"a":' * 64 + b"1" + b"}" * 64, False),
        (b'{"a":' * 65 + b"1" + b"}" * 65, True),
        (b'"' + b"[{" * 100 + b'"', False),
        (b'["\\"' + b"[" * 100 + b'"]', False),
        (b"[" * 65, True),
        (b"{]" * 40, False),
    ],
)
def test_nesting_scan(body: bytes, too_deep: bool) -> None:
    assert nesting_exceeds(body) is too_deep


# ---- headers ---------------------------------------------------------------------------------

TEAMS_FRAMERS = "https://teams.microsoft.com https://*.teams.microsoft.com https://*.skype.com"


def test_the_validation_echo_is_never_sniffed(served: str) -> None:
    """Graph's handshake echoes the caller's text: a browser must not read it as HTML."""
    answer = requests.post(
        served + "/api/graph/notifications",
        params={"validationToken": "<script>alert(1)</script>"},
        timeout=30,
    )
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/api/openapi.json"),
        ("GET", "/api/v1/deals"),  # 401 without a key
        ("GET", "/no/such/page"),
        ("POST", "/api/messages"),
        ("GET", "/privacy"),
        ("GET", "/metrics"),
    ],
)
def test_nosniff_on_every_answer(served: str, method: str, path: str) -> None:
    answer = requests.request(method, served + path, timeout=30)
    assert answer.headers["X-Content-Type-Options"] == "nosniff", answer.status_code


def test_authenticated_api_answers_are_not_stored(served: str, auth: dict[str, str]) -> None:
    for path in ("/api/v1/deals", "/api/v1/pipelines", "/api/v1/deals/nope"):
        answer = requests.get(served + path, headers=auth, timeout=30)
        assert answer.status_code in {200, 404}
        assert answer.headers["Cache-Control"] == "no-store", path
    refused = requests.get(served + "/api/v1/deals", timeout=30)
    assert refused.status_code == 401
    assert refused.headers["Cache-Control"] == "no-store"


def _csp(answer: requests.Response) -> dict[str, str]:
    policy = answer.headers["Content-Security-Policy"]
    directives = (part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


@pytest.mark.parametrize("path", ["/privacy", "/terms", "/admin/consented", "/api/docs"])
def test_html_pages_have_a_policy_and_may_not_be_framed(served: str, path: str) -> None:
    answer = requests.get(served + path, timeout=30)
    assert answer.headers["Content-Type"].startswith("text/html")
    csp = _csp(answer)
    assert csp["default-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in answer.headers["Content-Security-Policy"]
    assert csp["style-src"].startswith("'self' 'sha256-")  # the page's own inline style only
    assert answer.headers["X-Frame-Options"] == "DENY"


def test_a_tab_page_may_be_framed_by_teams_only(app: Flask) -> None:
    from connector.headers import teams_tab

    @app.get("/tab/test")
    @teams_tab
    def tab() -> str:
        return "<!doctype html><p>a tab</p>"

    answer = app.test_client().get("/tab/test")
    csp = _csp(answer)  # type: ignore[arg-type]
    assert csp["frame-ancestors"] == TEAMS_FRAMERS
    assert csp["default-src"] == "'self'"
    assert "X-Frame-Options" not in answer.headers
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_json_answers_carry_no_page_policy(served: str) -> None:
    answer = requests.get(served + "/healthz", timeout=30)
    assert "Content-Security-Policy" not in answer.headers


# ---- a filesystem that cannot be written at start ---------------------------------------------

# Root ignores chmod, so these paths cannot be created whoever runs: a folder under a file, and
# a file in /proc (nobody may create one there).
UNDER_A_FILE = "/etc/hostname/dealbridge"


def _start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``dealbridge db upgrade`` (the start of every command that opens the store)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEALBRIDGE_")}
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environment.update({"DEALBRIDGE_INSTANCE_PATH": str(tmp_path / "instance"), **env})
    environment["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run(
        [sys.executable, "-m", "connector", "db", "upgrade"],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "setting", "path"),
    [
        (
            {"DEALBRIDGE_INSTANCE_PATH": UNDER_A_FILE},
            "DEALBRIDGE_INSTANCE_PATH",
            UNDER_A_FILE,
        ),
        (
            {"DEALBRIDGE_DATABASE_URL": "sqlite:////proc/dealbridge.db"},
            "DEALBRIDGE_DATABASE_URL",
            "/proc/dealbridge.db",
        ),
        (
            {"PROMETHEUS_MULTIPROC_DIR": UNDER_A_FILE},
            "PROMETHEUS_MULTIPROC_DIR",
            UNDER_A_FILE,
        ),
    ],
)
def test_an_unwritable_path_at_start_is_one_line_naming_it(
    tmp_path: Path, env: dict[str, str], setting: str, path: str
) -> None:
    done = _start(tmp_path, **env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    assert setting in errors[0]
    assert path in errors[0]


def test_a_writable_instance_starts(tmp_path: Path) -> None:
    done = _start(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "instance" / "dealbridge.db").exists()


# ---- waitress: what the app refuses is refused early; slow clients cannot take every slot ---


@pytest.fixture
def waitress_url(app: Flask) -> Iterator[str]:
    """The app behind waitress as ``dealbridge serve`` builds it (without the jobs)."""
    from connector.admin.server import make_server as make_waitress

    server = make_waitress(app, host="127.0.0.1", port=_free_port(), threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"  # type: ignore[union-attr]
    finally:
        server.close()
        server.task_dispatcher.shutdown()  # type: ignore[union-attr]


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=20)


def test_an_oversized_body_is_refused_before_it_is_sent(waitress_url: str, app: Flask) -> None:
    """A Content-Length over DEALBRIDGE_MAX_BODY_BYTES is answered at once, no body read: the
    client here never sends one, and would wait forever for an answer waitress gave only
    after spooling the body (up to 1 GiB by default)."""
    limit = app.config["MAX_CONTENT_LENGTH"]
    with _connect(waitress_url) as sock:
        sock.sendall(
            b"POST /api/v1/deals:bulk HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            + f"\r\nContent-Length: {limit + 1}\r\n\r\n".encode()
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_body_within_the_limit_still_reaches_the_app(
    waitress_url: str, auth: dict[str, str]
) -> None:
    answer = requests.put(
        waitress_url + "/api/v1/deals/D-1", json={"name": 1}, headers=auth, timeout=20
    )
    assert answer.status_code == 422


def test_six_hundred_slow_clients_leave_room_for_others(waitress_url: str) -> None:
    """Slowloris: clients that open a connection and never finish their headers. waitress's
    default of 100 connections let 100 of them lock everyone out; with select() (its default)
    the server loop died at descriptor 1024 (here: 600 on each side of one process)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1500:  # both ends of 600 connections live in this process
        if hard != resource.RLIM_INFINITY and hard < 1500:
            pytest.skip(f"needs 1,500 file descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1500, hard))
    slow = [_connect(waitress_url) for _ in range(600)]  # and descriptors above 1023
    try:
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
        answer = requests.get(waitress_url + "/healthz", timeout=20)
        assert answer.status_code in {200, 503}
    finally:
        for sock in slow:
            sock.close()


def test_serve_uses_the_same_limits(app: Flask) -> None:
    from connector.admin.server import server_options

    options = server_options(app)
    assert options["max_request_body_size"] == app.config["MAX_CONTENT_LENGTH"]
    assert options["connection_limit"] >= 500
    assert options["channel_timeout"] <= 60
    assert options["asyncore_use_poll"]  # with select(), descriptor 1024 killed the server


def test_a_chunk_size_line_that_never_ends_is_refused_at_the_cap(waitress_url: str) -> None:
    """waitress re-copies an unfinished chunk-size line on every piece (quadratic CPU, up to
    the body limit); past CHUNK_LINE_BYTES the answer is 400 and the connection is closed,
    though the line has not ended."""
    from connector.admin.server import CHUNK_LINE_BYTES

    with _connect(waitress_url) as sock:
        sock.sendall(
            b"POST /api/graph/notifications HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        )
        sock.sendall(b"f" * (CHUNK_LINE_BYTES + 1024))  # and never a CRLF
        answer = b""
        while chunk := sock.recv(4096):  # until waitress closes the connection
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"chunk-size line" in answer


def test_a_chunked_trailer_that_never_ends_is_refused(waitress_url: str) -> None:
    from connector.admin.server import HEADER_BYTES

    with _connect(waitress_url) as sock:
        sock.sendall(
            b"POST /api/graph/notifications HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
            b"2\r\n{}\r\n0\r\n"
        )
        for _ in range(HEADER_BYTES // 4096 + 1):  # just past the cap, and no blank line
            sock.sendall(b"X-Trailer: " + b"t" * 4083 + b"\r\n")
        answer = b""
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except ConnectionResetError:  # closed with a little of ours unread: refused too
            answer = answer or b"(reset)"
    assert answer.startswith((b"HTTP/1.1 400", b"(reset)")), answer[:200]


def test_a_chunked_body_within_the_limits_still_reaches_the_app(waitress_url: str) -> None:
    with _connect(waitress_url) as sock:
        sock.sendall(
            b"POST /api/graph/notifications?validationToken=hello HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"2;name=value\r\n{}\r\n0\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert answer.endswith(b"hello")


def _answer(sock: socket.socket) -> tuple[bytes, dict[str, str], bytes]:
    """An HTTP answer read to the end of the connection: status line, headers, body."""
    raw = b""
    try:
        while chunk := sock.recv(4096):
            raw += chunk
    except ConnectionResetError:
        pass
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status.encode(), headers, body


@pytest.mark.parametrize("what", ["body", "headers", "chunk line"])
def test_waitress_own_refusals_are_problem_json(waitress_url: str, app: Flask, what: str) -> None:
    """413, 431 and 400 that waitress answers before the app sees the request speak the
    API's problem+json too (waitress's own are text/plain)."""
    from connector.admin.server import CHUNK_LINE_BYTES, HEADER_BYTES

    limit = app.config["MAX_CONTENT_LENGTH"]
    with _connect(waitress_url) as sock:
        if what == "body":
            sock.sendall(
                b"POST /api/v1/deals:bulk HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                + f"\r\nContent-Length: {limit + 1}\r\n\r\n".encode()
            )
        elif what == "headers":
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            for _ in range(HEADER_BYTES // 4096 + 1):
                sock.sendall(b"X-Padding: " + b"p" * 4083 + b"\r\n")
        else:
            sock.sendall(
                b"POST /api/graph/notifications HTTP/1.1\r\nHost: x\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * (CHUNK_LINE_BYTES + 1024)
            )
        status, headers, body = _answer(sock)
    expected = {"body": 413, "headers": 431, "chunk line": 400}[what]
    assert status.split(b" ")[1] == str(expected).encode(), status  # 431: waitress says 1.0
    assert headers["content-type"] == "application/problem+json"
    assert headers["x-content-type-options"] == "nosniff"
    problem = json.loads(body)
    assert problem["status"] == expected
    assert problem["title"]
    limit_named = {"body": str(limit), "headers": str(HEADER_BYTES), "chunk line": "chunk-size"}
    assert limit_named[what] in problem["detail"], problem
