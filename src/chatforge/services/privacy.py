"""Privacy (A6): erasing a person from chatforge, and handing someone all of their data.

Erasure anonymises rather than deletes: the account is renamed ``erased-<id>``, every message the
person wrote keeps its place but its text becomes ``ERASED``, and their name, channel ids, bot
state and free text are scrubbed from the event log and the audit log. Conversations keep their
shape (sequence numbers, who answered whom, timings) for the people who remain in them and for
the statistics; nothing left can be tied back to the person. One audit record of the erasure
remains, naming only the account id and the counts.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CompoundSelect, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.errors import Forbidden, NotFound
from chatforge.realtime.broker import Broker
from chatforge.realtime.envelope import SESSION_REVOKED_FRAME, Envelope, user_topic
from chatforge.services import audit
from chatforge.services.policy import require_admin
from chatforge.store.annotation_models import Annotation
from chatforge.store.bot_models import BotInteraction, BotState
from chatforge.store.database import Database
from chatforge.store.models import (
    AuditRecord,
    ChannelIdentity,
    Conversation,
    ConversationKind,
    Event,
    Message,
    Participant,
    User,
)
from chatforge.store.session_models import Mute, Reaction
from chatforge.store.types import utcnow

ERASED = "[erased]"
"""What an erased person's messages, comments and stored values read afterwards."""

# Names shorter than this are not scrubbed out of other text: "Al" would eat half the log.
MIN_NAME_LENGTH = 3
# A message of theirs quoted inside someone else's text (a bot echoing "I don't know “...”") is
# erased there too, when it is long enough not to match ordinary words.
MIN_QUOTE_LENGTH = 8
# Free text others wrote *about* the person (a mute's reason) is theirs to lose as well.
ABOUT_THEM = frozenset({"reason", "comment", "body"})
BATCH = 500


def erased_username(user_id: int) -> str:
    return f"erased-{user_id}"


@dataclass(frozen=True, slots=True)
class Scrubber:
    """Replaces one person's data inside arbitrary JSON-like values (pure)."""

    texts: frozenset[str]
    """Whole strings that are theirs (message bodies, comments): replaced by ``ERASED``."""
    quotes: re.Pattern[str] | None
    """The longer of those texts, replaced by ``ERASED`` where quoted inside other text."""
    names: re.Pattern[str] | None
    """Their names and channel ids, replaced by ``replacement`` wherever they occur."""
    replacement: str

    @classmethod
    def build(cls, texts: Iterable[str], names: Iterable[str], replacement: str) -> Scrubber:
        # Short texts ("ok", "thanks") are everyone's: other people's equal words stay.
        kept_texts = frozenset(t for t in texts if len(t) >= MIN_QUOTE_LENGTH)
        return cls(
            kept_texts,
            _alternation(t for t in kept_texts if len(t) >= MIN_QUOTE_LENGTH),
            _alternation(n for n in names if len(n) >= MIN_NAME_LENGTH and n != replacement),
            replacement,
        )

    def text(self, value: str) -> str:
        if value in self.texts:
            return ERASED
        if self.quotes is not None:
            value = self.quotes.sub(ERASED, value)
        if self.names is not None:
            value = self.names.sub(self.replacement, value)
        return value

    def value(self, value: Any, *, erase_keys: AbstractSet[str] = frozenset()) -> Any:
        """``value`` scrubbed; the top-level keys in ``erase_keys`` are erased outright."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                key: ERASED if key in erase_keys and item else self.value(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value


def _alternation(strings: Iterable[str]) -> re.Pattern[str] | None:
    # Longest first, so a name is replaced whole rather than a shorter name inside it.
    ordered = sorted(set(strings), key=len, reverse=True)
    if not ordered:
        return None
    return re.compile("|".join(re.escape(s) for s in ordered), re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ErasureReport:
    user_id: int
    messages: int
    events: int
    audit_records: int


class PrivacyService:
    def __init__(self, db: Database, broker: Broker) -> None:
        self.db = db
        self.broker = broker

    async def erase_user(self, actor: User, user_id: int) -> ErasureReport:
        """Anonymise ``user_id`` everywhere and end their sessions (admin).

        Raises ``Forbidden`` (not an admin, or erasing yourself) and ``NotFound``.
        Erasing an account twice is harmless: the second pass finds nothing left.
        """
        require_admin(actor)
        if actor.id == user_id:
            raise Forbidden("You cannot erase your own account.", code="own_account")
        async with self.db.write() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise NotFound(f"No user {user_id}.", code="user_not_found")
            report = await self._erase(session, user)
            audit.record(
                session,
                actor_id=actor.id,
                action="user.erase",
                target_type="user",
                target_id=user_id,
                messages=report.messages,
                events=report.events,
                audit_records=report.audit_records,
            )
        if self.db.is_sqlite:
            # FTS5 keeps deleted terms in its segments until they are merged: merge them now.
            async with self.db.write() as session:
                await session.execute(
                    text("INSERT INTO message_search(message_search) VALUES ('optimize')")
                )
        # After the commit: live sockets of theirs, on any process, close.
        await self.broker.publish(Envelope(topic=user_topic(user_id), frame=SESSION_REVOKED_FRAME))
        return report

    async def _erase(self, session: AsyncSession, user: User) -> ErasureReport:
        uid = user.id
        new_name = erased_username(uid)
        identities = list(
            await session.scalars(select(ChannelIdentity).where(ChannelIdentity.user_id == uid))
        )
        own_messages = list(await session.scalars(select(Message).where(Message.sender_id == uid)))
        owned = list(
            await session.scalars(select(Conversation).where(Conversation.owner_id == uid))
        )
        texts = {m.body for m in own_messages} | {
            m.corrected_body for m in own_messages if m.corrected_body
        }
        texts |= {c.user_rating_comment for c in owned if c.user_rating_comment}
        names = {user.username, user.display_name} | {i.external_id for i in identities}
        # Phone numbers show up without their "+" or "whatsapp:" prefix too.
        names |= {re.sub(r"\D", "", i.external_id) for i in identities}
        scrub = Scrubber.build(texts, names, new_name)

        user.username = new_name
        user.display_name = new_name
        user.password_hash = None
        user.is_active = False
        user.token_version += 1

        # A bot conversation is the person's alone: what the bot said there (which often quotes
        # them) goes with what they said.
        bot_conversations = {c.id for c in owned if c.kind is ConversationKind.bot}
        if bot_conversations:
            await session.execute(
                update(Message)
                .where(Message.conversation_id.in_(bot_conversations))
                .values(body=ERASED, corrected_body=None, client_id=None)
            )
        for message in own_messages:
            message.body = ERASED
            message.corrected_body = ERASED if message.corrected_body is not None else None
            message.client_id = None
        for conversation in owned:
            if conversation.user_rating_comment:
                conversation.user_rating_comment = ERASED
            conversation.title = scrub.text(conversation.title)
        for identity in identities:
            await session.delete(identity)
        await session.execute(
            update(BotState)
            .where(BotState.user_id == uid)
            .values(values={}, state=None, idle_deadline=None)
        )
        await session.execute(
            update(BotInteraction).where(BotInteraction.user_id == uid).values(keyword=ERASED)
        )
        for mute in await session.scalars(select(Mute).where(Mute.user_id == uid)):
            mute.reason = ERASED if mute.reason else ""

        # Other people's messages where they were: their names and quotes of them go, the same
        # way as in the event log, so history read from either agrees.
        after = 0
        while True:
            others = list(
                await session.scalars(
                    select(Message)
                    .where(
                        Message.conversation_id.in_(self._taken_part(uid)),
                        Message.sender_id != uid,
                        Message.id > after,
                    )
                    .order_by(Message.id)
                    .limit(BATCH)
                )
            )
            for message in others:
                message.body = scrub.text(message.body)
                if message.corrected_body is not None:
                    message.corrected_body = scrub.text(message.corrected_body)
            if len(others) < BATCH:
                break
            after = others[-1].id
        for annotation in await session.scalars(
            select(Annotation).where(Annotation.conversation_id.in_(self._taken_part(uid)))
        ):
            annotation.notes = scrub.text(annotation.notes)

        events = await self._scrub_events(session, uid, scrub, bot_conversations)
        records = await self._scrub_audit(session, uid, scrub)
        return ErasureReport(uid, len(own_messages), events, records)

    async def _scrub_events(
        self, session: AsyncSession, uid: int, scrub: Scrubber, bot_conversations: set[int]
    ) -> int:
        """Rewrite the payloads of events in conversations the person took part in."""
        theirs = self._taken_part(uid)
        changed, after = 0, 0
        while True:
            batch = list(
                await session.scalars(
                    select(Event)
                    .where(Event.conversation_id.in_(theirs), Event.id > after)
                    .order_by(Event.id)
                    .limit(BATCH)
                )
            )
            if not batch:
                return changed
            for event in batch:
                about_them = (
                    event.actor_id == uid
                    or event.payload.get("user_id") == uid
                    or event.conversation_id in bot_conversations
                )
                payload = scrub.value(event.payload, erase_keys=ABOUT_THEM if about_them else set())
                if payload != event.payload:
                    event.payload = payload
                    changed += 1
            after = batch[-1].id

    @staticmethod
    def _taken_part(uid: int) -> CompoundSelect[int]:
        """Ids of the conversations ``uid`` owned, held, joined or wrote in."""
        return (
            select(Participant.conversation_id)
            .where(Participant.user_id == uid)
            .union(
                select(Conversation.id).where(
                    or_(Conversation.owner_id == uid, Conversation.assignee_id == uid)
                ),
                select(Message.conversation_id).where(Message.sender_id == uid),
            )
        )

    async def _scrub_audit(self, session: AsyncSession, uid: int, scrub: Scrubber) -> int:
        """Audit records keep who did what, but not the person's text or names."""
        changed, after = 0, 0
        while True:
            batch = list(
                await session.scalars(
                    select(AuditRecord)
                    .where(AuditRecord.id > after)
                    .order_by(AuditRecord.id)
                    .limit(BATCH)
                )
            )
            if not batch:
                return changed
            for record in batch:
                about_them = (record.target_type == "user" and record.target_id == uid) or (
                    record.detail.get("sender_id") == uid
                )
                detail = scrub.value(record.detail, erase_keys=ABOUT_THEM if about_them else set())
                if detail != record.detail:
                    record.detail = detail
                    changed += 1
            after = batch[-1].id

    # -- download (A6) ----------------------------------------------------------------------

    async def export_own_data(self, actor: User) -> AsyncIterator[str]:
        """Everything chatforge holds about ``actor``, as chunks of one JSON document.

        Their profile, channel identities, conversations they own or took part in with the
        messages they wrote there, their ratings and reactions, bot state and bot interactions.
        Other people's messages are not included: they are not the actor's data. Streamed in
        batches, so a long history needs little memory.
        """
        uid = actor.id
        async with self.db.read() as session:
            user = await session.get(User, uid)
            if user is None:
                raise NotFound(f"No user {uid}.", code="user_not_found")
            profile = {
                "id": user.id,
                "username": user.username,
                "display_name": user.display_name,
                "role": user.role.value,
                "is_active": user.is_active,
                "created_at": user.created_at,
            }
            identities = [
                {"channel": i.channel, "external_id": i.external_id, "created_at": i.created_at}
                for i in await session.scalars(
                    select(ChannelIdentity)
                    .where(ChannelIdentity.user_id == uid)
                    .order_by(ChannelIdentity.id)
                )
            ]
            bot_states = [
                {"bot": s.bot, "state": s.state, "values": s.values, "channel": s.channel}
                for s in await session.scalars(
                    select(BotState).where(BotState.user_id == uid).order_by(BotState.id)
                )
            ]
            reactions = [
                {"message_id": r.message_id, "emoji": r.emoji, "created_at": r.created_at}
                for r in await session.scalars(
                    select(Reaction).where(Reaction.user_id == uid).order_by(Reaction.created_at)
                )
            ]
        yield '{"generated_at":' + _json(utcnow())
        yield ',"profile":' + _json(profile)
        yield ',"channel_identities":' + _json(identities)
        yield ',"bot_states":' + _json(bot_states)
        yield ',"reactions":' + _json(reactions)
        yield ',"conversations":['
        first = True
        async for conversation in self._conversations(uid):
            yield ("" if first else ",") + _json(conversation)
            first = False
        yield '],"bot_interactions":['
        first = True
        after = 0
        while True:
            async with self.db.read() as session:
                rows = list(
                    await session.scalars(
                        select(BotInteraction)
                        .where(BotInteraction.user_id == uid, BotInteraction.id > after)
                        .order_by(BotInteraction.id)
                        .limit(BATCH)
                    )
                )
            for row in rows:
                item = {
                    "bot": row.bot,
                    "channel": row.channel,
                    "keyword": row.keyword,
                    "outcome": row.outcome,
                    "counted": row.counted,
                    "created_at": row.created_at,
                }
                yield ("" if first else ",") + _json(item)
                first = False
            if len(rows) < BATCH:
                break
            after = rows[-1].id
        yield "]}"

    async def _conversations(self, uid: int) -> AsyncIterator[dict[str, Any]]:
        async with self.db.read() as session:
            ids = list(await session.scalars(self._taken_part(uid)))
        for conversation_id in sorted(ids):
            async with self.db.read() as session:
                conversation = await session.get(Conversation, conversation_id)
                if conversation is None:
                    continue
                messages = [
                    {
                        "id": m.id,
                        "seq": m.seq,
                        "body": m.body,
                        "recipient_id": m.recipient_id,
                        "reply_to": m.reply_to_id,
                        "created_at": m.created_at,
                        "deleted": m.deleted_at is not None,
                    }
                    for m in await session.scalars(
                        select(Message)
                        .where(Message.conversation_id == conversation_id, Message.sender_id == uid)
                        .order_by(Message.seq)
                    )
                ]
            owner = conversation.owner_id == uid
            yield {
                "id": conversation.id,
                "kind": conversation.kind.value,
                "status": conversation.status.value,
                "title": conversation.title,
                "topic_id": conversation.topic_id,
                "channel": conversation.channel,
                "your_role": "owner" if owner else "participant",
                "created_at": conversation.created_at,
                "ended_at": conversation.ended_at,
                "your_rating": (
                    {
                        "rating": conversation.user_rating.value,
                        "comment": conversation.user_rating_comment,
                    }
                    if owner and conversation.user_rating is not None
                    else None
                ),
                "your_messages": messages,
            }


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_default, separators=(",", ":"))


def _default(value: Any) -> Any:
    isoformat = getattr(value, "isoformat", None)
    if isoformat is not None:
        return isoformat()
    return str(value)
