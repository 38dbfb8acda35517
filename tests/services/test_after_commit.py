"""Committed is committed: when publishing fails after a commit, the caller still gets its
answer and the change stays stored once; subscribers find the events in the log."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from chatforge.context import AppContext
from chatforge.realtime.envelope import Envelope
from chatforge.store.models import Conversation, ConversationStatus, Event, Role
from tests.factories import make_topic, make_user


async def broker_away(envelope: Envelope) -> None:
    raise ConnectionError("broker away")


async def statuses_logged(ctx: AppContext, conversation_id: int) -> list[str]:
    """The statuses the conversation's ``conversation_updated`` events announce, in order."""
    async with ctx.db.read() as session:
        found = await session.scalars(
            select(Event.payload)
            .where(Event.conversation_id == conversation_id)
            .where(Event.type == "conversation_updated")
            .order_by(Event.seq)
        )
        return [payload.get("status") for payload in found]


async def test_claim_and_end_answer_when_publishing_fails(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await make_user(ctx, Role.admin)
    moderator = await make_user(ctx, Role.moderator)
    user = await make_user(ctx)
    topic = await make_topic(ctx, admin)
    opened = await ctx.support.open(user, topic.id)
    conversation_id = opened.conversation.id
    monkeypatch.setattr(ctx.broker, "publish", broker_away)

    claimed = await ctx.support.claim(moderator, conversation_id)
    assert claimed.status is ConversationStatus.active
    assert claimed.assignee_id == moderator.id
    ended = await ctx.support.end(moderator, conversation_id)
    assert ended.status is ConversationStatus.done

    assert "after a commit failed" in caplog.text
    async with ctx.db.read() as session:
        stored = await session.get(Conversation, conversation_id)
        assert stored is not None and stored.status is ConversationStatus.done
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 1
    # Each change was stored once, and its event is in the log for subscribers to resume from.
    assert await statuses_logged(ctx, conversation_id) == ["pending", "active", "done"]


async def test_a_failure_before_the_commit_is_still_raised(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only what follows the commit is swallowed: a refused claim still reaches the caller.
    admin = await make_user(ctx, Role.admin)
    moderator = await make_user(ctx, Role.moderator)
    user = await make_user(ctx)
    topic = await make_topic(ctx, admin)
    opened = await ctx.support.open(user, topic.id)
    monkeypatch.setattr(ctx.broker, "publish", broker_away)
    await ctx.support.claim(moderator, opened.conversation.id)

    other = await make_user(ctx, Role.moderator)
    with pytest.raises(Exception) as refused:
        await ctx.support.claim(other, opened.conversation.id)
    assert getattr(refused.value, "code", None) == "already_claimed"
