"""``/api/topics`` (A3)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from chatforge.api.deps import Context, CurrentUser, PathId
from chatforge.api.schemas import ErrorOut, TopicIn, TopicOut, TopicPatch
from chatforge.services.policy import require_admin

router = APIRouter(prefix="/api/topics", tags=["topics"], responses={401: {"model": ErrorOut}})

TopicId = PathId


@router.get("", responses={403: {"model": ErrorOut}})
async def list_topics(
    user: CurrentUser,
    ctx: Context,
    include_inactive: Annotated[bool, Query()] = False,
) -> list[TopicOut]:
    """Active topics; admins may ask for the inactive ones too."""
    if include_inactive:
        require_admin(user)
    topics = await ctx.topics.list(include_inactive=include_inactive)
    return [TopicOut.model_validate(t) for t in topics]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut}},
)
async def create_topic(body: TopicIn, user: CurrentUser, ctx: Context) -> TopicOut:
    topic = await ctx.topics.create(user, name=body.name, description=body.description)
    return TopicOut.model_validate(topic)


@router.patch(
    "/{topic_id}",
    responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
)
async def update_topic(
    topic_id: TopicId, body: TopicPatch, user: CurrentUser, ctx: Context
) -> TopicOut:
    """Rename, describe, deactivate (``active: false``) or reactivate a topic (admin)."""
    topic = await ctx.topics.update(
        user, topic_id, name=body.name, description=body.description, active=body.active
    )
    return TopicOut.model_validate(topic)


@router.delete(
    "/{topic_id}",
    status_code=204,
    responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
)
async def delete_topic(topic_id: TopicId, user: CurrentUser, ctx: Context) -> None:
    """Delete a topic no conversation uses (admin); otherwise 409: deactivate it instead."""
    await ctx.topics.delete(user, topic_id)
