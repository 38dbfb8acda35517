"""Inbound channel messages handled in batches (one write transaction for many webhooks): each
message still gets its own answer, only after the commit; a message that cannot be stored fails
alone; a retried message id is handled once; quotas, bot states and transcripts come out as if
every message had had a transaction of its own."""

from __future__ import annotations

import asyncio
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterable, Sequence
from itertools import count
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from chatforge.bots.runtime import BotTransaction
from chatforge.bots.seams import Exchange
from chatforge.channels.base import InboundMessage
from chatforge.channels.gateway import Delivery
from chatforge.context import AppContext, build_context
from chatforge.realtime.envelope import Envelope
from chatforge.settings import Settings, load_settings
from chatforge.store.bot_models import BotInteraction, BotState
from chatforge.store.bot_models import InboundMessage as InboundRow
from chatforge.store.models import ChannelIdentity, Conversation, ConversationKind, Event, Message
from chatforge.store.write_lane import Statements, WriteLane
from tests.channels.test_twilio_whatsapp import PATH, URL, post
from tests.channels.test_twilio_whatsapp import count as count_rows
from tests.clock import ManualClock
from tests.conftest import Api
from tests.platforms import TWILIO_TOKEN, twilio_signature, whatsapp_form
from tests.servers import SECRET

_sids = count(1)


def whatsapp(text: str, number: str = "+27820000001", sid: str | None = None) -> InboundMessage:
    return InboundMessage(
        channel="whatsapp",
        message_id=sid or f"SM{next(_sids):032x}",
        sender=f"whatsapp:{number}",
        text=text,
        profile_name="Thandi",
    )


async def one_batch(ctx: AppContext, messages: Sequence[InboundMessage]) -> list[Any]:
    """Hand ``messages`` to the gateway at once, and check they made a single first batch.

    ``receive`` queues its message before it first waits, so every message below is queued
    before the writer task runs.
    """
    started = []

    async def spy(transaction: BotTransaction, batch: Sequence[Any]) -> Any:
        started.append(len(batch))
        return await handle(transaction, batch)

    handle = ctx.channels._handle_batch
    ctx.channels._handle_batch = spy  # type: ignore[method-assign]
    try:
        results = await asyncio.gather(
            *(ctx.channels.receive(m) for m in messages), return_exceptions=True
        )
    finally:
        del ctx.channels._handle_batch  # the class's own again
    assert started[0] == len(messages)
    return results


async def rows(ctx: AppContext, statement: Any) -> list[Any]:
    async with ctx.db.read() as session:
        return list(await session.execute(statement))


def refuse_poison(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the transcript fail any batch holding a message "poison", as a storage error would."""
    transcript = ctx.bot_runtime.transcript
    record = transcript.record

    def refusing(statements: Statements, exchanges: Sequence[Exchange]) -> list[Envelope]:
        if any(exchange.inbound == "poison" for exchange in exchanges):
            raise RuntimeError("this message cannot be stored")
        return record(statements, exchanges)

    monkeypatch.setattr(transcript, "record", refusing)


async def total(ctx: AppContext, model: type) -> int:
    async with ctx.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_batch_answers_every_message_with_its_own_replies(ctx: AppContext) -> None:
    numbers = [f"+2782100{i:04d}" for i in range(12)]
    deliveries = await one_batch(ctx, [whatsapp("python easy", n) for n in numbers])
    assert len({d.user_id for d in deliveries}) == 12
    for delivery, number in zip(deliveries, numbers, strict=True):
        assert isinstance(delivery, Delivery) and delivery.external_id == number
        welcome, challenge = delivery.replies
        assert welcome.startswith("Hi!")
        assert challenge.startswith("Python · easy") and "4 challenges left" in challenge
    logged = await rows(ctx, select(BotInteraction.user_id, BotInteraction.counted))
    assert sorted(logged) == sorted((d.user_id, True) for d in deliveries)
    # Each user's transcript: their message, then the bot's two replies, seq 1 to 3.
    transcripts = await rows(
        ctx, select(Message.conversation_id, Message.seq, Message.body).order_by(Message.id)
    )
    by_conversation: dict[int, list[tuple[int, str]]] = {}
    for conversation_id, seq, body in transcripts:
        by_conversation.setdefault(conversation_id, []).append((seq, body))
    assert len(by_conversation) == 12
    for lines in by_conversation.values():
        assert [seq for seq, _ in lines] == [1, 2, 3]
        assert lines[0][1] == "python easy"


async def test_events_are_published_after_the_commit_in_seq_order(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[tuple[Envelope, bool]] = []
    publish = ctx.log.publish

    async def watch(envelopes: Iterable[Envelope]) -> None:
        envelopes = list(envelopes)
        stored = await total(ctx, Event)
        published.extend((envelope, stored >= len(envelopes)) for envelope in envelopes)
        await publish(envelopes)

    monkeypatch.setattr(ctx.log, "publish", watch)
    one = "+27821110001"
    await one_batch(ctx, [whatsapp(text, one) for text in ("hi", "python easy", "sql hard")])
    assert published and all(visible for _, visible in published)
    assert [envelope.seq for envelope, _ in published] == list(range(1, len(published) + 1))
    events = await rows(ctx, select(Event.seq, Event.payload).order_by(Event.seq))
    messages = await rows(ctx, select(Message.seq, Message.id, Message.body).order_by(Message.seq))
    assert [(seq, p["message_id"], p["body"]) for seq, p in events] == [tuple(m) for m in messages]


async def test_a_message_that_cannot_be_stored_fails_alone(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    refuse_poison(ctx, monkeypatch)
    poison = whatsapp("poison", "+27822220002")
    good = [whatsapp("python easy", "+27822220001"), whatsapp("help", "+27822220003")]
    first, failed, last = await one_batch(ctx, [good[0], poison, good[1]])

    assert isinstance(failed, RuntimeError)
    assert first.replies[1].startswith("Python · easy")
    assert last.replies[1].startswith("Send a category and a level")
    assert "batch of 3 failed" in caplog.text and "retrying one by one" in caplog.text
    # Nothing of the failed message: no claim, no account, no interaction, no transcript.
    claimed = await rows(ctx, select(InboundRow.message_id))
    assert sorted(sid for (sid,) in claimed) == sorted(m.message_id for m in good)
    identities = await rows(ctx, select(ChannelIdentity.external_id))
    assert "+27822220002" not in {external_id for (external_id,) in identities}
    assert await total(ctx, BotInteraction) == 2
    assert "poison" not in {body for (body,) in await rows(ctx, select(Message.body))}

    # Twilio retries it: once it can be stored, it is handled as new.
    monkeypatch.undo()
    retried = await ctx.channels.receive(poison)
    assert not retried.duplicate
    assert retried.replies[1].startswith("I don't know “poison”")


async def test_a_retried_message_id_is_handled_once_also_within_one_batch(
    ctx: AppContext,
) -> None:
    message = whatsapp("python easy", "+27823330001")
    deliveries = await one_batch(ctx, [message] * 5)
    handled = [d for d in deliveries if not d.duplicate]
    assert len(handled) == 1 and len(handled[0].replies) == 2
    assert all(d.replies == [] for d in deliveries if d.duplicate)
    assert (await ctx.channels.receive(message)).duplicate
    assert await total(ctx, InboundRow) == 1
    assert await total(ctx, BotInteraction) == 1
    # One run of the bot: one inbound line and its two replies in the transcript.
    assert await total(ctx, Message) == 3


async def test_the_quota_is_exact_when_one_user_floods_a_batch(ctx: AppContext) -> None:
    clock = ManualClock()
    ctx.bot_runtime.clock = clock
    one = "+27824440001"
    texts = ["python easy"] * 7 + ["help", "sql hard", "stats easy"]
    deliveries = await one_batch(ctx, [whatsapp(text, one) for text in texts])
    answers = [d.replies[-1] for d in deliveries]
    assert deliveries[0].replies[0].startswith("Hi!")  # the first message only
    assert all(len(d.replies) == 1 for d in deliveries[1:])
    for left, answer in zip([4, 3, 2, 1, 0], answers, strict=False):
        suffix = "s" if left != 1 else ""
        assert f"({left} challenge{suffix} left in this 24 h window)" in answer
    refusals = [answers[5], answers[6], answers[8], answers[9]]
    assert all(a.startswith("You have had your 5 challenges") for a in refusals)
    assert answers[7].startswith("Send a category and a level")
    assert await total(ctx, BotInteraction) == 10
    counted = await rows(ctx, select(func.count()).where(BotInteraction.counted.is_(True)))
    assert counted == [(5,)]

    # Another batch: still refused, until the first counted request leaves the window.
    later = await one_batch(ctx, [whatsapp("sql easy", one), whatsapp("sql easy", one)])
    assert all(d.replies[0].startswith("You have had your 5") for d in later)
    clock.advance(hours=24, seconds=1)
    fresh = await one_batch(ctx, [whatsapp("sql easy", one), whatsapp("sql easy", one)])
    assert [d.replies[0].startswith("Sql · easy") for d in fresh] == [True, True]


@pytest.fixture
async def quiz(settings: Settings) -> AsyncIterator[AppContext]:
    """The gateway with the test quiz bot (states, stored values, a failing input) on WhatsApp."""
    config = load_settings(
        data_dir=settings.data_dir,
        secret_key=SECRET,
        public_url=settings.public_url,
        bot_modules="tests.bots.sample_bots",
        channel_bots="whatsapp=quiz",
    )
    context = build_context(config)
    try:
        yield context
    finally:
        await context.close()


async def test_one_users_messages_in_a_batch_step_the_bot_in_order(
    quiz: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    one = "+27825550001"
    texts = ["hello", "quiz", "1", "boom", "2"]
    deliveries = await one_batch(quiz, [whatsapp(text, one) for text in texts])
    assert [d.replies for d in deliveries] == [
        ["You are in the lobby.", "Send quiz to start."],
        ["Quiz time. You have 60 seconds per answer."],
        ["noted 1 (1 so far)"],
        ["Sorry, something went wrong on our side. Please try again in a moment."],
        ["noted 2 (2 so far)"],
    ]
    assert "the quiz handler broke" in caplog.text
    [(state, values)] = await rows(quiz, select(BotState.state, BotState.values))
    assert (state, values) == ("quiz", {"answers": ["1", "2"]})
    logged = await rows(
        quiz, select(BotInteraction.keyword, BotInteraction.outcome).order_by(BotInteraction.id)
    )
    assert logged[3] == ("boom", "error")
    assert len(logged) == 5
    # The transcript numbers every line of the batch in order, without gaps.
    [conversation] = await rows(
        quiz, select(Conversation.id, Conversation.last_seq, Conversation.kind)
    )
    assert conversation[2] is ConversationKind.bot
    seqs = await rows(quiz, select(Message.seq).order_by(Message.id))
    assert [seq for (seq,) in seqs] == list(range(1, conversation[1] + 1))


# -- over HTTP --------------------------------------------------------------------------------


def twiml(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [node.text or "" for node in ET.fromstring(response.text).findall("Message")]


def test_no_answer_goes_out_for_a_message_whose_transaction_did_not_commit(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    end = WriteLane._end

    def refuse(lane: WriteLane, command: str) -> None:
        # The write lane's COMMIT fails as SQLite's does when the disk does: rolled back.
        if command == "COMMIT":
            end(lane, "ROLLBACK")
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))
        end(lane, command)

    form = whatsapp_form("python easy", sender="+27826660001")
    with monkeypatch.context() as patch:
        patch.setattr(WriteLane, "_end", refuse)
        refused = post(api, form)
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "try_again"
    for model in (InboundRow, BotInteraction, ChannelIdentity, Message):
        assert count_rows(api, model) == 0, model
    # Twilio's retry of the same MessageSid is handled as new.
    welcome, challenge = twiml(post(api, form))
    assert welcome.startswith("Hi!") and challenge.startswith("Python · easy")


def test_concurrent_webhooks_are_each_answered_and_a_failing_one_gets_a_5xx(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse_poison(api.ctx, monkeypatch)
    forms = [whatsapp_form("python easy", sender=f"+2782777{i:04d}") for i in range(8)]
    forms[3] = whatsapp_form("poison", sender="+27827779999")

    async def send_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=api.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://chat.example.org") as c:
            return await asyncio.gather(
                *(
                    c.post(
                        PATH,
                        content=urlencode(form),
                        headers={
                            "Content-Type": "application/x-www-form-urlencoded",
                            "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, URL, form),
                        },
                    )
                    for form in forms
                )
            )

    responses = api.call(send_all)
    assert responses[3].status_code == 500
    assert responses[3].json()["code"] == "internal_error"
    for i, response in enumerate(responses):
        if i != 3:
            assert twiml(response)[1].startswith("Python · easy"), i
    assert count_rows(api, BotInteraction) == 7


async def test_a_broker_failure_after_the_commit_still_answers_and_stores_once(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def away(envelope: Envelope) -> None:
        raise ConnectionError("broker away")

    monkeypatch.setattr(ctx.broker, "publish", away)
    [delivery] = await one_batch(ctx, [whatsapp("python easy", "+27829990001")])
    assert isinstance(delivery, Delivery)
    assert delivery.replies[1].startswith("Python · easy")
    # Committed is committed: the batch was not handled again because publishing failed.
    assert await total(ctx, BotInteraction) == 1
    assert "after a commit failed" in caplog.text
