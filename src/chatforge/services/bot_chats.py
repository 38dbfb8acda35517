"""Bot chats end when their user goes quiet.

A user's chat with a bot is one open ``bot`` conversation (``bots/transcript.py``) for as long as
they keep talking. Once nothing has been said in it for ``idle``, it ends: status *done*, ended
when its last message was written, a ``conversation_updated`` event for whoever watches it, and
its messages go into the search index (on SQLite a trigger on its status does that, migration
0007). From then on annotators find it like a finished support chat (N1), and the user's next
message opens a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Row, and_, bindparam, func, select, update

from chatforge.services.eventlog import EventLog, encoded_event
from chatforge.store.database import Database
from chatforge.store.models import Conversation, ConversationKind, ConversationStatus, Event
from chatforge.store.types import utcnow

# Chats ended in one write transaction (about 10 ms of the writer), so a backlog never holds
# it for long.
BATCH = 100

_LAST_SAID = func.coalesce(Event.created_at, Conversation.created_at)
_QUIET_CHATS = (
    select(Conversation.id, Conversation.last_seq, _LAST_SAID)
    .outerjoin(
        Event,
        and_(Event.conversation_id == Conversation.id, Event.seq == Conversation.last_seq),
    )
    .where(
        Conversation.kind == ConversationKind.bot,
        Conversation.status == ConversationStatus.active,
        bindparam("cutoff") > _LAST_SAID,
    )
    .order_by(Conversation.id)
    .limit(BATCH)
)


class BotChats:
    def __init__(self, db: Database, log: EventLog, idle: timedelta) -> None:
        self.db = db
        self.log = log
        self.idle = idle

    async def end_idle(self, now: datetime | None = None) -> list[int]:
        """End the open bot chats in which nothing was said for ``idle``; returns their ids."""
        cutoff = (now or utcnow()) - self.idle
        ended: list[int] = []
        while True:
            # Found on a reader, so the writer is held only for the chats that end.
            async with self.db.read() as session:
                quiet = list(await session.execute(_QUIET_CHATS, {"cutoff": cutoff}))
            if not quiet:  # the usual answer: no write transaction for it
                return ended
            batch = await self._end(quiet)
            ended += batch
            if len(quiet) < BATCH or not batch:
                return ended

    async def _end(self, quiet: Sequence[Row[int, int, datetime]]) -> list[int]:
        seen = {conversation_id: (last_seq, said) for conversation_id, last_seq, said in quiet}
        async with self.log.transaction() as session:
            # Locked on PostgreSQL, where a webhook batch may be writing to one of them.
            now_open = await session.execute(
                select(Conversation.id, Conversation.last_seq)
                .where(
                    Conversation.id.in_(seen),
                    Conversation.status == ConversationStatus.active,
                )
                .with_for_update()
            )
            # One in which someone spoke since it was read stays open.
            ended = sorted(id for id, last_seq in now_open if last_seq == seen[id][0])
            if not ended:
                return []
            await session.execute(
                update(Conversation),
                [
                    {
                        "id": id,
                        "status": ConversationStatus.done,
                        "ended_at": seen[id][1],
                        "last_seq": seen[id][0] + 1,
                    }
                    for id in ended
                ],
            )
            now = utcnow()
            await self.log.add_encoded(
                session,
                [
                    encoded_event(
                        type="conversation_updated",
                        conversation_id=id,
                        seq=seen[id][0] + 1,
                        actor_id=None,
                        created_at=now,
                        payload={"status": "done", "reason": "idle"},
                    )
                    for id in ended
                ],
            )
        return ended
