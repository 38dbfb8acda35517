"""Admin pages: topics, users and the features text (A3, A4)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from chatforge.api.deps import Context, PathId
from chatforge.errors import ChatforgeError, Invalid
from chatforge.services.policy import require_admin
from chatforge.store.models import Role
from chatforge.web.deps import FormStr, PageUser, verify_csrf
from chatforge.web.render import redirect, render

router = APIRouter(prefix="/admin", dependencies=[Depends(verify_csrf)], include_in_schema=False)

Id = PathId


# -- topics -------------------------------------------------------------------------------


@router.get("/topics")
async def topics(request: Request, user: PageUser, ctx: Context) -> Response:
    require_admin(user)
    return render(
        request, "admin/topics.html", {"topics": await ctx.topics.list(include_inactive=True)}
    )


@router.post("/topics")
async def add_topic(
    request: Request, user: PageUser, ctx: Context, name: FormStr = "", description: FormStr = ""
) -> Response:
    try:
        topic = await ctx.topics.create(user, name=name, description=description)
    except ChatforgeError as exc:
        if exc.status in {401, 403}:
            raise
        return redirect(request, "/admin/topics", flash=("error", exc.message))
    return redirect(request, "/admin/topics", flash=("success", f"Topic “{topic.name}” added."))


@router.get("/topics/{topic_id}/edit")
async def edit_topic_page(request: Request, topic_id: Id, user: PageUser, ctx: Context) -> Response:
    require_admin(user)
    return render(request, "admin/topic_edit.html", {"topic": await ctx.topics.get(topic_id)})


@router.post("/topics/{topic_id}/edit")
async def edit_topic(
    request: Request,
    topic_id: Id,
    user: PageUser,
    ctx: Context,
    name: FormStr = "",
    description: FormStr = "",
) -> Response:
    try:
        topic = await ctx.topics.update(user, topic_id, name=name, description=description)
    except ChatforgeError as exc:
        if exc.status in {401, 403, 404}:
            raise
        return redirect(request, f"/admin/topics/{topic_id}/edit", flash=("error", exc.message))
    return redirect(request, "/admin/topics", flash=("success", f"Topic “{topic.name}” saved."))


@router.post("/topics/{topic_id}/active")
async def set_topic_active(
    request: Request, topic_id: Id, user: PageUser, ctx: Context, active: FormStr = ""
) -> Response:
    topic = await ctx.topics.update(user, topic_id, active=active == "true")
    state = "reactivated" if topic.is_active else "deactivated"
    return redirect(request, "/admin/topics", flash=("success", f"Topic “{topic.name}” {state}."))


@router.get("/topics/{topic_id}/delete")
async def confirm_delete_topic(
    request: Request, topic_id: Id, user: PageUser, ctx: Context
) -> Response:
    require_admin(user)
    topic = await ctx.topics.get(topic_id)
    return render(
        request,
        "admin/confirm_delete.html",
        {
            "what": f"the topic “{topic.name}”",
            "action": f"/admin/topics/{topic.id}/delete",
            "cancel": "/admin/topics",
            "blocked": await ctx.topics.in_use(topic.id),
        },
    )


@router.post("/topics/{topic_id}/delete")
async def delete_topic(request: Request, topic_id: Id, user: PageUser, ctx: Context) -> Response:
    try:
        await ctx.topics.delete(user, topic_id)
    except ChatforgeError as exc:
        if exc.status != 409:
            raise
        return redirect(request, "/admin/topics", flash=("error", exc.message))
    return redirect(request, "/admin/topics", flash=("success", "Topic deleted."))


# -- users --------------------------------------------------------------------------------


@router.get("/users")
async def users(
    request: Request, user: PageUser, ctx: Context, q: str = "", page: int = 1
) -> Response:
    size = 50
    page = max(1, min(page, 10**6))
    result = await ctx.accounts.list_users(user, query=q[:64], offset=(page - 1) * size, limit=size)
    return render(
        request,
        "admin/users.html",
        {
            "users": result.users,
            "total": result.total,
            "page": page,
            "pages": max(1, -(-result.total // size)),
            "q": q[:64],
        },
    )


@router.get("/users/{user_id}")
async def user_page(request: Request, user_id: Id, user: PageUser, ctx: Context) -> Response:
    require_admin(user)
    target = await ctx.accounts.get_user(user, user_id)
    return render(request, "admin/user_edit.html", {"target": target, "roles": list(Role)})


@router.post("/users/{user_id}/role")
async def set_role(
    request: Request, user_id: Id, user: PageUser, ctx: Context, role: FormStr = ""
) -> Response:
    # Authorize before reading the form: a non-admin gets 403, not a hint about valid roles.
    require_admin(user)
    try:
        target = await ctx.accounts.update_user(user, user_id, role=Role(role))
    except ValueError:
        return redirect(request, f"/admin/users/{user_id}", flash=("error", "Unknown role."))
    except ChatforgeError as exc:
        if exc.code != "own_role":
            raise
        return redirect(request, f"/admin/users/{user_id}", flash=("error", exc.message))
    return redirect(
        request,
        f"/admin/users/{user_id}",
        flash=("success", f"{target.username} is now {target.role.value}."),
    )


@router.post("/users/{user_id}/active")
async def set_active(
    request: Request, user_id: Id, user: PageUser, ctx: Context, active: FormStr = ""
) -> Response:
    try:
        target = await ctx.accounts.update_user(user, user_id, active=active == "true")
    except ChatforgeError as exc:
        if exc.code != "own_account":
            raise
        return redirect(request, f"/admin/users/{user_id}", flash=("error", exc.message))
    state = "reactivated" if target.is_active else "deactivated"
    return redirect(
        request, f"/admin/users/{user_id}", flash=("success", f"{target.username} {state}.")
    )


@router.post("/users/{user_id}/password")
async def reset_password(
    request: Request, user_id: Id, user: PageUser, ctx: Context, password: FormStr = ""
) -> Response:
    try:
        target = await ctx.accounts.reset_password(user, user_id, new_password=password)
    except Invalid as exc:
        return redirect(request, f"/admin/users/{user_id}", flash=("error", exc.message))
    return redirect(
        request,
        f"/admin/users/{user_id}",
        flash=("success", f"New password set for {target.username}; their sessions ended."),
    )


@router.get("/users/{user_id}/erase")
async def confirm_erase_user(
    request: Request, user_id: Id, user: PageUser, ctx: Context
) -> Response:
    require_admin(user)
    target = await ctx.accounts.get_user(user, user_id)
    return render(request, "admin/confirm_erase.html", {"target": target})


@router.post("/users/{user_id}/erase")
async def erase_user(request: Request, user_id: Id, user: PageUser, ctx: Context) -> Response:
    try:
        report = await ctx.privacy.erase_user(user, user_id)
    except ChatforgeError as exc:
        if exc.code != "own_account":
            raise
        return redirect(request, f"/admin/users/{user_id}", flash=("error", exc.message))
    return redirect(
        request,
        f"/admin/users/{user_id}",
        flash=("success", f"User {user_id} erased; {report.messages} messages anonymised."),
    )


# -- features text --------------------------------------------------------------------------


@router.get("/features")
async def features_editor(request: Request, user: PageUser, ctx: Context) -> Response:
    require_admin(user)
    return render(
        request, "admin/features.html", {"texts": await ctx.features.texts(), "roles": list(Role)}
    )


@router.post("/features")
async def save_features(request: Request, user: PageUser, ctx: Context) -> Response:
    require_admin(user)
    form = await request.form()
    texts = {
        role: value for role in Role if isinstance(value := form.get(f"text_{role.value}"), str)
    }
    try:
        await ctx.features.update(user, texts)
    except Invalid as exc:
        return redirect(request, "/admin/features", flash=("error", exc.message))
    return redirect(request, "/features", flash=("success", "Features page saved."))
