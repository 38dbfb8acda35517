"""The annotation workbench pages (N1-N5): the to-do list, the annotation view, deleting with
confirmation, the dashboard, the dataset download; and the admins' label list."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from chatforge.api.datasets import stream
from chatforge.api.deps import Context, PathId
from chatforge.datasets.formats import ExportFormat
from chatforge.errors import BadQuery, ChatforgeError, Invalid
from chatforge.services.annotation import ConversationPage
from chatforge.services.policy import require_admin, require_role
from chatforge.services.selection import ConversationSelection
from chatforge.store.annotation_models import TurnVerdict
from chatforge.store.models import ConversationKind, ConversationStatus, Rating, Role
from chatforge.web.deps import FormStr, PageUser, verify_csrf
from chatforge.web.render import redirect, render

router = APIRouter(prefix="/annotate", dependencies=[Depends(verify_csrf)], include_in_schema=False)
labels_router = APIRouter(
    prefix="/admin/labels", dependencies=[Depends(verify_csrf)], include_in_schema=False
)

Id = PathId
E = TypeVar("E", Rating, ConversationKind)
FILTERS = (
    "topic_id",
    "status",
    "kind",
    "channel",
    "user_rating",
    "rating",
    "ended_from",
    "ended_to",
    "q",
)


def _choice(kind: type[E], value: str | None) -> E | None:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise Invalid(f"Unknown {kind.__name__.lower()} “{value[:32]}”.") from None


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid("Dates are written YYYY-MM-DD.", code="invalid_date") from None


def selection_from(params: Mapping[str, str], *, default_status: str) -> ConversationSelection:
    """The filters of the list and export forms; empty fields mean "any"."""
    status = params.get("status", default_status)
    topic = params.get("topic_id", "")
    return ConversationSelection(
        topic_id=int(topic) if topic.isdigit() and len(topic) < 10 else None,
        status=ConversationStatus(status) if status in {"done", "annotated"} else None,
        kind=_choice(ConversationKind, params.get("kind")),
        channel=params.get("channel", "")[:32] or None,
        user_rating=_choice(Rating, params.get("user_rating")),
        rating=_choice(Rating, params.get("rating")),
        min_rating=_choice(Rating, params.get("min_rating")),
        ended_from=_date(params.get("ended_from")),
        ended_to=_date(params.get("ended_to")),
        q=params.get("q") or None,
    )


@router.get("")
async def to_do(request: Request, user: PageUser, ctx: Context, page: int = 1) -> Response:
    """The to-do list: finished conversations not yet annotated unless the filters say else."""
    require_role(user, Role.annotator)
    params = dict(request.query_params)
    selection = selection_from(params, default_status="done")
    error = None
    try:
        result = await ctx.annotation.browse(user, selection, page=page, per_page=25)
    except BadQuery as exc:
        error = exc.message
        result = ConversationPage(items=[], total=0, page=1, per_page=25)
    kept = {name: params[name] for name in FILTERS if params.get(name)}
    kept.setdefault("status", "done")
    return render(
        request,
        "annotation/list.html",
        {
            "page": result,
            "filters": kept,
            "query": urlencode(kept),
            "search_error": error,
            "topics": await ctx.topics.list(include_inactive=True),
            "ratings": list(Rating),
            "kinds": list(ConversationKind),
        },
    )


@router.get("/dashboard")
async def dashboard(request: Request, user: PageUser, ctx: Context) -> Response:
    return render(
        request, "annotation/dashboard.html", {"board": await ctx.agreement.dashboard(user)}
    )


@router.get("/export")
async def export_form(request: Request, user: PageUser, ctx: Context) -> Response:
    require_role(user, Role.annotator)
    return render(
        request,
        "annotation/export.html",
        {
            "formats": list(ExportFormat),
            "topics": await ctx.topics.list(include_inactive=True),
            "ratings": list(Rating),
            "kinds": list(ConversationKind),
        },
    )


@router.get("/export/download")
async def export_download(request: Request, user: PageUser, ctx: Context) -> Response:
    params = dict(request.query_params)
    try:
        fmt = ExportFormat(params.get("format") or ExportFormat.openai_jsonl.value)
    except ValueError:
        raise Invalid("Choose a dataset format.", code="invalid_format") from None
    selection = selection_from(params, default_status="")
    try:
        export = await ctx.datasets.export(
            user, fmt, selection, redact_pii=params.get("redact_pii") == "true"
        )
    except BadQuery as exc:
        return redirect(request, "/annotate/export", flash=("error", exc.message))
    return stream(export)


@router.get("/{conversation_id}")
async def conversation(
    request: Request, conversation_id: Id, user: PageUser, ctx: Context
) -> Response:
    detail = await ctx.annotation.detail(user, conversation_id)
    return render(
        request,
        "annotation/conversation.html",
        {
            "detail": detail,
            "c": detail.conversation,
            "labels": await ctx.labels.list(),
            "topics": await ctx.topics.list(include_inactive=True),
            "ratings": list(Rating),
        },
    )


@router.post("/{conversation_id}/annotation")
async def annotate(
    request: Request,
    conversation_id: Id,
    user: PageUser,
    ctx: Context,
    rating: FormStr = "",
    notes: FormStr = "",
    topic_id: FormStr = "",
) -> Response:
    form = await request.form()
    labels = [value for value in form.getlist("labels") if isinstance(value, str)]
    back = f"/annotate/{conversation_id}"
    try:
        chosen = _choice(Rating, rating)
        if chosen is None:
            raise Invalid("Choose a rating.", code="rating_required")
        await ctx.annotation.annotate(
            user,
            conversation_id,
            chosen,
            labels=labels,
            notes=notes,
            topic_id=int(topic_id) if topic_id.isdigit() and len(topic_id) < 10 else None,
        )
    except Invalid as exc:
        return redirect(request, back, flash=("error", exc.message))
    return redirect(
        request,
        "/annotate",
        flash=("success", f"Conversation #{conversation_id} rated {chosen.value}."),
    )


@router.post("/{conversation_id}/messages/{message_id}/correction")
async def correct(
    request: Request,
    conversation_id: Id,
    message_id: Id,
    user: PageUser,
    ctx: Context,
    text: FormStr = "",
) -> Response:
    back = f"/annotate/{conversation_id}#m{message_id}"
    try:
        await ctx.annotation.correct(user, message_id, text=text.replace("\r\n", "\n") or None)
    except Invalid as exc:
        return redirect(request, back, flash=("error", exc.message))
    return redirect(request, back, flash=("success", "Correction saved."))


@router.post("/{conversation_id}/messages/{message_id}/exclusion")
async def exclude(
    request: Request,
    conversation_id: Id,
    message_id: Id,
    user: PageUser,
    ctx: Context,
    excluded: FormStr = "",
) -> Response:
    result = await ctx.annotation.correct(user, message_id, excluded=excluded == "true")
    state = "excluded from" if result.excluded else "included in"
    return redirect(
        request,
        f"/annotate/{conversation_id}#m{message_id}",
        flash=("success", f"Message {state} training data."),
    )


@router.post("/{conversation_id}/messages/{message_id}/verdict")
async def verdict(
    request: Request,
    conversation_id: Id,
    message_id: Id,
    user: PageUser,
    ctx: Context,
    verdict: FormStr = "",
) -> Response:
    back = f"/annotate/{conversation_id}#m{message_id}"
    chosen = TurnVerdict(verdict) if verdict in {"good", "bad"} else None
    try:
        await ctx.annotation.rate_turn(user, message_id, chosen)
    except Invalid as exc:
        return redirect(request, back, flash=("error", exc.message))
    return redirect(request, back)


@router.get("/{conversation_id}/delete")
async def confirm_delete(
    request: Request, conversation_id: Id, user: PageUser, ctx: Context
) -> Response:
    detail = await ctx.annotation.detail(user, conversation_id)
    return render(
        request,
        "admin/confirm_delete.html",
        {
            "what": f"conversation #{detail.conversation.id} and its {len(detail.messages)} "
            "messages",
            "action": f"/annotate/{conversation_id}/delete",
            "cancel": f"/annotate/{conversation_id}",
            "blocked": False,
        },
    )


@router.post("/{conversation_id}/delete")
async def delete(request: Request, conversation_id: Id, user: PageUser, ctx: Context) -> Response:
    await ctx.annotation.delete(user, conversation_id)
    return redirect(
        request, "/annotate", flash=("success", f"Conversation #{conversation_id} deleted.")
    )


# -- labels (admins) ------------------------------------------------------------------------


@labels_router.get("")
async def labels(request: Request, user: PageUser, ctx: Context) -> Response:
    require_admin(user)
    return render(
        request, "annotation/labels.html", {"labels": await ctx.labels.list(include_inactive=True)}
    )


@labels_router.post("")
async def add_label(
    request: Request, user: PageUser, ctx: Context, name: FormStr = "", description: FormStr = ""
) -> Response:
    try:
        label = await ctx.labels.create(user, name, description)
    except ChatforgeError as exc:
        if exc.status in {401, 403}:
            raise
        return redirect(request, "/admin/labels", flash=("error", exc.message))
    return redirect(request, "/admin/labels", flash=("success", f"Label “{label.name}” added."))


@labels_router.post("/{label_id}/active")
async def set_label_active(
    request: Request, label_id: Id, user: PageUser, ctx: Context, active: FormStr = ""
) -> Response:
    label = await ctx.labels.set_active(user, label_id, active == "true")
    state = "reactivated" if label.is_active else "deactivated"
    return redirect(request, "/admin/labels", flash=("success", f"Label “{label.name}” {state}."))
