"""Health and metrics for operators (R3)."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.responses import JSONResponse, Response

from chatforge.api.deps import Context
from chatforge.api.schemas import HealthOut

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def healthz(ctx: Context) -> Response:
    """``ok``; ``degraded`` when Redis is away (sending still works, cross-process delivery
    waits); 503 ``down`` when the database does not answer."""
    backends = ctx.health
    try:
        async with ctx.db.read() as session:
            await session.execute(text("SELECT 1"))
    except Exception:
        body = {"status": "down", "database": "unreachable", **backends}
        return JSONResponse(body, status_code=503)
    status = "degraded" if backends.get("broker") == "unavailable" else "ok"
    return JSONResponse({"status": status, "database": "ok", **backends})


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
