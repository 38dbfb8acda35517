"""Plain factory functions for test data, going through the real services."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from chatforge.context import AppContext, build_context
from chatforge.settings import load_settings
from chatforge.store.models import Conversation, ConversationKind, Role, Topic, User

T = TypeVar("T")
PASSWORD = "correct horse battery"
_counter = itertools.count(1)


def unique_name(prefix: str = "user") -> str:
    return f"{prefix}{next(_counter)}"


async def make_user(
    ctx: AppContext, role: Role | str = Role.user, username: str | None = None
) -> User:
    return await ctx.accounts.register(
        username or unique_name(str(Role(role).value)), PASSWORD, role=Role(role)
    )


async def make_topic(
    ctx: AppContext, admin: User, name: str | None = None, description: str = ""
) -> Topic:
    return await ctx.topics.create(
        admin, name=name or unique_name("Topic "), description=description
    )


async def make_conversation(ctx: AppContext, owner: User, topic: Topic | None) -> Conversation:
    """A support conversation row, written straight through the ORM (no service owns it yet)."""
    async with ctx.db.write() as session:
        conversation = Conversation(
            kind=ConversationKind.support,
            owner_id=owner.id,
            topic_id=topic.id if topic is not None else None,
        )
        session.add(conversation)
    return conversation


def with_context(data_dir: Path, work: Callable[[AppContext], Awaitable[T]], **env: str) -> T:
    """Run ``work`` against the database of a server running on ``data_dir``, from a sync test."""

    async def run() -> T:
        ctx = build_context(load_settings(data_dir=data_dir, **env))
        try:
            return await work(ctx)
        finally:
            await ctx.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    # A loop already runs in this thread (Playwright's sync API keeps one): use another thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(run())).result()
