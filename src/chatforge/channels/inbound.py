"""Idempotent webhooks: each platform message id is handled once."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.store.bot_models import InboundMessage as InboundRow
from chatforge.store.types import utcnow


async def claim_inbound(session: AsyncSession, channel: str, message_id: str) -> bool:
    """Record ``message_id`` as handled; False if it already was (a retried webhook).

    Insert-or-ignore on the primary key, in the caller's transaction: if the handling fails and
    rolls back, the claim goes with it and the platform's retry is handled afresh.
    """
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(InboundRow)
        .values(channel=channel, message_id=message_id, received_at=utcnow())
        .on_conflict_do_nothing()
    )
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))
