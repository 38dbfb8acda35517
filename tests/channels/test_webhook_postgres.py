"""Webhook batches on PostgreSQL, where the bulk statements go through SQLAlchemy and several
processes write at once: two gateways on one database stand for two ``chatforge`` processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from chatforge.context import AppContext, build_context
from chatforge.settings import load_settings
from chatforge.store import migrate
from chatforge.store.bot_models import BotInteraction, BotState
from chatforge.store.bot_models import InboundMessage as InboundRow
from chatforge.store.models import ChannelIdentity, Message
from tests.channels.test_webhook_batches import one_batch, whatsapp
from tests.servers import SECRET
from tests.store.test_postgres import create_database

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_database(postgres_url: str) -> str:
    url = create_database(postgres_url, "chatforge_webhooks")
    migrate.upgrade(url)
    return url


@pytest.fixture
async def two(pg_database: str, tmp_path: Path) -> AsyncIterator[tuple[AppContext, AppContext]]:
    contexts = [
        build_context(
            load_settings(
                data_dir=tmp_path / name,
                database_url=pg_database,
                secret_key=SECRET,
                public_url="https://chat.example.org",
            )
        )
        for name in ("a", "b")
    ]
    try:
        yield contexts[0], contexts[1]
    finally:
        for context in contexts:
            await context.close()


async def total(ctx: AppContext, model: type, *where: object) -> int:
    async with ctx.db.read() as session:
        query = select(func.count()).select_from(model).where(*where)  # type: ignore[arg-type]
        return int(await session.scalar(query) or 0)


async def test_a_batch_on_postgresql_answers_each_message_and_keeps_the_quota(
    two: tuple[AppContext, AppContext],
) -> None:
    ctx, _ = two
    one = "+27831110001"
    others = [whatsapp("help", f"+2783111{i:04d}") for i in range(2, 6)]
    texts = ["python easy"] * 7
    deliveries = await one_batch(ctx, [whatsapp(t, one) for t in texts] + others)
    answers = [d.replies[-1] for d in deliveries]
    assert "(0 challenges left" in answers[4]
    assert answers[5].startswith("You have had your 5") and answers[6].startswith("You have")
    assert all(a.startswith("Send a category") for a in answers[7:])
    mine = {d.user_id for d in deliveries[:7]}
    assert len(mine) == 1
    counted = BotInteraction.counted.is_(True)
    assert await total(ctx, BotInteraction, counted, BotInteraction.user_id == mine.pop()) == 5


async def test_one_message_id_sent_to_two_processes_at_once_is_handled_once(
    two: tuple[AppContext, AppContext],
) -> None:
    a, b = two
    for round_ in range(3):
        message = whatsapp("python easy", f"+2783222{round_:04d}")
        first, second = await asyncio.gather(
            a.channels.receive(message), b.channels.receive(message)
        )
        assert sorted([first.duplicate, second.duplicate]) == [False, True]
        handled = first if not first.duplicate else second
        assert handled.replies[1].startswith("Python · easy")
    assert await total(a, InboundRow, InboundRow.message_id.like("SM%")) >= 3
    for round_ in range(3):
        number = f"+2783222{round_:04d}"
        assert await total(a, ChannelIdentity, ChannelIdentity.external_id == number) == 1
    users = select(ChannelIdentity.user_id).where(ChannelIdentity.external_id.like("+2783222%"))
    assert await total(a, BotInteraction, BotInteraction.user_id.in_(users)) == 3
    assert await total(a, BotState, BotState.user_id.in_(users)) == 3
    assert await total(a, Message, Message.body == "python easy") >= 3


async def test_two_processes_stepping_one_user_take_turns(
    two: tuple[AppContext, AppContext],
) -> None:
    a, b = two
    one = "+27833330001"
    await a.channels.receive(whatsapp("hi", one))  # the account and bot state exist now
    messages = [whatsapp("python easy", one) for _ in range(8)]
    results = await asyncio.gather(
        *(ctx.channels.receive(m) for ctx, m in zip([a, b] * 4, messages, strict=True))
    )
    answers = [r.replies[-1] for r in results]
    assert sum(a.startswith("Python · easy") for a in answers) == 5
    assert sum(a.startswith("You have had your 5") for a in answers) == 3
