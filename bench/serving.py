"""A real app on a free port (waitress in a thread), for benchmarks over HTTP."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_app(app: Flask, threads: int = 4) -> Iterator[str]:
    from waitress.server import create_server

    port = free_port()
    server: Any = create_server(app, host="127.0.0.1", port=port, threads=threads)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


def fresh_app(folder: Path, **overrides: Any) -> Flask:
    from connector.app import create_app

    config: dict[str, Any] = {
        "TESTING": True,
        "database_url": f"sqlite:///{folder / 'bench.db'}",
        "auto_migrate": True,
        "scheduler_enabled": False,
        "api_key": "bench-key-0123456789",
        "instance_path": folder,
    }
    config.update(overrides)
    return create_app(config)
