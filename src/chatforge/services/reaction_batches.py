"""Reactions in live session rooms, batched (L4): a class applauding at once is hundreds of
toggles in a second, each a transaction of its own through the asyncio ORM before.

A batch is one write transaction in steps (``Database.steps()``): the first loads what the
rules read for every toggle of the batch (:func:`load_facts`: the rooms, their members, the
messages, who reacted with what and the counts); then each toggle is decided in the order sent,
on the event loop, against those facts as the earlier toggles of the batch left them, with the
rate limit counted only for a toggle that changes something (:func:`decide`); the last step
writes what changed and the events, and commits (:func:`write_toggles`).

Reactions to private messages (their events go to the message's audience only) and anything
that is not a session room are left to the one-message path (``Unbatchable``), which holds the
same rules and raises the same errors.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, bindparam, delete, func, insert, select
from sqlalchemy.sql.dml import Delete

from chatforge.errors import Conflict, NotFound
from chatforge.realtime.envelope import Envelope
from chatforge.services.access import check_can_read_session, check_open, runs_session
from chatforge.services.eventlog import INSERT_ENCODED_EVENT, encoded_event
from chatforge.services.message_writer import (
    ConversationRow,
    Unbatchable,
    load_conversations,
    member_roles,
    reserve_seqs,
)
from chatforge.services.room_requests import RoomRequest
from chatforge.store.bulk import among, padded
from chatforge.store.models import ConversationKind, Message
from chatforge.store.session_models import Reaction
from chatforge.store.write_lane import Statements

_Key = tuple[int, int, str]  # (message_id, user_id, emoji): one person's reaction


def no_message(message_id: int) -> NotFound:
    return NotFound(f"No message {message_id} here.", code="message_not_found")


def message_deleted() -> Conflict:
    return Conflict("This message was deleted.", code="message_deleted")


@dataclass(slots=True)
class Toggle(RoomRequest):
    """One request to set a reaction: on (``want`` True), off (False) or the other way round
    (None), once the emoji was checked."""

    message_id: int
    emoji: str
    want: bool | None
    # Counted against the room's rate limit by a batch that then failed as a whole: the
    # one-toggle path it is retried on must not count it again.
    counted: bool = field(default=False, init=False)

    @property
    def key(self) -> _Key:
        return (self.message_id, self.actor_id, self.emoji)


class _Target(NamedTuple):
    conversation_id: int
    recipient_id: int | None
    deleted_at: datetime | None


@dataclass(slots=True)
class Facts:
    """What the rules read for a batch, updated as its toggles are decided."""

    conversations: dict[int, ConversationRow]
    roles: dict[tuple[int, int], str]
    messages: dict[int, _Target]
    reacted: set[_Key]
    counts: Counter[tuple[int, str]]


class Change(NamedTuple):
    """A toggle that changes a reaction: the event it makes, with the count after it."""

    toggle: Toggle
    added: bool
    total: int


class Unchanged(NamedTuple):
    """A toggle that asked for what is already so: no event, nothing counted."""

    added: bool
    total: int


def load_facts(statements: Statements, toggles: Sequence[Toggle]) -> Facts:
    """The batch's first step: everything its rules read, with the rooms locked."""
    conversations = load_conversations(statements, {t.conversation_id for t in toggles})
    rooms = {id for id, row in conversations.items() if row.kind is ConversationKind.session}
    users = {t.actor_id for t in toggles}
    message_ids = sorted({t.message_id for t in toggles})
    size, params = padded("message", message_ids)
    users_size, user_params = padded("user", sorted(users))
    messages = {
        id: _Target(conversation_id, recipient_id, deleted_at)
        for id, conversation_id, recipient_id, deleted_at in statements.rows(
            _messages_query(size), params
        )
    }
    reacted = {
        (message_id, user_id, emoji)
        for message_id, user_id, emoji in statements.rows(
            _reacted_query(size, users_size), {**params, **user_params}
        )
        if user_id in users
    }
    counts = Counter({(m, e): n for m, e, n in statements.rows(_counts_query(size), params)})
    roles = member_roles(statements, rooms, users) if rooms else {}
    return Facts(conversations, roles, messages, reacted, counts)


def check(toggle: Toggle, facts: Facts) -> bool:
    """The rules of a toggle that do not depend on the toggles before it; True when the room's
    rate limit applies to its sender (not an instructor). Raises the one-message path's errors,
    or ``Unbatchable`` for what only that path handles."""
    conversation = facts.conversations.get(toggle.conversation_id)
    if conversation is None or conversation.kind is not ConversationKind.session:
        raise Unbatchable(toggle.conversation_id, ConversationKind.session)
    role = facts.roles.get((toggle.conversation_id, toggle.actor_id))
    check_can_read_session(toggle.actor_id, toggle.actor_role, conversation, role is not None)
    check_open(conversation)
    message = facts.messages.get(toggle.message_id)
    if message is None or message.conversation_id != toggle.conversation_id:
        raise no_message(toggle.message_id)
    if message.recipient_id is not None:
        raise Unbatchable(toggle.conversation_id, conversation.kind)  # its audience only
    if message.deleted_at is not None:
        raise message_deleted()
    return not runs_session(toggle.actor_id, toggle.actor_role, conversation.owner_id, role)


def decide(toggle: Toggle, facts: Facts) -> Change | Unchanged:
    """What the toggle does, given the toggles decided before it (not yet applied)."""
    on = toggle.key in facts.reacted
    add = not on if toggle.want is None else toggle.want
    count = facts.counts[(toggle.message_id, toggle.emoji)]
    if add == on:
        return Unchanged(add, count)
    return Change(toggle, add, count + 1 if add else count - 1)


def apply(change: Change, facts: Facts) -> None:
    """Record a change in the facts, for the toggles after it."""
    toggle = change.toggle
    if change.added:
        facts.reacted.add(toggle.key)
    else:
        facts.reacted.discard(toggle.key)
    facts.counts[(toggle.message_id, toggle.emoji)] = change.total


def write_toggles(
    statements: Statements, changes: Sequence[Change], now: datetime
) -> list[tuple[int, Envelope]]:
    """The batch's last step: the reactions as the changes leave them, and one event per change
    (in order); each change's ``seq`` and envelope."""
    first: dict[_Key, bool] = {}  # whether each reaction touched was there before the batch
    last: dict[_Key, Change] = {}
    for change in changes:
        key = change.toggle.key
        first.setdefault(key, not change.added)
        last[key] = change
    statements.run(
        _DELETE,
        [
            {"m": key[0], "u": key[1], "e": key[2]}
            for key, was in first.items()
            if was and not last[key].added
        ],
    )
    statements.run(
        _INSERT,
        [
            {
                "message_id": key[0],
                "user_id": key[1],
                "emoji": key[2],
                "conversation_id": last[key].toggle.conversation_id,
                "created_at": now,
            }
            for key, was in first.items()
            if not was and last[key].added
        ],
    )
    seqs = reserve_seqs(statements, Counter(c.toggle.conversation_id for c in changes))
    events: list[dict[str, Any]] = []
    published: list[tuple[int, Envelope]] = []
    for change in changes:
        toggle = change.toggle
        seq = next(seqs[toggle.conversation_id])
        event, envelope = encoded_event(
            type="reaction_added" if change.added else "reaction_removed",
            conversation_id=toggle.conversation_id,
            seq=seq,
            actor_id=toggle.actor_id,
            created_at=now,
            payload=reaction_payload(toggle, change.total),
        )
        events.append(event)
        published.append((seq, envelope))
    statements.run(INSERT_ENCODED_EVENT, events)
    return published


def reaction_payload(toggle: Toggle, count: int) -> dict[str, Any]:
    """The payload of ``reaction_added`` / ``reaction_removed``, on both paths."""
    return {
        "message_id": toggle.message_id,
        "user_id": toggle.actor_id,
        "name": toggle.actor_name,
        "emoji": toggle.emoji,
        "count": count,
    }


_INSERT = insert(Reaction)
_DELETE: Delete = delete(Reaction).where(
    Reaction.message_id == bindparam("m"),
    Reaction.user_id == bindparam("u"),
    Reaction.emoji == bindparam("e"),
)


@functools.lru_cache(maxsize=8)
def _messages_query(size: int) -> Select[int, int, int | None, datetime | None]:
    return select(
        Message.id, Message.conversation_id, Message.recipient_id, Message.deleted_at
    ).where(among(Message.id, "message", size))


@functools.lru_cache(maxsize=16)
def _reacted_query(size: int, users: int) -> Select[int, int, str]:
    return select(Reaction.message_id, Reaction.user_id, Reaction.emoji).where(
        among(Reaction.message_id, "message", size), among(Reaction.user_id, "user", users)
    )


@functools.lru_cache(maxsize=8)
def _counts_query(size: int) -> Select[int, str, int]:
    return (
        select(Reaction.message_id, Reaction.emoji, func.count())
        .where(among(Reaction.message_id, "message", size))
        .group_by(Reaction.message_id, Reaction.emoji)
    )
