"""``/metrics`` in the Prometheus text format.

The lane figures (``app/lanes/figures.py``) are read from the database first: cached, bounded,
and a failed read never fails the scrape."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.lanes.figures import FiguresReader

router = APIRouter()


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    figures: FiguresReader | None = getattr(request.app.state, "lane_figures", None)
    if figures is not None:  # absent before the lifespan started
        await figures.refresh()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
