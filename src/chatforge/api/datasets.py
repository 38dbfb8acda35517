"""``/api/datasets/export``: training datasets, streamed (N4, N6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import StreamingResponse

from chatforge.api.annotation import Selection
from chatforge.api.deps import Context, CurrentUser
from chatforge.api.schemas import ErrorOut
from chatforge.datasets.formats import ExportFormat
from chatforge.services.datasets import DatasetExport

router = APIRouter(
    prefix="/api/datasets",
    tags=["datasets"],
    responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)


def stream(export: DatasetExport) -> StreamingResponse:
    """The export as a download, written batch by batch while it is read from the database."""
    return StreamingResponse(
        (chunk.encode() async for chunk in export.chunks()),
        media_type=f"{export.media_type}; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{export.filename}"',
            "X-Conversations": str(export.total),
        },
    )


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
async def export_dataset(
    user: CurrentUser,
    ctx: Context,
    selection: Selection,
    format: Annotated[ExportFormat, Query()] = ExportFormat.openai_jsonl,
    redact_pii: bool = False,
) -> StreamingResponse:
    """Finished conversations as a training dataset; filters as the annotation list, plus
    ``min_rating``. Private, deleted and excluded messages are never included."""
    export = await ctx.datasets.export(user, format, selection, redact_pii=redact_pii)
    return stream(export)
