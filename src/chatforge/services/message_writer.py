"""The batched path of messages into support and bot conversations.

Those conversations have one posting rule (``check_can_post_direct``) and no room rules, so a
whole batch of messages can be checked and written with a handful of bulk statements in one
transaction (``GroupCommit``) instead of eight round trips and a commit per message. Live
session rooms (mutes, rate limits, profanity, private audiences) keep the one-message path: a
draft for one of them comes back as ``Unbatchable`` and the caller posts it that way.

The statements are SQLAlchemy Core run through ``Statements`` (on SQLite the whole batch is one
hop to the write lane's thread), the same on SQLite and PostgreSQL. Per batch: lock and load the
conversations, find earlier sends of the batch's ``client_id``s, load the ``reply_to`` parents,
reserve every conversation's ``seq`` range with one ``UPDATE ... RETURNING``, insert the
messages, insert their events.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Integer, Select, Update, bindparam, case, insert, select, text, update
from sqlalchemy.sql.dml import ReturningUpdate
from sqlalchemy.sql.selectable import TextualSelect

from chatforge.errors import ChatforgeError, Invalid, NotFound, RateLimited
from chatforge.realtime.envelope import Envelope
from chatforge.services.access import (
    INSTRUCTOR,
    check_can_post_direct,
    check_can_post_to_session,
    runs_session,
)
from chatforge.services.eventlog import (
    INSERT_ENCODED_EVENT,
    INSERT_ENCODED_PRIVATE_EVENT,
    EventLog,
    encoded_event,
)
from chatforge.services.moderation import in_force
from chatforge.services.posting import PostedMessage, PostResult, message_event
from chatforge.services.room_rules import RoomRules, private_audience
from chatforge.store.bulk import MAX_IN, among, padded
from chatforge.store.database import Database
from chatforge.store.group_commit import GroupCommit, in_one_transaction
from chatforge.store.models import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    Message,
    Participant,
    Role,
    User,
)
from chatforge.store.session_models import Mute, SessionRoom
from chatforge.store.types import utcnow
from chatforge.store.write_lane import Statements

_Key = tuple[int, int, str]  # (conversation_id, sender_id, client_id): one send of a client


class ConversationRow(NamedTuple):
    """What the batch reads of a conversation (the columns of ``_conversations_query``)."""

    id: int
    kind: ConversationKind
    status: ConversationStatus
    owner_id: int
    assignee_id: int | None
    channel: str
    first_response_at: datetime | None


class _Parent(NamedTuple):
    id: int
    conversation_id: int
    recipient_id: int | None


@functools.lru_cache(maxsize=8)
def _conversations_query(size: int) -> Select[*tuple[Any, ...]]:
    return (
        select(
            Conversation.id,
            Conversation.kind,
            Conversation.status,
            Conversation.owner_id,
            Conversation.assignee_id,
            Conversation.channel,
            Conversation.first_response_at,
        )
        .where(among(Conversation.id, "id", size))
        # Locked in id order (FOR UPDATE; nothing on SQLite, whose writer holds the whole file)
        # so two processes' batches over the same conversations queue instead of deadlocking,
        # and no conversation closes between this check and the insert.
        .order_by(Conversation.id)
        .with_for_update()
    )


def load_conversations(statements: Statements, ids: Collection[int]) -> dict[int, ConversationRow]:
    """The conversations ``ids`` that exist, locked until the transaction ends."""
    size, params = padded("id", sorted(ids))
    rows = statements.rows(_conversations_query(size), params)
    return {row[0]: ConversationRow(*row) for row in rows}


@functools.lru_cache(maxsize=8)
def _parents_query(size: int) -> Select[*tuple[Any, ...]]:
    return select(Message.id, Message.conversation_id, Message.recipient_id).where(
        among(Message.id, "id", size)
    )


@functools.lru_cache(maxsize=8)
def _first_response_query(size: int) -> Update:
    return (
        update(Conversation)
        .where(among(Conversation.id, "id", size), Conversation.first_response_at.is_(None))
        .values(first_response_at=bindparam("now"))
    )


_INSERT_MESSAGE = insert(Message)


# Statements whose shape depends on the batch are built once per size and cached: building
# SQLAlchemy expressions for every batch cost more than running them. Sizes are rounded up to a
# power of two (the extra slots repeat the last real one, which changes nothing), so a handful
# of shapes serve every batch and do not crowd the engine's compiled-statement cache.
def _slots(count: int) -> int:
    return 1 << (count - 1).bit_length()


def _fill(params: dict[str, Any], names: Sequence[str], rows: Sequence[Any], count: int) -> None:
    """Bind row ``n`` to the slots ``<name>n`` for every n < count, repeating the last row."""
    last = len(rows) - 1
    for n, keys in enumerate(_slot_names(tuple(names), count)):
        params.update(zip(keys, rows[min(n, last)], strict=True))


@functools.lru_cache(maxsize=32)
def _slot_names(names: tuple[str, ...], count: int) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(f"{name}{n}" for name in names) for n in range(count))


@functools.lru_cache(maxsize=16)
def _earlier_sends_query(slots: int) -> TextualSelect:
    """Messages matching one of ``slots`` (conversation, sender, client_id) keys.

    The keys are a VALUES list joined to the unique index: one index search each. (A row-value
    IN list made SQLite scan the whole index; an OR of IN lists changed its SQL text, hence a
    new prepare and plan, with every batch.) Written as text because SQLAlchemy does not cache
    its ``values()`` construct and compiled it again for every batch. The casts give the
    parameters their types on PostgreSQL. Parameters ``c<n>``, ``s<n>``, ``k<n>``.
    """
    keys = ", ".join(
        f"(CAST(:c{n} AS INTEGER), CAST(:s{n} AS INTEGER), CAST(:k{n} AS VARCHAR))"
        for n in range(slots)
    )
    return text(
        f"WITH wanted (c, s, k) AS (VALUES {keys}) "
        "SELECT m.conversation_id, m.sender_id, m.client_id, m.seq, m.id "
        "FROM wanted JOIN messages AS m ON m.conversation_id = wanted.c "
        "AND m.sender_id = wanted.s AND m.client_id = wanted.k"
    ).columns(
        Message.conversation_id, Message.sender_id, Message.client_id, Message.seq, Message.id
    )


@functools.lru_cache(maxsize=16)
def _reserve_query(conversations: int) -> ReturningUpdate[int, int]:
    """Add ``n<n>`` to the ``last_seq`` of conversation ``c<n>``."""
    step = case(
        *(
            (Conversation.id == bindparam(f"c{n}"), bindparam(f"n{n}", type_=Integer))
            for n in range(conversations)
        )
    )
    return (
        update(Conversation)
        .where(Conversation.id.in_([bindparam(f"c{n}") for n in range(conversations)]))
        .values(last_seq=Conversation.last_seq + step)
        .returning(Conversation.id, Conversation.last_seq)
    )


@dataclass(slots=True)
class Draft:
    """A message that passed the checks needing no database (body, client_id)."""

    sender: User
    conversation_id: int
    body: str
    client_id: str | None = None
    recipient_id: int | None = None
    reply_to: int | None = None
    # Copied out of the ORM user once: its instrumented attributes, read several times per
    # message by the batch, were a measurable share of the batch's work.
    sender_id: int = field(init=False)
    sender_name: str = field(init=False)
    sender_role: Role = field(init=False)
    # Counted against its room's rate limit by a batch that then failed as a whole: the
    # one-message path it is retried on must not count it again.
    counted: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.sender_id = self.sender.id
        self.sender_name = self.sender.display_name
        self.sender_role = self.sender.role

    @property
    def key(self) -> _Key | None:
        if self.client_id is None:
            return None
        return (self.conversation_id, self.sender_id, self.client_id)


# Not frozen, like Draft: a frozen dataclass sets each field through object.__setattr__, which
# for objects made once per message in the batch loop was a cost worth avoiding.
@dataclass(slots=True)
class Stored:
    """The outcome of one draft: its ack, and for a new message what listeners and subscribers
    learn (``None`` for a resend, which stores nothing)."""

    result: PostResult
    posted: PostedMessage | None = None
    envelope: Envelope | None = None


class Unbatchable(Exception):
    """The draft needs the one-message path (a live session room, or a case only it handles)."""

    def __init__(self, conversation_id: int, kind: ConversationKind) -> None:
        super().__init__(f"conversation {conversation_id} ({kind}) takes the one-message path")
        self.conversation_id = conversation_id
        self.kind = kind


class MessageWriter:
    """Posts drafts in group-committed batches; ``fallback`` posts one alone when a batch fails
    as a whole (say a concurrent writer in another process won a unique index).

    With ``rooms``, public messages into session rooms have batches of their own
    (``write_in_room``): a transaction in two steps, the checks and then the writes, with the
    room's rate limit counted in between (its storage is async: Redis across processes), so a
    message refused by another rule never counts against it, as on the one-message path.
    """

    def __init__(
        self,
        db: Database,
        log: EventLog,
        fallback: Callable[[Draft], Awaitable[Stored]],
        rooms: RoomRules | None = None,
    ) -> None:
        self.db = db
        self.log = log
        self.rooms = rooms
        self.group: GroupCommit[Draft, Stored] = GroupCommit(
            in_one_transaction(db, flush_drafts),
            fallback=fallback,
            after_commit=self._publish,
            name="message-writer",
        )
        self.room_group: GroupCommit[Draft, Stored] = GroupCommit(
            self._commit_in_rooms, fallback=fallback, after_commit=self._publish, name="room-writer"
        )
        # Store a draft in the next batch; returns once that batch committed. The group's own
        # method, not a wrapper: one coroutine frame less per message.
        self.write = self.group.submit
        self.write_in_room = self.room_group.submit

    async def close(self) -> None:
        await self.group.close()
        await self.room_group.close()

    async def _commit_in_rooms(self, drafts: Sequence[Draft]) -> list[Stored | Exception]:
        rooms = self.rooms
        if rooms is None:
            return [Unbatchable(d.conversation_id, ConversationKind.session) for d in drafts]
        now = rooms.clock()
        async with self.db.steps() as steps:
            checked = await steps.run(lambda st: check_drafts(st, drafts, rooms_at=now))
            for index in list(checked.limited):  # in the order sent, as one by one
                draft = drafts[index]
                try:
                    await rooms.count_message(draft.conversation_id, draft.sender_id)
                except RateLimited as refused:
                    checked.refuse(index, refused)
                else:
                    draft.counted = True
            return await steps.last(lambda st: write_checked(st, checked))

    async def _publish(self, results: Sequence[Stored | Exception]) -> None:
        # Drafts come out in queue order, so each conversation's events are in seq order.
        await self.log.publish(
            result.envelope
            for result in results
            if isinstance(result, Stored) and result.envelope is not None
        )


@dataclass(slots=True)
class Checked:
    """A batch after its checks, before its writes: an outcome for each refused draft, and the
    drafts to store (``accepted``), of which ``limited`` count against a room's rate limit."""

    drafts: Sequence[Draft]
    conversations: dict[int, ConversationRow]
    outcomes: list[Stored | Exception | None]
    accepted: list[int] = field(default_factory=list)
    limited: list[int] = field(default_factory=list)
    # (a resend, the draft of this batch it repeats)
    resends: list[tuple[int, int]] = field(default_factory=list)
    # The audience of each private message, by draft.
    audiences: dict[int, frozenset[int]] = field(default_factory=dict)

    def refuse(self, index: int, error: Exception) -> None:
        """Refuse an accepted draft after the checks (its room's rate limit was full)."""
        self.accepted.remove(index)
        if index in self.limited:
            self.limited.remove(index)
        self.outcomes[index] = error


def flush_drafts(statements: Statements, drafts: Sequence[Draft]) -> list[Stored | Exception]:
    """Check and write a batch of drafts in the caller's transaction; one outcome per draft.

    A rule a draft breaks becomes that draft's outcome and its neighbours are written; only
    an error of the batch as a whole (the database's) is raised. Drafts into session rooms come
    back as ``Unbatchable`` (their rate limit needs a step of its own: ``MessageWriter``).
    """
    return write_checked(statements, check_drafts(statements, drafts))


def check_drafts(
    statements: Statements, drafts: Sequence[Draft], *, rooms_at: datetime | None = None
) -> Checked:
    """The first half of a batch: load what its rules read and apply them.

    Drafts into session rooms are checked only with ``rooms_at`` (the room rules' current
    time), else they are ``Unbatchable``. A room's rarer cases are left to the one-message path
    (``Unbatchable``): a sender with a mute in force, rooms in slow mode, answers to private
    messages (and censored texts, which ``MessageService`` sends there before any batch).
    """
    conversations = load_conversations(statements, {d.conversation_id for d in drafts})
    earlier = _earlier_sends(statements, drafts, conversations)
    parents = _parents(statements, drafts)
    room = _room_facts(statements, drafts, conversations) if rooms_at is not None else None

    checked = Checked(drafts, conversations, [None] * len(drafts))
    firsts: dict[_Key, int] = {}  # the draft of this batch that stores each client send
    # The order of the one-message path: a missing conversation, then a resend (acked whatever
    # the rules say now), then the rules.
    for index, draft in enumerate(drafts):
        conversation = conversations.get(draft.conversation_id)
        key = draft.key
        if conversation is None:
            checked.outcomes[index] = NotFound(
                f"No conversation {draft.conversation_id}.", code="conversation_not_found"
            )
        elif conversation.kind is ConversationKind.session and room is None:
            checked.outcomes[index] = Unbatchable(draft.conversation_id, conversation.kind)
        elif key is not None and key in earlier:
            checked.outcomes[index] = earlier[key]
        elif key is not None and key in firsts:
            checked.resends.append((index, firsts[key]))
        else:
            try:
                if conversation.kind is ConversationKind.session:
                    assert room is not None and rooms_at is not None
                    admitted = _check_room_rules(draft, conversation, parents, room, rooms_at)
                    if admitted.limited:
                        checked.limited.append(index)
                    if admitted.audience is not None:
                        checked.audiences[index] = admitted.audience
                else:
                    _check_rules(draft, conversation, parents)
            except (ChatforgeError, Unbatchable) as error:
                checked.outcomes[index] = error
                continue
            if key is not None:
                firsts[key] = index
            checked.accepted.append(index)
    return checked


def write_checked(statements: Statements, checked: Checked) -> list[Stored | Exception]:
    """The second half of a batch: store its accepted drafts; one outcome per draft."""
    drafts, outcomes = checked.drafts, checked.outcomes
    if checked.accepted:
        now = utcnow()
        stored = _write(
            statements,
            [(drafts[i], checked.audiences.get(i)) for i in checked.accepted],
            checked.conversations,
            now,
        )
        for index, outcome in zip(checked.accepted, stored, strict=True):
            outcomes[index] = outcome
    for index, first in checked.resends:
        original = outcomes[first]
        assert original is not None
        outcomes[index] = (
            Stored(PostResult(original.result.seq, original.result.message_id, duplicate=True))
            if isinstance(original, Stored)
            else original  # the send it repeats was refused after the checks: so is this one
        )
    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def _check_rules(draft: Draft, conversation: ConversationRow, parents: dict[int, _Parent]) -> None:
    """The rules ``MessageService.post`` applies to support and bot conversations."""
    check_can_post_direct(draft.sender_id, conversation)
    if draft.recipient_id is not None:
        raise Invalid("Private messages exist only in live sessions.", code="invalid_recipient")
    _check_parent(draft, conversation, parents)


def _check_parent(draft: Draft, conversation: ConversationRow, parents: dict[int, _Parent]) -> None:
    if draft.reply_to is not None:
        parent = parents.get(draft.reply_to)
        if parent is None or parent.conversation_id != draft.conversation_id:
            raise Invalid(
                "reply_to must name a message of this conversation.", code="invalid_reply_to"
            )
        if parent.recipient_id is not None:
            # A private message: who may answer it is decided on the one-message path.
            raise Unbatchable(draft.conversation_id, conversation.kind)


class _RoomFacts(NamedTuple):
    """What the room rules read for a batch's session drafts, keyed by (room, sender)."""

    roles: dict[tuple[int, int], str]
    """Each sender's role in the room (current participants only)."""
    mutes: dict[tuple[int, int], datetime | None]
    """The end of each sender's mute (None: until unmuted), expired or not."""
    slow_mode: dict[int, int]
    """The rooms' slow mode intervals in seconds (0: off)."""
    instructors: dict[int, set[int]]
    """The instructors of rooms with private messages in the batch."""


class _Admitted(NamedTuple):
    limited: bool
    """Whether the room's rate limit applies (the sender does not run the room)."""
    audience: frozenset[int] | None
    """Who may see a private message; None for everyone in the room."""


def _check_room_rules(
    draft: Draft,
    conversation: ConversationRow,
    parents: dict[int, _Parent],
    room: _RoomFacts,
    now: datetime,
) -> _Admitted:
    """The rules ``MessageService.post`` and ``RoomRules.admit`` apply to a message in a session
    room, up to its rate limit (counted between the batch's steps)."""
    pair = (draft.conversation_id, draft.sender_id)
    role = room.roles.get(pair)
    joined = role is not None or draft.sender_id == conversation.owner_id
    check_can_post_to_session(joined or draft.sender_role is Role.admin, conversation.status)
    _check_parent(draft, conversation, parents)
    runs_room = runs_session(draft.sender_id, draft.sender_role, conversation.owner_id, role)
    if not runs_room and (
        (pair in room.mutes and in_force(room.mutes[pair], now))
        or room.slow_mode.get(draft.conversation_id)
    ):
        # Refused (with the time left) or timed against the sender's last message there.
        raise Unbatchable(draft.conversation_id, conversation.kind)
    audience = None
    if draft.recipient_id is not None:
        audience = private_audience(
            draft.sender_id,
            draft.recipient_id,
            actor_runs_room=runs_room,
            recipient_joined=(draft.conversation_id, draft.recipient_id) in room.roles,
            instructors=room.instructors.get(draft.conversation_id, set()),
        )
    return _Admitted(not runs_room, audience)


def _room_facts(
    statements: Statements, drafts: Sequence[Draft], conversations: dict[int, ConversationRow]
) -> _RoomFacts:
    rooms = sorted(
        {
            d.conversation_id
            for d in drafts
            if (c := conversations.get(d.conversation_id)) and c.kind is ConversationKind.session
        }
    )
    if not rooms:
        return _RoomFacts({}, {}, {}, {})
    # The recipients' roles too: a private message needs its recipient in the room. Senders
    # and recipients together may outnumber one IN list (a batch holds up to MAX_BATCH drafts).
    people = sorted(
        {d.sender_id for d in drafts} | {d.recipient_id for d in drafts if d.recipient_id}
    )
    facts = _RoomFacts({}, {}, {}, {})
    for start in range(0, len(people), MAX_IN):
        query, params = _room_queries(rooms, people[start : start + MAX_IN])
        facts.roles.update(((c, u), role) for c, u, role in statements.rows(query.roles, params))
        facts.mutes.update(((c, u), until) for c, u, until in statements.rows(query.mutes, params))
    facts.slow_mode.update(statements.rows(query.slow_mode, params))
    if any(d.recipient_id is not None for d in drafts):
        for room_id, user_id in statements.rows(query.instructors, params):
            facts.instructors.setdefault(room_id, set()).add(user_id)
    return facts


def member_roles(
    statements: Statements, rooms: Collection[int], users: Collection[int]
) -> dict[tuple[int, int], str]:
    """The roles of ``users`` who are current participants of ``rooms``, by (room, user)."""
    query, params = _room_queries(rooms, users)
    return {(c, u): role for c, u, role in statements.rows(query.roles, params)}


def _room_queries(
    rooms: Collection[int], users: Collection[int]
) -> tuple[_RoomQueries, dict[str, Any]]:
    size, params = padded("room", sorted(rooms))
    senders, sender_params = padded("user", sorted(users))
    return _sized_room_queries(size, senders), {**params, **sender_params}


class _RoomQueries(NamedTuple):
    roles: Select[int, int, str]
    mutes: Select[int, int, datetime | None]
    slow_mode: Select[int, int]
    instructors: Select[int, int]


@functools.lru_cache(maxsize=16)
def _sized_room_queries(rooms: int, senders: int) -> _RoomQueries:
    """The look-ups of ``_room_facts`` for ``rooms`` rooms and ``senders`` senders (the pairs
    in between are a superset of the batch's; the extra rows are never asked for)."""
    return _RoomQueries(
        roles=select(Participant.conversation_id, Participant.user_id, Participant.role).where(
            among(Participant.conversation_id, "room", rooms),
            among(Participant.user_id, "user", senders),
            Participant.left_at.is_(None),
        ),
        mutes=select(Mute.conversation_id, Mute.user_id, Mute.until).where(
            among(Mute.conversation_id, "room", rooms), among(Mute.user_id, "user", senders)
        ),
        slow_mode=select(SessionRoom.conversation_id, SessionRoom.slow_mode_seconds).where(
            among(SessionRoom.conversation_id, "room", rooms)
        ),
        instructors=select(Participant.conversation_id, Participant.user_id).where(
            among(Participant.conversation_id, "room", rooms),
            Participant.role == INSTRUCTOR,
            Participant.left_at.is_(None),
        ),
    )


def _earlier_sends(
    statements: Statements,
    drafts: Sequence[Draft],
    conversations: dict[int, ConversationRow],
) -> dict[_Key, Stored]:
    """Acks of messages stored before this batch with one of its ``client_id``s."""
    keys = sorted(
        {
            key
            for draft in drafts
            if (key := draft.key) is not None and draft.conversation_id in conversations
        }
    )
    if not keys:
        return {}
    slots = _slots(len(keys))
    params: dict[str, Any] = {}
    _fill(params, ("c", "s", "k"), keys, slots)
    return {
        (conversation_id, sender_id, client_id): Stored(
            PostResult(seq=seq, message_id=message_id, duplicate=True)
        )
        for conversation_id, sender_id, client_id, seq, message_id in statements.rows(
            _earlier_sends_query(slots), params
        )
    }


def _parents(statements: Statements, drafts: Sequence[Draft]) -> dict[int, _Parent]:
    ids = {draft.reply_to for draft in drafts if draft.reply_to is not None}
    if not ids:
        return {}
    size, params = padded("id", sorted(ids))
    return {row[0]: _Parent(*row) for row in statements.rows(_parents_query(size), params)}


def _write(
    statements: Statements,
    accepted: Sequence[tuple[Draft, frozenset[int] | None]],
    conversations: dict[int, ConversationRow],
    now: datetime,
) -> list[Stored]:
    """Insert the accepted drafts (each with the audience of a private message, else None),
    numbered after their conversations' last ``seq``."""
    drafts = [draft for draft, _ in accepted]
    seqs = reserve_seqs(statements, Counter(draft.conversation_id for draft in drafts))
    numbered = [
        (draft, audience, next(seqs[draft.conversation_id])) for draft, audience in accepted
    ]
    ids = statements.insert_ids(
        _INSERT_MESSAGE,
        [
            {
                "conversation_id": draft.conversation_id,
                "seq": seq,
                "sender_id": draft.sender_id,
                "client_id": draft.client_id,
                "body": draft.body,
                "reply_to_id": draft.reply_to,
                "recipient_id": draft.recipient_id,
                "excluded": False,
                "created_at": now,
            }
            for draft, _, seq in numbered
        ],
    )
    # What listeners learn of each conversation, read once per conversation, not per message.
    targets = {id: (row.kind, row.channel, row.owner_id) for id, row in conversations.items()}
    stored: list[Stored] = []
    events: list[dict[str, Any]] = []
    private_events: list[dict[str, Any]] = []
    for (draft, audience, seq), message_id in zip(numbered, ids, strict=True):
        conversation_id = draft.conversation_id
        event_type, payload = message_event(
            message_id=message_id,
            sender_id=draft.sender_id,
            sender_name=draft.sender_name,
            body=draft.body,
            client_id=draft.client_id,
            recipient_id=draft.recipient_id,
            reply_to=draft.reply_to,
        )
        event, envelope = encoded_event(
            type=event_type,
            conversation_id=conversation_id,
            seq=seq,
            actor_id=draft.sender_id,
            created_at=now,
            payload=payload,
            audience=audience,
        )
        (events if audience is None else private_events).append(event)
        kind, channel, owner_id = targets[conversation_id]
        posted = PostedMessage(
            conversation_id, kind, channel, owner_id, draft.sender_id, draft.sender_name,
            draft.recipient_id, seq, message_id, draft.body,
        )  # fmt: skip
        stored.append(Stored(PostResult(seq, message_id), posted, envelope))
    statements.run(INSERT_ENCODED_EVENT, events)
    statements.run(INSERT_ENCODED_PRIVATE_EVENT, private_events)
    _mark_first_responses(statements, drafts, conversations, now)
    return stored


def reserve_seqs(statements: Statements, counts: Counter[int]) -> dict[int, Iterator[int]]:
    """Take ``counts[c]`` consecutive seqs of each conversation ``c``, in one statement.

    ``last_seq = last_seq + n ... RETURNING`` holds each conversation row's write lock until
    the commit, so seq order is commit order, across processes too (PostgreSQL).
    """
    slots = _slots(len(counts))
    params: dict[str, Any] = {}
    _fill(params, ("c", "n"), sorted(counts.items()), slots)
    rows = statements.rows(_reserve_query(slots), params)
    if len(rows) != len(counts):
        raise RuntimeError("a conversation of the batch vanished while it was locked")
    return {id: iter(range(last - counts[id] + 1, last + 1)) for id, last in rows}


def _mark_first_responses(
    statements: Statements,
    drafts: Sequence[Draft],
    conversations: dict[int, ConversationRow],
    now: datetime,
) -> None:
    """Record when the assignee first answered, for conversations where it happened now."""
    answered = {
        draft.conversation_id
        for draft in drafts
        if conversations[draft.conversation_id].first_response_at is None
        and conversations[draft.conversation_id].assignee_id == draft.sender_id
    }
    if answered:
        size, params = padded("id", sorted(answered))
        statements.run(_first_response_query(size), [{**params, "now": now}])
