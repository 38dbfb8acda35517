"""The channel gateway: inbound messages to a bot or a conversation, outbound to the platform.

Inbound messages are handled in batches (:mod:`chatforge.store.group_commit`): every message
that arrives while the previous batch is being written joins the next one, and one write
transaction claims each platform message id (a retried webhook stops here, also when the retry
is in the same batch), finds or creates the senders' accounts, notes which users are in a
hand-off conversation, and runs the channels' bots for the others, with a few bulk statements
for the whole batch. The transaction is in two steps (``Database.steps``), one thread hop each
on SQLite: everything the batch reads (and the claims and new accounts), then, once the bots
have stepped, everything it writes. A caller is answered only once that transaction has
committed; then the bot's after-commit work runs, or the message is forwarded to the
conversation.

The web chat widget comes in through :meth:`ChannelGateway.receive_from` with the signed-in
user's own account (no channel identity) and the socket's ``client_id`` as the message id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from sqlalchemy import Select, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from chatforge.bots.registry import BotRegistry
from chatforge.bots.runtime import BotReply, BotRequest, BotRuntime, BotTransaction, Standings
from chatforge.bots.seams import HandoffDesk
from chatforge.channels.base import Channel, InboundMessage
from chatforge.channels.identity import Account, accounts_for_identities, external_id_of, normalize
from chatforge.store.bot_models import InboundMessage as InboundRow
from chatforge.store.bulk import among, padded
from chatforge.store.database import Database
from chatforge.store.group_commit import GroupCommit
from chatforge.store.models import Base, User
from chatforge.store.types import utcnow
from chatforge.store.write_lane import Statements

log = logging.getLogger(__name__)
_CLAIMS = Base.metadata.tables[InboundRow.__tablename__]
_NEW_CLAIM = insert(_CLAIMS)
_USERS = Base.metadata.tables[User.__tablename__]


@dataclass(slots=True)
class Delivery:
    """The result of one inbound message: replies to send back on the same channel."""

    duplicate: bool = False
    user_id: int | None = None
    external_id: str | None = None
    replies: list[str] = field(default_factory=list)
    # The hand-off's notice, when the bot passed the user to a human (also the last reply).
    handoff_notice: str | None = None
    # The conversation the message was forwarded to instead of the bot.
    forwarded_to: int | None = None


@dataclass(frozen=True, slots=True)
class _Inbound:
    """A message waiting for its batch: from a channel identity, or from a signed-in user."""

    message: InboundMessage
    external_id: str | None
    user_id: int | None = None


@dataclass(slots=True)
class _Handled:
    """What the batch's transaction decided for one message (acted on after the commit)."""

    delivery: Delivery
    reply: BotReply | None = None
    conversation_id: int | None = None


class ChannelGateway:
    def __init__(
        self,
        db: Database,
        registry: BotRegistry,
        runtime: BotRuntime,
        channels: Mapping[str, Channel],
    ) -> None:
        self.db = db
        self.registry = registry
        self.runtime = runtime
        self.channels = dict(channels)
        self.batches: GroupCommit[_Inbound, _Handled] = GroupCommit(
            self._commit, fallback=self._commit_alone, name="webhook-batches"
        )

    @property
    def handoff(self) -> HandoffDesk:
        return self.runtime.handoff

    async def close(self) -> None:
        """Handle the messages already queued, refuse new ones, and stop the batch writer."""
        await self.batches.close()

    async def receive(self, message: InboundMessage) -> Delivery:
        """Handle one inbound message once; raises ``Invalid`` for a malformed sender."""
        return await self._receive(_Inbound(message, normalize(message.channel, message.sender)))

    async def receive_from(self, user: User, message: InboundMessage) -> Delivery:
        """Handle a message of a signed-in ``user`` (the web widget) once per message id."""
        return await self._receive(_Inbound(message, None, user.id))

    async def _receive(self, inbound: _Inbound) -> Delivery:
        try:
            handled = await self.batches.submit(inbound)
        except IntegrityError as exc:
            # Another process wrote the same rows first (PostgreSQL): the same message id, or
            # a new sender's account or bot state. This transaction rolled back entirely, so
            # handling the message again is safe, and finds what the other one wrote.
            log.info("message %s handled again after %r", inbound.message.message_id, exc.orig)
            handled = await self.batches.submit(inbound)
        delivery, message = handled.delivery, inbound.message
        if handled.conversation_id is not None:
            await self.handoff.forward(
                handled.conversation_id,
                delivery.user_id or 0,
                message.text,
                client_id=f"{message.channel}:{message.message_id}"[:64],
            )
            delivery.forwarded_to = handled.conversation_id
        elif handled.reply is not None:
            delivery.handoff_notice = await self.runtime.after_commit(handled.reply)
            delivery.replies = list(handled.reply.replies)
        return delivery

    async def _commit(self, batch: Sequence[_Inbound]) -> list[_Handled]:
        """One write transaction for the batch; its events go out once it committed."""
        async with self.runtime.begin() as transaction:
            results = await self._handle_batch(transaction, batch)
        await self.runtime.published(transaction)
        return results

    async def _commit_alone(self, inbound: _Inbound) -> _Handled:
        """One message in a transaction of its own, after the batch it was in failed."""
        [handled] = await self._commit([inbound])
        return handled

    async def _handle_batch(
        self, transaction: BotTransaction, batch: Sequence[_Inbound]
    ) -> list[_Handled]:
        """Decide every message of a batch inside its write transaction."""
        now = self.runtime.clock()
        results, requests, answered, standings = await transaction.run(
            lambda statements: self._read(statements, batch, now)
        )
        if requests:
            replies = await self.runtime.step_and_store(transaction, requests, standings, now)
            for handled, reply in zip(answered, replies, strict=True):
                handled.reply = reply
        return results

    def _read(
        self, statements: Statements, batch: Sequence[_Inbound], now: datetime
    ) -> tuple[list[_Handled], list[BotRequest], list[_Handled], Standings]:
        """The batch's first step: claim its messages, find (or create) the senders' accounts
        and their hand-offs, and load what the bots need for the others."""
        fresh = _claim(statements, [inbound.message for inbound in batch])
        accounts = self._accounts(
            statements, [i for i, new in zip(batch, fresh, strict=True) if new]
        )
        results: list[_Handled] = []
        active: list[tuple[_Handled, _Inbound, Account]] = []
        for inbound, new in zip(batch, fresh, strict=True):
            account = accounts.get(_sender(inbound)) if new else None
            delivery = Delivery(
                duplicate=not new,
                user_id=account.id if account else inbound.user_id,
                external_id=inbound.external_id,
            )
            results.append(_Handled(delivery))
            if account is not None and account.is_active:
                active.append((results[-1], inbound, account))
        handoffs = self.handoff.conversations_for(
            statements, {account.id for _, _, account in active}
        )
        requests: list[BotRequest] = []
        answered: list[_Handled] = []
        for handled, inbound, account in active:
            handled.conversation_id = handoffs.get(account.id)
            bot = self.registry.for_channel(inbound.message.channel)
            if handled.conversation_id is None and bot is not None:
                requests.append(
                    BotRequest(bot, account, inbound.message.channel, inbound.message.text)
                )
                answered.append(handled)
        standings = self.runtime.load(statements, requests, now) if requests else {}
        return results, requests, answered, standings

    def _accounts(
        self, statements: Statements, batch: Sequence[_Inbound]
    ) -> dict[tuple[str, str | int], Account]:
        """The senders' accounts: found or created per channel identity, or the signed-in
        users' own (a user deleted meanwhile has none)."""
        accounts: dict[tuple[str, str | int], Account] = {}
        senders: dict[str, dict[str, str | None]] = {}
        user_ids: set[int] = set()
        for inbound in batch:
            if inbound.external_id is not None:
                wanted = senders.setdefault(inbound.message.channel, {})
                wanted.setdefault(inbound.external_id, inbound.message.profile_name)
            elif inbound.user_id is not None:
                user_ids.add(inbound.user_id)
        for channel, wanted in senders.items():
            found = accounts_for_identities(statements, channel, wanted)
            accounts.update(((channel, external_id), a) for external_id, a in found.items())
        if user_ids:
            size, ids = padded("id", user_ids)
            for user_id, name, is_active in statements.rows(_users_query(size), ids):
                accounts[("", user_id)] = Account(user_id, name, bool(is_active))
        return accounts

    async def send(self, user_id: int, channel: str, text: str) -> None:
        """Send ``text`` to a user on ``channel`` (the runtime's and moderators' outbox).

        Raises ``ChannelError`` when the platform refuses; logs and drops the message when the
        channel is not configured or the user has no identity on it.
        """
        sender = self.channels.get(channel)
        if sender is None:
            log.warning("no %s channel configured; message to user %s dropped", channel, user_id)
            return
        async with self.db.read() as session:
            external_id = await external_id_of(session, user_id, channel)
        if external_id is None:
            log.warning("user %s has no %s identity; message dropped", user_id, channel)
            return
        await sender.send_all(external_id, [text])


def _sender(inbound: _Inbound) -> tuple[str, str | int]:
    """The key of the sender's account in ``ChannelGateway._accounts``."""
    if inbound.external_id is not None:
        return (inbound.message.channel, inbound.external_id)
    return ("", inbound.user_id or 0)


@cache
def _users_query(size: int) -> Select[int, str, bool]:
    return select(_USERS.c.id, _USERS.c.display_name, _USERS.c.is_active).where(
        among(_USERS.c.id, "id", size)
    )


@cache
def _claimed_query(size: int) -> Select[str]:
    return select(_CLAIMS.c.message_id).where(
        _CLAIMS.c.channel == bindparam("channel"), among(_CLAIMS.c.message_id, "id", size)
    )


def _claim(statements: Statements, messages: Sequence[InboundMessage]) -> list[bool]:
    """Record the messages' ids as handled; False for each that already was (a retried webhook,
    or an earlier message of the same batch).

    In the caller's transaction: if the handling fails and rolls back, the claims go with it and
    the platform's retries are handled afresh. On SQLite the transaction holds the write lock, so
    nobody claims in between the look-up and the insert; on PostgreSQL a concurrent claim of the
    same id makes the insert fail, the batch is handled again message by message, and the
    look-up then finds it.
    """
    first: dict[tuple[str, str], int] = {}
    by_channel: dict[str, list[str]] = {}
    for index, message in enumerate(messages):
        key = (message.channel, message.message_id)
        if key not in first:
            first[key] = index
            by_channel.setdefault(message.channel, []).append(message.message_id)
    seen: set[tuple[str, str]] = set()
    for channel, message_ids in by_channel.items():
        size, ids = padded("id", message_ids)
        found = statements.rows(_claimed_query(size), {"channel": channel, **ids})
        seen.update((channel, message_id) for (message_id,) in found)
    now = utcnow()
    statements.run(
        _NEW_CLAIM,
        [
            {"channel": channel, "message_id": message_id, "received_at": now}
            for channel, message_id in first
            if (channel, message_id) not in seen
        ],
    )
    return [
        first[key] == index and key not in seen
        for index, key in enumerate((m.channel, m.message_id) for m in messages)
    ]
