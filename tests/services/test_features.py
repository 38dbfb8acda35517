"""FeatureService: per-role texts with defaults, edited all or nothing by admins."""

from __future__ import annotations

import pytest

from chatforge.context import AppContext
from chatforge.errors import Forbidden, Invalid
from chatforge.services.features import BODY_MAX, DEFAULT_TEXTS
from chatforge.store.models import Role
from tests.factories import make_user


async def test_every_role_has_a_default_text(ctx: AppContext) -> None:
    texts = await ctx.features.texts()

    assert texts == DEFAULT_TEXTS
    assert set(texts) == set(Role)
    assert all(texts.values())


async def test_an_edit_replaces_only_the_roles_given(ctx: AppContext) -> None:
    admin = await make_user(ctx, Role.admin)

    await ctx.features.update(admin, {Role.user: "  hello  ", Role.admin: ""})

    texts = await ctx.features.texts()
    assert texts[Role.user] == "hello"
    assert texts[Role.admin] == ""
    assert texts[Role.moderator] == DEFAULT_TEXTS[Role.moderator]


async def test_an_edit_with_one_bad_text_changes_nothing(ctx: AppContext) -> None:
    admin = await make_user(ctx, Role.admin)

    with pytest.raises(Invalid):
        await ctx.features.update(admin, {Role.user: "fine", Role.moderator: "x" * (BODY_MAX + 1)})

    assert await ctx.features.texts() == DEFAULT_TEXTS


@pytest.mark.parametrize("role", [Role.user, Role.moderator, Role.annotator])
async def test_only_admins_edit(ctx: AppContext, role: Role) -> None:
    with pytest.raises(Forbidden):
        await ctx.features.update(await make_user(ctx, role), {Role.user: "mine"})
