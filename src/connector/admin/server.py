"""Serving: waitress in front of the app; the jobs beside it (embedded) or in workers.

Embedded (SQLite) ``serve`` is web, scheduler and worker in one process, as it always was: the
one process leads and APScheduler runs each job itself. On a shared database (PostgreSQL),
``serve`` with the jobs on is a web process that is also a worker and a leader candidate;
with ``DEALBRIDGE_SCHEDULER_ENABLED=false`` it only serves, and ``dealbridge worker``
processes do the rest.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask

from connector import metrics
from connector.errors import PROBLEM_JSON
from connector.heap import settle
from connector.leader import LeaderLoop
from connector.logs import start_line
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.store.db import get_store
from connector.worker import Worker

if sys.platform != "win32":
    import resource  # the file limit, below which the connection limit stays

if TYPE_CHECKING:
    from waitress.server import BaseWSGIServer

log = logging.getLogger(__name__)


@dataclass
class Background:
    """What runs beside the web app in this process."""

    leader: LeaderLoop | None = None
    worker: Worker | None = None

    @property
    def role(self) -> str:
        if self.leader is None:
            return "web"
        return "web+worker" if self.worker is not None else "leader"

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self.leader is not None:
            self.leader.stop()
        metrics.process_exit()

    def shutdown(self, wait: bool = False) -> None:
        """As APScheduler's: the demo stops what it started the same way."""
        self.stop()


def shared_database(app: Flask) -> bool:
    """True when other processes may share the database (anything but SQLite)."""
    return get_store(app).engine.dialect.name != "sqlite"


def start_background(app: Flask) -> Background:
    """The leader candidate and, on a shared database, a worker thread (if jobs are on);
    the process's start line says which."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    background = Background()
    if settings.scheduler_enabled:
        shared = shared_database(app)
        background.leader = LeaderLoop(app, dispatch=shared)
        if shared:
            background.worker = Worker(app)
    start_line(log, settings, background.role)  # type: ignore[arg-type]
    if background.leader is not None:
        background.leader.start()
    if background.worker is not None:
        background.worker.start_thread()
    return background


CONNECTIONS = 1000
"""Open connections waitress keeps (its default, 100, let 100 slow clients lock all out)."""
IDLE_SECONDS = 30
"""A connection silent this long is closed (waitress: 120), checked every 10 s."""
HEADER_BYTES = 64 * 1024
"""The largest request line and headers (waitress: 256 KiB; Graph's and Teams' are < 8 KiB)."""


def server_options(app: Flask) -> dict[str, Any]:
    """waitress's limits. The body limit is the app's (DEALBRIDGE_MAX_BODY_BYTES): a larger
    ``Content-Length`` is answered 413 before a byte of body is read, where waitress would
    spool up to 1 GiB first. Slow clients cost a socket and a buffer, not a thread (waitress
    reads a request whole before a thread sees it), so the connection limit is high and
    idle ones are closed; the limit leaves room below this process's file limit, and poll()
    replaces select(), which cannot watch a descriptor above 1023."""
    room = CONNECTIONS
    if sys.platform != "win32":
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY:
            room = max(100, soft - 100)
    return {
        "max_request_body_size": int(app.config["MAX_CONTENT_LENGTH"]),
        "max_request_header_size": HEADER_BYTES,
        "connection_limit": min(CONNECTIONS, room),
        "channel_timeout": IDLE_SECONDS,
        "cleanup_interval": 10,
        "asyncore_use_poll": True,  # select() fails on a descriptor above 1023: the loop died
    }


CHUNK_LINE_BYTES = 4096
"""The longest chunk-size line (hex size and extensions) a chunked body may have; the trailer
may have HEADER_BYTES. waitress bounds neither but by the body limit, and prepends what it
has of an unfinished line to each piece it receives: a 4 MiB line cost about a second of
CPU, quadratic in its length (bench/bench_chunk_line.py)."""


def bound_chunk_lines() -> None:
    """Make waitress's parser refuse (400, connection closed) a chunk-size line longer than
    CHUNK_LINE_BYTES or a trailer longer than HEADER_BYTES, so what an endless line costs is
    linear and capped. waitress has no setting for it; its parser builds its receiver from
    the module's ``ChunkedReceiver`` name, which this replaces with a bounded subclass (once
    per process)."""
    import waitress.parser
    from waitress.receiver import ChunkedReceiver
    from waitress.utilities import BadRequest

    if getattr(waitress.parser.ChunkedReceiver, "bounded", False):
        return

    class BoundedChunkedReceiver(ChunkedReceiver):  # type: ignore[misc]
        bounded = True

        def received(self, s: bytes) -> int:
            consumed: int = super().received(s)
            line: bytes = getattr(self, "control_line", b"")
            trailer: bytes = getattr(self, "trailer", b"")
            if len(line) > CHUNK_LINE_BYTES:
                self.error = BadRequest(f"chunk-size line longer than {CHUNK_LINE_BYTES} bytes")
            elif len(trailer) > HEADER_BYTES:
                self.error = BadRequest(f"chunked trailer longer than {HEADER_BYTES} bytes")
            else:
                return consumed
            self.control_line = self.trailer = b""
            self.all_chunks_received = self.completed = True
            return consumed

    waitress.parser.ChunkedReceiver = BoundedChunkedReceiver


def problem_channel(app: Flask) -> type[Any]:
    """waitress's channel whose own refusals (413 body too large, 431 headers too large, 400
    a malformed request, before the app sees it) answer problem+json as the API does, with
    ``nosniff`` and ``no-store``; waitress's are text/plain. Its ``error_task_class`` is the
    documented place for it."""
    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    limit = int(app.config["MAX_CONTENT_LENGTH"])
    words = {
        413: (
            "Request too large",
            "payload-too-large",
            f"the body is larger than the limit of {limit} bytes",
        ),
        431: (
            "Request headers too large",
            "headers-too-large",
            f"the request line and headers are larger than the limit of {HEADER_BYTES} bytes",
        ),
    }

    class ProblemErrorTask(ErrorTask):  # type: ignore[misc]
        def execute(self) -> None:
            error = self.request.error
            title, slug, detail = words.get(
                error.code, (error.reason, "about:blank", str(error.body))
            )
            problem = {
                "type": f"/api/problems/{slug}" if slug != "about:blank" else slug,
                "title": title,
                "status": error.code,
                "detail": detail,
            }
            body = json.dumps(problem).encode()
            self.status = f"{error.code} {error.reason}"
            self.response_headers.extend(
                [
                    ("Content-Type", PROBLEM_JSON),
                    ("X-Content-Type-Options", "nosniff"),
                    ("Cache-Control", "no-store"),
                ]
            )
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class ProblemChannel(HTTPChannel):  # type: ignore[misc]
        error_task_class = ProblemErrorTask

    return ProblemChannel


def make_server(app: Flask, *, host: str, port: int, threads: int = 8) -> BaseWSGIServer:
    """waitress, listening, with the limits of :func:`server_options` and chunk-size lines
    bounded (:func:`bound_chunk_lines`)."""
    from waitress.server import create_server

    bound_chunk_lines()

    server = create_server(
        app, host=host, port=port, threads=threads, ident="dealbridge", **server_options(app)
    )
    server.channel_class = problem_channel(app)
    return server


def serve_app(app: Flask, *, host: str, port: int, threads: int = 8) -> None:
    """Serve until interrupted; the jobs stop cleanly on the way out. What start-up made is
    frozen first (:func:`connector.heap.settle`)."""
    server = make_server(app, host=host, port=port, threads=threads)
    frozen = settle()
    background = start_background(app)
    log.info(
        "serving on http://%s:%d",
        host,
        port,
        extra={
            "host": host,
            "port": port,
            "threads": threads,
            "role": background.role,
            "frozen_objects": frozen,
        },
    )
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        background.stop()
