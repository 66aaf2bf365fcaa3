"""A PostgreSQL restart under a running app: no request fails because of it (pool_pre_ping).

Runs in the PostgreSQL run only (``pytest --database=postgresql``): it restarts the session's
throwaway cluster. On SQLite there is no server to restart.
"""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.connector.samples import deal_body
from tests.databases import Cluster


def test_the_first_request_after_a_restart_succeeds(
    postgres_cluster: Cluster, app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    assert client.put("/api/v1/deals/OPP-1", json=deal_body(), headers=auth).status_code == 201
    for _ in range(3):  # each restart kills every pooled connection
        postgres_cluster.restart()
        listed = client.get("/api/v1/deals", headers=auth)
        assert listed.status_code == 200, listed.get_data(as_text=True)
        assert [d["id"] for d in listed.json["items"]] == ["OPP-1"]
        assert client.get("/healthz").json["database"] is True
        written = client.put("/api/v1/deals/OPP-1", json=deal_body(title="Renamed"), headers=auth)
        assert written.status_code == 200
