"""``/api/features``: the per-role text of the features page (A4)."""

from __future__ import annotations

from fastapi import APIRouter

from chatforge.api.deps import Context, CurrentUser
from chatforge.api.schemas import ErrorOut, FeatureIn, FeaturesOut
from chatforge.store.models import Role

router = APIRouter(prefix="/api/features", tags=["features"])


@router.get("")
async def get_features(ctx: Context) -> FeaturesOut:
    """What each role can do; public, like the features page."""
    return FeaturesOut(roles=await ctx.features.texts())


@router.put(
    "/{role}",
    status_code=204,
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)
async def put_feature(role: Role, body: FeatureIn, user: CurrentUser, ctx: Context) -> None:
    """Replace the text shown for ``role`` (admin)."""
    await ctx.features.update(user, {role: body.body})
