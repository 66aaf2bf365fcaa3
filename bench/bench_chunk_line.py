"""CPU spent by waitress on a chunked request whose chunk-size line never ends (issue 14).

waitress keeps the unfinished chunk-size line and prepends it to each piece it receives
(``control_line + s``), so a line of n bytes costs O(n^2), up to the body limit (5 MiB by
default): the line counts as body. ``connector.admin.server`` caps the line
(``CHUNK_LINE_BYTES``). For 1, 2 and 4 MiB of line this sends the line in 8 KiB pieces, then
CRLF, and measures the process's CPU until the answer (or the close); three runs each, min-max.
Run: ``python -m bench chunk_line``. ``BENCH_UNGUARDED=1`` measures waitress without the cap.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from connector.app import create_app

SIZES_MIB = (1, 2, 4)
PIECE = 8 * 1024


def _send_line(port: int, size: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(
            b"POST /api/graph/notifications HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        )
        piece = b"x" * PIECE
        try:
            for _ in range(size // PIECE):
                sock.sendall(piece)
            sock.sendall(b"\r\n")
        except OSError:  # closed on us (the cap): the answer is already there
            pass
        try:
            return sock.recv(200)
        except OSError:
            return b""


def main() -> None:
    import tempfile

    from connector.admin import server as serving

    if os.environ.get("BENCH_UNGUARDED") == "1":
        serving.bound_chunk_lines = lambda: None  # type: ignore[attr-defined]
    folder = tempfile.mkdtemp(prefix="bench-chunk-")
    app = create_app(
        {"TESTING": True, "database_url": f"sqlite:///{folder}/b.db", "scheduler_enabled": False}
    )
    server = serving.make_server(app, host="127.0.0.1", port=0, threads=2)
    port = server.effective_port  # type: ignore[union-attr]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    time.sleep(0.5)
    try:
        for mib in SIZES_MIB:
            runs, answer = [], b""
            for _ in range(3):
                started = time.process_time()
                answer = _send_line(port, mib * 1024 * 1024)
                runs.append(time.process_time() - started)
            first = answer.split(b"\r\n", 1)[0].decode(errors="replace")
            print(
                f"   {mib} MiB chunk-size line: CPU {min(runs):.3f}-{max(runs):.3f} s "
                f"(3 runs); answer: {first or 'closed'}"
            )
    finally:
        server.close()
