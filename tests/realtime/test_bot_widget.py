"""The web chat widget's frames on a real server: ``bot_message`` -> ``bot_ack``, the bot's
replies as live events of the user's bot conversation, and a hand-off to the support queue."""

from __future__ import annotations

import httpx

from tests.realtime.client import ws_client
from tests.realtime.conftest import People
from tests.servers import LiveServer


async def test_the_bot_answers_as_events_of_the_users_bot_conversation(
    server: LiveServer, people: People
) -> None:
    async with ws_client(server, people.token(people.user)) as client:
        ack = await client.request(
            {"type": "bot_message", "body": "help", "client_id": "w-1"}, "bot_ack"
        )
        assert ack["client_id"] == "w-1"
        assert ack["duplicate"] is False
        assert ack["handoff_notice"] is None
        conversation_id = ack["conversation_id"]
        assert isinstance(conversation_id, int)

        subscribed = await client.request(
            {"type": "subscribe", "conversation_id": conversation_id, "after_seq": 0}, "subscribed"
        )
        assert subscribed["replayed"] == 3  # the question, the welcome and the help text
        mine = await client.expect("chat_message", seq=1)
        assert (mine["sender_id"], mine["body"]) == (people.user.id, "help")
        welcome = await client.expect("chat_message", seq=2)
        assert welcome["sender_name"] == "challenge"
        assert (await client.expect("chat_message", seq=3))["body"].startswith(
            "Send a category and a level"
        )

        # Live: the next exchange arrives without asking, in seq order.
        again = await client.request(
            {"type": "bot_message", "body": "cooking easy", "client_id": "w-2"}, "bot_ack"
        )
        assert again["conversation_id"] == conversation_id
        assert (await client.expect("chat_message", seq=4))["body"] == "cooking easy"
        assert "I don't know" in (await client.expect("chat_message", seq=5))["body"]

        # A resend after a reconnect is acknowledged again but handled once.
        resent = await client.request(
            {"type": "bot_message", "body": "cooking easy", "client_id": "w-2"}, "bot_ack"
        )
        assert resent["duplicate"] is True
        assert [f for f in await client.drain() if f["type"] == "chat_message"] == []


async def test_mentor_in_the_widget_opens_a_web_support_conversation(
    server: LiveServer, people: People
) -> None:
    async with (
        ws_client(server, people.token(people.moderator)) as moderator,
        ws_client(server, people.token(people.other_user)) as client,
    ):
        await moderator.request({"type": "subscribe_queue"}, "queue_updated")
        ack = await client.request(
            {"type": "bot_message", "body": "mentor", "client_id": "w-9"}, "bot_ack"
        )
        assert ack["handoff_notice"] == (
            "A mentor will answer you on the support page shortly; you are number 1 in the queue."
        )
        support_id = ack["support_conversation_id"]
        queue = await moderator.expect("queue_updated")
        [entry] = [c for c in queue["pending"] if c["id"] == support_id]
        assert entry["channel"] == "web"
        assert entry["owner"] == people.other_user.display_name

    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get(
            f"/api/conversations/{support_id}", headers=people.auth(people.other_user)
        )
        assert response.json()["status"] == "pending"


async def test_bad_widget_frames_get_error_frames(server: LiveServer, people: People) -> None:
    async with ws_client(server, people.token(people.user)) as client:
        empty = await client.request(
            {"type": "bot_message", "body": "  ", "client_id": "w-e"}, "error"
        )
        assert (empty["code"], empty["client_id"]) == ("empty_body", "w-e")
        long = await client.request({"type": "bot_message", "body": "x" * 4001}, "error")
        assert long["code"] == "body_too_long"
        extra = await client.request(
            {"type": "bot_message", "body": "hi", "conversation_id": 1}, "error"
        )
        assert extra["code"] == "invalid_frame"
