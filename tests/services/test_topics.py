"""TopicService: names, deactivation, deletion only when unused, and the audit trail."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from chatforge.context import AppContext
from chatforge.errors import Conflict, Forbidden, Invalid, NotFound
from chatforge.store.models import AuditRecord, Role
from tests.factories import make_conversation, make_user


async def topic_audit(ctx: AppContext) -> list[tuple[str, dict[str, object]]]:
    async with ctx.db.read() as session:
        rows = await session.scalars(
            select(AuditRecord).where(AuditRecord.target_type == "topic").order_by(AuditRecord.id)
        )
        return [(row.action, row.detail) for row in rows]


async def test_topic_lifecycle_is_audited(ctx: AppContext) -> None:
    admin = await make_user(ctx, Role.admin)

    topic = await ctx.topics.create(admin, name=" Git ", description=" commands ")
    await ctx.topics.update(admin, topic.id, name="Git")  # the same name: nothing changes
    await ctx.topics.update(admin, topic.id, name="Git 2", active=False)
    await ctx.topics.delete(admin, topic.id)

    assert (topic.name, topic.description) == ("Git", "commands")
    assert await topic_audit(ctx) == [
        ("topic.create", {"name": "Git"}),
        ("topic.update", {"name": "Git 2", "active": False}),
        ("topic.delete", {"name": "Git 2"}),
    ]
    assert await ctx.topics.list(include_inactive=True) == []


async def test_inactive_topics_are_listed_only_on_request(ctx: AppContext) -> None:
    admin = await make_user(ctx, Role.admin)
    await ctx.topics.create(admin, name="B")
    hidden = await ctx.topics.create(admin, name="A")
    await ctx.topics.update(admin, hidden.id, active=False)

    assert [t.name for t in await ctx.topics.list()] == ["B"]
    assert [t.name for t in await ctx.topics.list(include_inactive=True)] == ["A", "B"]


async def test_a_topic_with_conversations_is_kept(ctx: AppContext) -> None:
    admin = await make_user(ctx, Role.admin)
    topic = await ctx.topics.create(admin, name="Git")
    assert not await ctx.topics.in_use(topic.id)
    await make_conversation(ctx, admin, topic)

    with pytest.raises(Conflict) as raised:
        await ctx.topics.delete(admin, topic.id)

    assert raised.value.code == "topic_in_use"
    assert await ctx.topics.in_use(topic.id)
    assert [t.name for t in await ctx.topics.list()] == ["Git"]
    assert [action for action, _ in await topic_audit(ctx)] == ["topic.create"]


async def test_topic_rules(ctx: AppContext) -> None:
    admin, user = await make_user(ctx, Role.admin), await make_user(ctx)
    await ctx.topics.create(admin, name="Git")
    other = await ctx.topics.create(admin, name="Jinja2")

    with pytest.raises(Conflict):
        await ctx.topics.create(admin, name="  Git  ")
    with pytest.raises(Conflict):
        await ctx.topics.update(admin, other.id, name="Git")
    with pytest.raises(Invalid):
        await ctx.topics.create(admin, name="x" * 81)
    with pytest.raises(Invalid):
        await ctx.topics.create(admin, name="ok", description="d" * 501)
    with pytest.raises(Forbidden):
        await ctx.topics.create(user, name="Mine")
    with pytest.raises(NotFound):
        await ctx.topics.get(4242)
    assert [t.name for t in await ctx.topics.list()] == ["Git", "Jinja2"]
