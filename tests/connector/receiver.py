"""A small HTTP server that records what it receives and answers as scripted (a fake CRM)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from sandbox.server import serve_in_background


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    def answer_next(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.answers.append((status, headers or {}))


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    @Request.application
    def app(request: Request) -> Response:
        receiver.received.append(Received(request.path, dict(request.headers), request.get_data()))
        status, headers = receiver.answers.pop(0) if receiver.answers else (200, {})
        return Response("ok", status=status, headers=headers)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    receiver.url = f"http://127.0.0.1:{server.port}/hooks"
    thread = serve_in_background(server)
    try:
        yield receiver
    finally:
        server.shutdown()
        thread.join(timeout=5)
