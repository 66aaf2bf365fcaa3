"""Serving: waitress in front of the app, the scheduler beside it in the same process."""

from __future__ import annotations

import logging

from flask import Flask

from connector.jobs import start_scheduler
from connector.store.db import get_store

log = logging.getLogger(__name__)


def serve_app(app: Flask, *, host: str, port: int, threads: int = 8) -> None:
    """Serve until interrupted; the scheduler stops cleanly on the way out."""
    from waitress import serve

    scheduler = start_scheduler(app)
    log.info(
        "DealBridge serving on %s:%d, database %s, scheduler %s",
        host,
        port,
        get_store(app).display_url,
        "on" if scheduler is not None else "off",
    )
    try:
        serve(app, host=host, port=port, threads=threads, ident="dealbridge")
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
