"""Run the sandbox tenant: in a background thread for tests (`start_sandbox`), or alone (`main`)."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from types import TracebackType
from typing import Any

from flask import Flask
from waitress.server import create_server
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sandbox.app import create_app, tenant_of
from sandbox.config import DEMO_CLIENT_SECRET, SandboxConfig


class _QuietHandler(WSGIRequestHandler):
    """Tests read the request log through the control API; no access log on stderr. HTTP/1.1
    (chunked answers); werkzeug still closes each connection after its answer."""

    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


# serve_forever sees shutdown() only between polls: werkzeug's 0.5 s default made each stop wait.
POLL_SECONDS = 0.05


def serve_in_background(server: BaseWSGIServer, name: str = "wsgi-server") -> threading.Thread:
    """Serve `server` from a daemon thread that `server.shutdown()` stops within POLL_SECONDS."""
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": POLL_SECONDS},
        name=name,
        daemon=True,
    )
    thread.start()
    return thread


class RunningSandbox:
    """A sandbox tenant served on 127.0.0.1 from a background thread."""

    def __init__(self, server: BaseWSGIServer, app: Flask, config: SandboxConfig) -> None:
        self._server = server
        self._app = app
        self.config = config
        self.base_url = f"http://127.0.0.1:{server.server_port}"
        self.tenant_id = config.tenant_id.lower()
        self.domain = config.domain
        self.client_id = config.client_id
        self.client_secret = config.client_secret
        self._thread = serve_in_background(server, "sandbox-server")

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_port)

    def stop(self) -> None:
        """Stop serving and end the background threads."""
        self._server.shutdown()
        self._server.server_close()
        tenant_of(self._app).close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_sandbox(port: int = 0, **config: Any) -> RunningSandbox:
    """Serve a sandbox tenant on 127.0.0.1 (`port=0`: a free port) in a background thread."""
    settings = SandboxConfig(**config)
    app = create_app(settings)
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=_QuietHandler)
    return RunningSandbox(server, app, settings)


def main(argv: list[str] | None = None) -> int:
    """`dealbridge sandbox`: serve one tenant until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="dealbridge sandbox", description="A local Microsoft 365 tenant (Entra + Graph)."
    )
    defaults = SandboxConfig()
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tenant", default=defaults.tenant_id, help="tenant id (GUID)")
    parser.add_argument("--domain", default=defaults.domain, help="verified domain")
    parser.add_argument("--client-id", default=defaults.client_id)
    parser.add_argument("--client-secret", default=defaults.client_secret)
    args = parser.parse_args(argv)
    config = SandboxConfig(
        tenant_id=args.tenant,
        domain=args.domain,
        client_id=args.client_id,
        client_secret=args.client_secret,
    )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    base = f"http://{args.host}:{args.port}"
    secret = config.client_secret if config.client_secret == DEMO_CLIENT_SECRET else "(as given)"
    print(
        f"Sandbox Microsoft 365 tenant on {base}\n"
        f"  tenant id      {config.tenant_id}\n"
        f"  domain         {config.domain}\n"
        f"  client id      {config.client_id}\n"
        f"  client secret  {secret}\n"
        f"  authority      https://login.microsoftonline.com/{config.tenant_id} "
        f"(route login.microsoftonline.com to {base})\n"
        f"  Graph          {base}/v1.0\n"
        f"  control API    {base}/_sandbox/\n"
        f"  calendars page {base}/\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    app = create_app(config)
    server = keep_alive_server(app, args.host, args.port)
    try:
        server.run()
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
    finally:
        server.close()
        tenant_of(app).close()
    return 0


ALONE_THREADS = 32
"""Requests served at once when the sandbox runs alone: a benchmark sends several mailboxes'
requests together, and a ``timeout`` fault holds its thread (werkzeug gave each a thread)."""


def keep_alive_server(app: Flask, host: str, port: int) -> Any:
    """waitress, which keeps a connection for the client's next request, as Graph does:
    werkzeug's server closes every one (``Connection: close``), so each of a benchmark's
    requests paid a new TCP connection, about 1.2 ms of the client's CPU, that Microsoft
    365 would not cost. The tests' threaded sandbox (:func:`start_sandbox`) stays on
    werkzeug."""
    return create_server(app, host=host, port=port, threads=ALONE_THREADS, ident="sandbox")


if __name__ == "__main__":
    sys.exit(main())
