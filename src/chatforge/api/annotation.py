"""``/api/annotation``, annotations and corrections: the annotation workbench over REST (N1-N5)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from chatforge.api.annotation_schemas import (
    AgreementOut,
    AnnotatedMessageOut,
    AnnotationIn,
    AnnotationListItemOut,
    AnnotationListOut,
    AnnotationOut,
    AnnotatorProgressOut,
    ConversationDetailOut,
    CorrectionIn,
    CorrectionOut,
    DashboardOut,
    LabelIn,
    LabelOut,
    LabelPatch,
    PairAgreementOut,
    TopicProgressOut,
    TurnRatingIn,
    TurnRatingOut,
)
from chatforge.api.conversations import out
from chatforge.api.deps import Context, CurrentUser, PathId
from chatforge.api.schemas import ErrorOut
from chatforge.services.annotation import KEEP, AnnotationView
from chatforge.services.policy import require_admin, require_role
from chatforge.services.selection import ConversationSelection
from chatforge.store.models import ConversationKind, ConversationStatus, Rating, Role

router = APIRouter(
    prefix="/api",
    tags=["annotation"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)

Id = PathId


def selection_params(
    topic_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    status: Annotated[
        Literal["done", "annotated"] | None,
        Query(description="done: still to annotate; annotated; absent: both"),
    ] = None,
    kind: ConversationKind | None = None,
    channel: Annotated[str | None, Query(max_length=32)] = None,
    user_rating: Rating | None = None,
    rating: Annotated[
        Rating | None, Query(description="The annotators' rating (the lowest any gave)")
    ] = None,
    min_rating: Rating | None = None,
    ended_from: date | None = None,
    ended_to: date | None = None,
    q: Annotated[
        str | None, Query(description="Words to find in the messages (all of them; word* = prefix)")
    ] = None,
) -> ConversationSelection:
    """The filters of N1 as query parameters (shared by the list and the dataset export)."""
    return ConversationSelection(
        topic_id=topic_id,
        status=ConversationStatus(status) if status else None,
        kind=kind,
        channel=channel or None,
        user_rating=user_rating,
        rating=rating,
        min_rating=min_rating,
        ended_from=ended_from,
        ended_to=ended_to,
        q=q,
    )


Selection = Annotated[ConversationSelection, Depends(selection_params)]


def annotation_out(view: AnnotationView) -> AnnotationOut:
    return AnnotationOut(**{**asdict(view), "labels": list(view.labels)})


@router.get("/annotation/conversations", responses={400: {"model": ErrorOut}})
async def list_for_annotation(
    user: CurrentUser,
    ctx: Context,
    selection: Selection,
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 25,
) -> AnnotationListOut:
    """Finished conversations to annotate, newest first (annotators, admins)."""
    result = await ctx.annotation.browse(user, selection, page=page, per_page=per_page)
    return AnnotationListOut(
        items=[
            AnnotationListItemOut(
                conversation=out(item.conversation),
                message_count=item.message_count,
                rating=item.rating,
                annotators=item.annotators,
            )
            for item in result.items
        ],
        total=result.total,
        page=result.page,
        per_page=result.per_page,
        pages=result.pages,
    )


@router.get("/annotation/conversations/{conversation_id}", responses={409: {"model": ErrorOut}})
async def conversation_for_annotation(
    conversation_id: Id, user: CurrentUser, ctx: Context
) -> ConversationDetailOut:
    """The whole conversation with its corrections, exclusions and every annotation."""
    detail = await ctx.annotation.detail(user, conversation_id)
    return ConversationDetailOut(
        conversation=out(detail.conversation),
        messages=[AnnotatedMessageOut(**asdict(m)) for m in detail.messages],
        annotations=[annotation_out(a) for a in detail.annotations],
    )


@router.delete(
    "/annotation/conversations/{conversation_id}",
    status_code=204,
    responses={409: {"model": ErrorOut}},
)
async def delete_conversation(conversation_id: Id, user: CurrentUser, ctx: Context) -> Response:
    """Delete a finished conversation (annotators, admins); an audit record stays."""
    await ctx.annotation.delete(user, conversation_id)
    return Response(status_code=204)


@router.post(
    "/conversations/{conversation_id}/annotations",
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def annotate(
    conversation_id: Id, body: AnnotationIn, user: CurrentUser, ctx: Context
) -> AnnotationOut:
    """Rate, label, note and reclassify a finished conversation; it becomes *annotated*."""
    view = await ctx.annotation.annotate(
        user,
        conversation_id,
        body.rating,
        labels=body.labels,
        notes=body.notes,
        topic_id=body.topic_id,
    )
    return annotation_out(view)


@router.patch(
    "/messages/{message_id}/correction",
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def correct_message(
    message_id: Id, body: CorrectionIn, user: CurrentUser, ctx: Context
) -> CorrectionOut:
    """Correct a message's text for training (the original stays) and / or exclude it."""
    result = await ctx.annotation.correct(
        user,
        message_id,
        text=body.text if "text" in body.model_fields_set else KEEP,
        excluded=body.excluded,
    )
    return CorrectionOut(**asdict(result))


@router.put(
    "/messages/{message_id}/turn-rating",
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def rate_turn(
    message_id: Id, body: TurnRatingIn, user: CurrentUser, ctx: Context
) -> TurnRatingOut:
    """Rate one answer good or bad (null withdraws your rating)."""
    verdict = await ctx.annotation.rate_turn(user, message_id, body.verdict)
    return TurnRatingOut(message_id=message_id, verdict=verdict)


@router.get("/annotation/labels")
async def list_labels(
    user: CurrentUser, ctx: Context, include_inactive: bool = False
) -> list[LabelOut]:
    """The labels annotators can use (admins may ask for the inactive ones too)."""
    require_role(user, Role.annotator)
    if include_inactive:
        require_admin(user)
    labels = await ctx.labels.list(include_inactive=include_inactive)
    return [LabelOut.model_validate(label) for label in labels]


@router.post(
    "/annotation/labels",
    status_code=201,
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def create_label(body: LabelIn, user: CurrentUser, ctx: Context) -> LabelOut:
    """Add a label (admins)."""
    return LabelOut.model_validate(await ctx.labels.create(user, body.name, body.description))


@router.patch("/annotation/labels/{label_id}")
async def update_label(label_id: Id, body: LabelPatch, user: CurrentUser, ctx: Context) -> LabelOut:
    """Deactivate or reactivate a label (admins)."""
    return LabelOut.model_validate(await ctx.labels.set_active(user, label_id, body.active))


@router.get("/annotation/dashboard")
async def dashboard(user: CurrentUser, ctx: Context) -> DashboardOut:
    """Progress (to do / done per topic and annotator) and agreement (Cohen's kappa)."""
    board = await ctx.agreement.dashboard(user)
    return DashboardOut(
        to_do=board.to_do,
        done=board.done,
        topics=[TopicProgressOut(**asdict(t)) for t in board.topics],
        annotators=[AnnotatorProgressOut(**asdict(a)) for a in board.annotators],
        rating=AgreementOut(**asdict(board.rating)),
        labels=[AgreementOut(**asdict(a)) for a in board.labels],
        pairs=[PairAgreementOut(**asdict(p)) for p in board.pairs],
    )
