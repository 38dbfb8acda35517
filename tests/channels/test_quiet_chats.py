"""A running server ends quiet bot chats by itself: a WhatsApp chat nobody writes to any more
becomes *done* (ready for the annotators), and the same user's next message starts a new one."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import select

from chatforge.app import create_app
from chatforge.settings import Settings
from chatforge.store.models import Conversation, ConversationKind, ConversationStatus
from tests.channels.test_twilio_whatsapp import messages, post
from tests.conftest import Api
from tests.platforms import whatsapp_form


def bot_chats(api: Api) -> list[tuple[int, ConversationStatus]]:
    async def read() -> list[tuple[int, ConversationStatus]]:
        async with api.ctx.db.read() as session:
            rows = await session.execute(
                select(Conversation.id, Conversation.status)
                .where(Conversation.kind == ConversationKind.bot)
                .order_by(Conversation.id)
            )
            return [(id, status) for id, status in rows]

    return api.call(read)


def test_the_server_ends_quiet_chats_and_opens_a_new_one_when_the_user_returns(
    settings: Settings,
) -> None:
    # Looked for every tenth of the idle limit: every 0.2 s.
    quick = settings.model_copy(update={"bot_chat_idle_minutes": 2 / 60})
    with TestClient(create_app(quick), base_url="http://testserver") as client:
        api = Api(client)
        assert messages(post(api, whatsapp_form("help", "+27820000401")))
        [(first, status)] = bot_chats(api)
        assert status is ConversationStatus.active

        deadline = time.monotonic() + 10
        while bot_chats(api) != [(first, ConversationStatus.done)]:
            assert time.monotonic() < deadline, bot_chats(api)
            time.sleep(0.05)

        assert messages(post(api, whatsapp_form("python easy", "+27820000401")))
        assert bot_chats(api)[0] == (first, ConversationStatus.done)
        assert bot_chats(api)[1][1] is ConversationStatus.active
