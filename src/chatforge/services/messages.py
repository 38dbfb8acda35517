"""Sending messages into any conversation: validation, idempotency, the event, the ack.

Messages into support and bot conversations are written in group-committed batches
(``message_writer.py``): one transaction for everything sent while the previous one committed.
Live session rooms, whose room rules read and write per message, take the one-message path.
Either way a message is acknowledged only once it is committed.

Code outside the domain that must learn of new messages (the channel relay that carries a
moderator's reply to WhatsApp or Messenger) registers a listener; listeners are called after the
commit with a :class:`PostedMessage`, never for a duplicate, and their failures are logged, not
raised: the message is stored and acknowledged whatever a listener does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.errors import Invalid, NotFound
from chatforge.services.access import check_can_post, is_instructor
from chatforge.services.eventlog import EventLog
from chatforge.services.message_writer import Draft, MessageWriter, Stored, Unbatchable
from chatforge.services.posting import PostedMessage as PostedMessage
from chatforge.services.posting import PostResult as PostResult
from chatforge.services.posting import message_event
from chatforge.services.room_rules import Admission, RoomRules
from chatforge.store.database import Database
from chatforge.store.models import Conversation, ConversationKind, Message, User
from chatforge.store.types import utcnow

BODY_MAX = 4000
CLIENT_ID_MAX = 64
# Session rooms seen lately: their messages skip the batched writer's detour.
KNOWN_ROOMS_MAX = 10_000
log = logging.getLogger(__name__)


MessageListener = Callable[[PostedMessage], Awaitable[None]]


def check_body(body: str) -> str:
    if len(body) > BODY_MAX:
        raise Invalid(
            f"A message can be at most {BODY_MAX} characters ({len(body)} given).",
            code="body_too_long",
        )
    if not body.strip():
        raise Invalid("A message cannot be empty.", code="empty_body")
    if "\x00" in body:
        raise Invalid("A message cannot contain NUL characters.", code="invalid_body")
    return body


def check_client_id(client_id: str | None) -> str | None:
    if client_id is None:
        return None
    # Printable ASCII is " " to "~": the string methods check it without a loop in Python.
    if not (
        1 <= len(client_id) <= CLIENT_ID_MAX and client_id.isascii() and client_id.isprintable()
    ):
        raise Invalid(
            f"client_id must be 1-{CLIENT_ID_MAX} printable ASCII characters.",
            code="invalid_client_id",
        )
    return client_id


async def _earlier_send(
    session: AsyncSession, conversation_id: int, sender_id: int, client_id: str
) -> PostResult | None:
    row = (
        await session.execute(
            select(Message.seq, Message.id).where(
                Message.conversation_id == conversation_id,
                Message.sender_id == sender_id,
                Message.client_id == client_id,
            )
        )
    ).first()
    return PostResult(seq=row[0], message_id=row[1], duplicate=True) if row else None


async def append_message(
    log: EventLog,
    session: AsyncSession,
    sender: User,
    conversation_id: int,
    body: str,
    *,
    client_id: str | None = None,
    recipient_id: int | None = None,
    reply_to: int | None = None,
    private_audience: AbstractSet[int] | None = None,
    censored: bool = False,
) -> Message:
    """Write a message and its event in the caller's transaction, with no checks.

    Callers validate first (``MessageService.post`` for people; bot transcripts write what the
    bot said). A private message is seen by ``private_audience`` (in sessions: the two people
    and the instructors), by default the sender and the recipient.
    """
    seq = await log.next_seq(session, conversation_id)
    message = Message(
        conversation_id=conversation_id,
        seq=seq,
        sender_id=sender.id,
        client_id=client_id,
        body=body,
        recipient_id=recipient_id,
        reply_to_id=reply_to,
        created_at=utcnow(),
    )
    session.add(message)
    await session.flush()
    event_type, payload = message_event(
        message_id=message.id,
        sender_id=sender.id,
        sender_name=sender.display_name,
        body=body,
        client_id=client_id,
        recipient_id=recipient_id,
        reply_to=reply_to,
        censored=censored,
    )
    log.add(
        session,
        conversation_id,
        seq,
        event_type,
        actor_id=sender.id,
        payload=payload,
        audience=None if recipient_id is None else (private_audience or {sender.id, recipient_id}),
    )
    return message


class MessageService:
    def __init__(self, db: Database, log: EventLog, rooms: RoomRules | None = None) -> None:
        self.db = db
        self.log = log
        self.listeners: list[MessageListener] = []
        # The extra rules of live session rooms; support and bot conversations have none.
        self.rooms = rooms
        self.writer = MessageWriter(db, log, fallback=self._post_alone, rooms=rooms)
        # Kinds never change, so a conversation once found to be a session room goes straight
        # to the one-message path. Bounded, oldest forgotten first: forgetting costs one detour.
        self._known_rooms: dict[int, None] = {}

    def listen(self, listener: MessageListener) -> None:
        """Call ``listener`` after each new message commits (a slow one delays the ack)."""
        self.listeners.append(listener)

    async def close(self) -> None:
        """Commit and acknowledge the messages still queued for the batched writer."""
        await self.writer.close()

    async def post(
        self,
        actor: User,
        conversation_id: int,
        body: str,
        *,
        client_id: str | None = None,
        recipient_id: int | None = None,
        reply_to: int | None = None,
    ) -> PostResult:
        """Store a message and its event; returns its ``seq`` and id once committed.

        Sending again with the same ``client_id`` returns the first result and stores nothing:
        clients resend unacknowledged messages after a reconnect without creating duplicates.
        In live sessions the room rules apply too (``room_rules.py``): ``Muted`` and
        ``RateLimited`` refuse the send, the text is stored censored, and a private message is
        seen only by the two people and the session's instructors.
        Raises ``Invalid`` (bad body, ids), ``NotFound``, ``Forbidden`` and ``Conflict`` (closed).
        """
        check_body(body)
        check_client_id(client_id)
        draft = Draft(actor, conversation_id, body, client_id, recipient_id, reply_to)
        if conversation_id in self._known_rooms:
            stored = await self._post_in_room(draft)
        else:
            try:
                stored = await self.writer.write(draft)
            except Unbatchable as detour:
                if detour.kind is ConversationKind.session:
                    self._remember_room(conversation_id)
                    stored = await self._post_in_room(draft)
                else:
                    stored = await self._post_alone(draft)
        if stored.posted is not None:
            await self._tell_listeners(stored.posted)
        return stored.result

    def _remember_room(self, conversation_id: int) -> None:
        self._known_rooms[conversation_id] = None
        if len(self._known_rooms) > KNOWN_ROOMS_MAX:
            del self._known_rooms[next(iter(self._known_rooms))]

    async def _post_in_room(self, draft: Draft) -> Stored:
        """A message into a session room: batched when it is a plain public one, else alone.

        A text the profanity filter censors takes the one-message path (strikes, audit record,
        automatic mute), as do the cases the batch leaves to it (``Unbatchable``).
        """
        if self.rooms is None or self.rooms.profanity.screen(draft.body).violated:
            return await self._post_alone(draft)
        try:
            return await self.writer.write_in_room(draft)
        except Unbatchable:
            return await self._post_alone(draft)

    async def _post_alone(self, draft: Draft) -> Stored:
        """The one-message path: its own transaction, with the room rules of session rooms."""
        try:
            result, posted = await self._post(
                draft.sender,
                draft.conversation_id,
                draft.body,
                draft.client_id,
                draft.recipient_id,
                draft.reply_to,
                counted=draft.counted,
            )
        except IntegrityError:
            # A concurrent resend of the same client_id won the unique index: return its ack.
            original = await self._find(draft.sender, draft.conversation_id, draft.client_id)
            if original is None:
                raise
            return Stored(original)
        return Stored(result, posted)

    async def _tell_listeners(self, posted: PostedMessage) -> None:
        for listener in self.listeners:
            try:
                await listener(posted)
            except Exception:
                log.exception("message listener failed for message %s", posted.message_id)

    async def _find(
        self, actor: User, conversation_id: int, client_id: str | None
    ) -> PostResult | None:
        if client_id is None:
            return None
        async with self.db.read() as session:
            return await _earlier_send(session, conversation_id, actor.id, client_id)

    async def _post(
        self,
        actor: User,
        conversation_id: int,
        body: str,
        client_id: str | None,
        recipient_id: int | None,
        reply_to: int | None,
        *,
        counted: bool = False,
    ) -> tuple[PostResult, PostedMessage | None]:
        async with self.log.transaction() as session:
            # Locked (FOR UPDATE on PostgreSQL; SQLite's writer holds the whole file) before the
            # rules read anything: two sends of one person checked side by side would both pass
            # slow mode, which times each message against the last one committed.
            conversation = await session.get(Conversation, conversation_id, with_for_update=True)
            if conversation is None:
                raise NotFound(f"No conversation {conversation_id}.", code="conversation_not_found")
            if client_id is not None:
                earlier = await _earlier_send(session, conversation_id, actor.id, client_id)
                if earlier is not None:
                    return earlier, None
            await check_can_post(session, actor, conversation)
            if recipient_id is not None and conversation.kind is not ConversationKind.session:
                raise Invalid(
                    "Private messages exist only in live sessions.", code="invalid_recipient"
                )
            if reply_to is not None:
                parent = await session.get(Message, reply_to)
                if (
                    parent is None
                    or parent.conversation_id != conversation_id
                    or not await _may_see(session, actor, conversation, parent)
                ):
                    raise Invalid(
                        "reply_to must name a message of this conversation.",
                        code="invalid_reply_to",
                    )
            admission: Admission | None = None
            if conversation.kind is ConversationKind.session and self.rooms is not None:
                admission = await self.rooms.admit(
                    session, actor, conversation, body, recipient_id, counted=counted
                )
                body = admission.body
            message = await append_message(
                self.log,
                session,
                actor,
                conversation_id,
                body,
                client_id=client_id,
                recipient_id=recipient_id,
                reply_to=reply_to,
                private_audience=admission.audience if admission is not None else None,
                censored=admission is not None and admission.violated,
            )
            seq = message.seq
            if conversation.first_response_at is None and conversation.assignee_id == actor.id:
                conversation.first_response_at = message.created_at
            if admission is not None and self.rooms is not None:
                await self.rooms.after_post(
                    self.log, session, actor, conversation, message, admission
                )
            posted = PostedMessage(
                conversation_id=conversation_id,
                kind=conversation.kind,
                channel=conversation.channel,
                owner_id=conversation.owner_id,
                sender_id=actor.id,
                sender_name=actor.display_name,
                recipient_id=recipient_id,
                seq=seq,
                message_id=message.id,
                body=body,
            )
        return PostResult(seq=seq, message_id=message.id), posted


async def _may_see(
    session: AsyncSession, actor: User, conversation: Conversation, message: Message
) -> bool:
    if message.recipient_id is None or actor.id in (message.sender_id, message.recipient_id):
        return True
    return await is_instructor(session, actor, conversation)
