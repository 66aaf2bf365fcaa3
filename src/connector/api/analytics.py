"""REST API v1: analytics (the stage funnel)."""

from __future__ import annotations

from connector.api.routing import Api
from connector.api.schemas import Funnel, FunnelQuery
from connector.deals import analytics
from connector.deals.pipelines import get_pipeline
from connector.errors import invalid
from connector.store.db import db_session
from connector.store.models import utcnow

api = Api("api_v1_analytics", "/api/v1")


@api.operation(
    "GET",
    "/analytics/funnel",
    summary="Stage conversion and time in stage",
    tag="analytics",
    query=FunnelQuery,
    response=Funnel,
    errors=(401, 404, 422),
)
def get_funnel(query: FunnelQuery) -> Funnel:
    """For each stage: the deals that reached it, conversion to the next stage
    (reached next / reached this × 100), and the average and median days spent in it.
    Deals are those that entered the pipeline between from and to, cut by owner,
    lead source or product when given."""
    session = db_session()
    pipeline = get_pipeline(session, query.pipeline)
    if query.from_ and query.to and query.to <= query.from_:
        raise invalid("to", "must be after from", "query")
    return analytics.funnel(session, pipeline, query, utcnow())
