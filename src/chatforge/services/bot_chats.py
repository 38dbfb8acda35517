"""Bot chats end when their user goes quiet.

A user's chat with a bot is one open ``bot`` conversation (``bots/transcript.py``) for as long as
they keep talking. Once nothing has been said in it for ``idle``, it ends: status *done*, ended
when its last message was written, a ``conversation_updated`` event for whoever watches it, and
its messages go into the search index (``services/search.py``). From then on annotators find it
like a finished support chat (N1), and the user's next message opens a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Row, and_, bindparam, func, select, update

from chatforge.services.eventlog import EventLog
from chatforge.services.search import index_conversations
from chatforge.store.database import Database
from chatforge.store.models import Conversation, ConversationKind, ConversationStatus, Event
from chatforge.store.types import utcnow

# Chats ended in one write transaction, so a backlog never holds the writer for long.
BATCH = 200

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
            batch = await self._end(quiet)
            ended += batch
            if len(quiet) < BATCH or not batch:
                return ended

    async def _end(self, quiet: Sequence[Row[int, int, datetime]]) -> list[int]:
        ended: list[int] = []
        async with self.log.transaction() as session:
            for conversation_id, last_seq, last_said in quiet:
                still_quiet = await session.scalar(
                    update(Conversation)
                    .where(
                        Conversation.id == conversation_id,
                        Conversation.status == ConversationStatus.active,
                        # Someone spoke since it was read: it stays open.
                        Conversation.last_seq == last_seq,
                    )
                    .values(status=ConversationStatus.done, ended_at=last_said)
                    .returning(Conversation.id)
                )
                if still_quiet is None:
                    continue
                await self.log.append(
                    session,
                    conversation_id,
                    "conversation_updated",
                    actor_id=None,
                    payload={"status": "done", "reason": "idle"},
                )
                ended.append(conversation_id)
            await index_conversations(session, ended, postgres=not self.db.is_sqlite)
        return ended
