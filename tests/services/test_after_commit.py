"""Committed is committed: when publishing fails after a commit, the caller still gets its
answer and the change stays stored once; subscribers find the events in the log."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from chatforge.context import AppContext
from chatforge.errors import Conflict
from chatforge.realtime.envelope import Envelope
from chatforge.store.models import Conversation, ConversationStatus, Event, Role, User
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


async def pending_with_broker_away(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> tuple[User, int]:
    """A moderator and a pending support conversation; from then on, every publish fails."""
    admin = await make_user(ctx, Role.admin)
    moderator = await make_user(ctx, Role.moderator)
    topic = await make_topic(ctx, admin)
    opened = await ctx.support.open(await make_user(ctx), topic.id)
    monkeypatch.setattr(ctx.broker, "publish", broker_away)
    return moderator, opened.conversation.id


async def test_claim_and_end_answer_when_publishing_fails(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    moderator, conversation_id = await pending_with_broker_away(ctx, monkeypatch)

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
    moderator, conversation_id = await pending_with_broker_away(ctx, monkeypatch)
    await ctx.support.claim(moderator, conversation_id)

    other = await make_user(ctx, Role.moderator)
    with pytest.raises(Conflict) as refused:
        await ctx.support.claim(other, conversation_id)
    assert refused.value.code == "already_claimed"
