"""Carrying a hand-off's conversation to the user's messaging channel (B4).

When a moderator writes in a support conversation that came from WhatsApp or Messenger, the
user must get it there. The relay listens to the message and support services (which call it
after their commits) and queues the text for the channel's outbox, so the moderator's ack never
waits for Twilio or Facebook, and no HTTP call happens inside a database transaction.

One worker sends the queue in order, so a moderator's messages reach the user in the order they
were written. A failed send is logged and dropped: the message stays in the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from chatforge.bots.seams import Outbox
from chatforge.services.conversations import ConversationView
from chatforge.services.messages import PostedMessage
from chatforge.store.models import ConversationKind

log = logging.getLogger(__name__)

WEB = "web"
CLOSE_GRACE_SECONDS = 5.0
JOINED = {"claimed", "auto_assigned", "transferred"}
ENDED_NOTICE = (
    "The conversation with your mentor has ended. You are talking to the bot again:"
    " send help to see what it can do."
)


class ChannelRelay:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._queue: asyncio.Queue[tuple[int, str, str]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def message_posted(self, posted: PostedMessage) -> None:
        """Queue a moderator's message in a channel user's support conversation for delivery."""
        if (
            posted.kind is not ConversationKind.support
            or posted.channel == WEB
            or posted.sender_id == posted.owner_id
            or posted.recipient_id is not None
        ):
            return
        self._enqueue(posted.owner_id, posted.channel, f"{posted.sender_name}: {posted.body}")

    async def support_changed(self, conversation: ConversationView, reason: str) -> None:
        """Tell a channel user that a moderator joined, or that the bot is back."""
        if conversation.kind is not ConversationKind.support or conversation.channel == WEB:
            return
        if reason in JOINED and conversation.assignee_name:
            text = f"{conversation.assignee_name} is here to help you. Write here to talk to them."
        elif reason == "ended":
            text = ENDED_NOTICE
        else:
            return
        self._enqueue(conversation.owner_id, conversation.channel, text)

    def _enqueue(self, user_id: int, channel: str, text: str) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._deliver())
        self._queue.put_nowait((user_id, channel, text))

    async def _deliver(self) -> None:
        while True:
            user_id, channel, text = await self._queue.get()
            try:
                await self.outbox.send(user_id, channel, text)
            except Exception:
                log.exception("could not relay a message to user %s on %s", user_id, channel)
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until everything queued so far has been sent."""
        if self._worker is not None:
            await self._queue.join()

    async def close(self) -> None:
        """Send what is queued (for a few seconds at most), then stop the worker."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_GRACE_SECONDS):
                await self.drain()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
