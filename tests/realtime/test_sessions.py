"""Live session rooms over /ws against a real server: every session frame and its rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from tests.realtime.client import WsClient, ws_client
from tests.realtime.conftest import People
from tests.servers import LiveServer


@dataclass
class Room:
    id: int
    instructor: WsClient
    alice: WsClient
    bob: WsClient


async def create_room(server: LiveServer, people: People) -> int:
    async with httpx.AsyncClient(base_url=server.url) as http:
        created = await http.post(
            "/api/sessions", json={"title": "Live"}, headers=people.auth(people.moderator)
        )
        assert created.status_code == 201, created.text
        room_id: int = created.json()["id"]
        for user in (people.user, people.other_user):
            joined = await http.post(f"/api/sessions/{room_id}/join", headers=people.auth(user))
            assert joined.status_code == 200
        return room_id


@asynccontextmanager
async def room(server: LiveServer, people: People) -> AsyncIterator[Room]:
    """A room with the moderator as instructor and two users, all three subscribed."""
    room_id = await create_room(server, people)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(ws_client(server, people.token(user)))
            for user in (people.moderator, people.user, people.other_user)
        ]
        for client in clients:
            await client.request(
                {"type": "subscribe", "conversation_id": room_id, "after_seq": 0}, "subscribed"
            )
            await client.drain(0.1)
        yield Room(room_id, *clients)


async def act(client: WsClient, frame: dict[str, Any]) -> dict[str, Any]:
    """Send a room action and return its ``done`` answer (or fail on ``error``)."""
    await client.send(frame)
    while True:
        answer = await client.next()
        if answer["type"] == "error":
            raise AssertionError(answer)
        if answer["type"] == "done" and answer["action"] == frame["type"]:
            return answer


async def say(client: WsClient, room_id: int, body: str, **extra: Any) -> dict[str, Any]:
    await client.send({"type": "chat_message", "conversation_id": room_id, "body": body, **extra})
    return await client.expect_any("ack", "error")


def _types(frames: list[dict[str, Any]]) -> list[str]:
    return [f["type"] for f in frames]


async def test_join_and_leave_reach_everyone_live(server: LiveServer, people: People) -> None:
    async with (
        room(server, people) as r,
        ws_client(server, people.token(people.annotator)) as late,
    ):
        answer = await act(late, {"type": "join_session", "conversation_id": r.id})
        assert answer["conversation_id"] == r.id
        joined = await r.alice.expect("user_joined", user_id=people.annotator.id)
        assert joined["role"] == "member"
        await r.instructor.expect("user_joined", user_id=people.annotator.id)
        await late.request(
            {"type": "subscribe", "conversation_id": r.id, "after_seq": 0}, "subscribed"
        )
        await act(late, {"type": "leave_session", "conversation_id": r.id})
        left = await r.bob.expect("user_left")
        assert left["user_id"] == people.annotator.id
        # Having left, the socket no longer receives the room.
        await say(r.instructor, r.id, "after the leave")
        assert "chat_message" not in _types(await late.drain(0.3))


async def test_private_message_reaches_only_its_audience_live_and_on_replay(
    server: LiveServer, people: People
) -> None:
    async with room(server, people) as r:
        ack = await say(r.alice, r.id, "Can you repeat?", recipient_id=people.moderator.id)
        assert ack["type"] == "ack"
        seen = await r.instructor.expect("private_message")
        assert seen["body"] == "Can you repeat?"
        assert (await r.alice.expect("private_message"))["seq"] == ack["seq"]
        await say(r.instructor, r.id, "Public again")
        bob_frames = await r.bob.drain(0.5)
        assert _types(bob_frames).count("chat_message") == 1
        assert "private_message" not in _types(bob_frames)
        assert "Can you repeat?" not in str(bob_frames)
    # A reconnecting Bob replays from before the private message: still not there.
    async with ws_client(server, people.token(people.other_user)) as bob:
        subscribed = await bob.request(
            {"type": "subscribe", "conversation_id": r.id, "after_seq": ack["seq"] - 1},
            "subscribed",
        )
        replay = await bob.drain(0.3)
        assert subscribed["replayed"] == len(replay) == 1
        assert _types(replay) == ["chat_message"]


async def test_reactions_toggle_for_everyone(server: LiveServer, people: People) -> None:
    async with room(server, people) as r:
        ack = await say(r.instructor, r.id, "Thumbs up if clear")
        frame = {
            "type": "reaction_added",
            "conversation_id": r.id,
            "message_id": ack["message_id"],
            "emoji": "👍",
        }
        done = await act(r.alice, frame)
        added = await r.bob.expect("reaction_added")
        assert (added["user_id"], added["emoji"], added["count"]) == (people.user.id, "👍", 1)
        assert added["seq"] == done["seq"]
        await act(r.alice, frame)  # the same frame again takes it back
        removed = await r.instructor.expect("reaction_removed")
        assert (removed["user_id"], removed["count"]) == (people.user.id, 0)
        await r.alice.send({**frame, "emoji": "🙂", "client_id": "r1"})
        error = await r.alice.expect("error")
        assert (error["code"], error["client_id"]) == ("invalid_emoji", "r1")


async def test_reactions_over_the_limit_get_rate_limited(
    server: LiveServer, people: People
) -> None:
    async with room(server, people) as r:
        ids = [(await say(r.instructor, r.id, f"m{n}"))["message_id"] for n in range(3)]
        toggles = 0
        for mid in ids:
            for emoji in ("👍", "👏", "❤️", "🔥"):
                if toggles < 10:
                    await act(
                        r.alice,
                        {
                            "type": "reaction_added",
                            "conversation_id": r.id,
                            "message_id": mid,
                            "emoji": emoji,
                        },
                    )
                    toggles += 1
        await r.alice.send(
            {"type": "reaction_added", "conversation_id": r.id, "message_id": ids[2], "emoji": "🔥"}
        )
        error = await r.alice.expect("error")
        assert error["code"] == "rate_limited"
        assert 1 <= error["retry_after"] <= 60


async def test_hands_raise_lower_and_acknowledge(server: LiveServer, people: People) -> None:
    async with room(server, people) as r:
        await act(r.bob, {"type": "hand_raised", "conversation_id": r.id})
        raised = await r.instructor.expect("hand_raised")
        assert raised["user_id"] == people.other_user.id
        await r.alice.expect("hand_raised")
        await r.alice.send(
            {"type": "hand_lowered", "conversation_id": r.id, "user_id": people.other_user.id}
        )
        assert (await r.alice.expect("error"))["code"] == "not_instructor"
        await act(
            r.instructor,
            {"type": "acknowledge_hand", "conversation_id": r.id, "user_id": people.other_user.id},
        )
        assert (await r.bob.expect("hand_acknowledged"))["user_id"] == people.other_user.id
        await act(
            r.instructor,
            {"type": "hand_lowered", "conversation_id": r.id, "user_id": people.other_user.id},
        )
        lowered = await r.bob.expect("hand_lowered")
        assert lowered["lowered_by"] == people.moderator.id


async def test_delete_and_mute_by_the_instructor(server: LiveServer, people: People) -> None:
    async with room(server, people) as r:
        ack = await say(r.alice, r.id, "spam spam")
        await r.alice.send(
            {"type": "delete_message", "conversation_id": r.id, "message_id": ack["message_id"]}
        )
        assert (await r.alice.expect("error"))["code"] == "not_instructor"
        await act(
            r.instructor,
            {"type": "delete_message", "conversation_id": r.id, "message_id": ack["message_id"]},
        )
        assert (await r.bob.expect("message_deleted"))["message_id"] == ack["message_id"]

        await act(
            r.instructor,
            {
                "type": "mute_user",
                "conversation_id": r.id,
                "user_id": people.user.id,
                "duration_minutes": 5,
                "reason": "Spam",
            },
        )
        muted = await r.alice.expect("user_muted")
        assert (muted["user_id"], muted["reason"], muted["automatic"]) == (
            people.user.id,
            "Spam",
            False,
        )
        refused = await say(r.alice, r.id, "but...", client_id="m1")
        assert refused["type"] == "error"
        assert (refused["code"], refused["client_id"]) == ("muted", "m1")
        assert 290 <= refused["retry_after"] <= 300
        assert "Spam" in refused["message"]
        await act(
            r.instructor,
            {"type": "unmute_user", "conversation_id": r.id, "user_id": people.user.id},
        )
        await r.bob.expect("user_unmuted", user_id=people.user.id)
        assert (await say(r.alice, r.id, "thanks"))["type"] == "ack"


async def test_profanity_is_censored_live_and_third_strike_mutes(
    server: LiveServer, people: People
) -> None:
    async with room(server, people) as r:
        await say(r.alice, r.id, "oh shit")
        censored = await r.bob.expect("chat_message")
        assert censored["body"] == "oh ****"
        assert censored["censored"] is True
        await say(r.alice, r.id, "shit again")
        await say(r.alice, r.id, "fuck this")
        muted = await r.bob.expect("user_muted")
        assert (muted["user_id"], muted["automatic"]) == (people.user.id, True)
        assert (await say(r.alice, r.id, "sorry"))["code"] == "muted"


async def test_messages_over_the_rate_limit_are_refused_and_not_stored(
    server: LiveServer, people: People
) -> None:
    async with room(server, people) as r:
        for n in range(5):
            assert (await say(r.alice, r.id, f"m{n}"))["type"] == "ack"
        refused = await say(r.alice, r.id, "m5", client_id="over")
        assert (refused["type"], refused["code"]) == ("error", "rate_limited")
        assert 1 <= refused["retry_after"] <= 10
        bodies = [f["body"] for f in await r.bob.drain(0.3) if f["type"] == "chat_message"]
        assert bodies == [f"m{n}" for n in range(5)]
        for n in range(7):  # instructors are exempt
            assert (await say(r.instructor, r.id, f"i{n}"))["type"] == "ack"


async def test_slow_mode(server: LiveServer, people: People) -> None:
    async with room(server, people) as r:
        await act(r.instructor, {"type": "set_slow_mode", "conversation_id": r.id, "seconds": 30})
        assert (await r.alice.expect("slow_mode_changed"))["seconds"] == 30
        assert (await say(r.alice, r.id, "first"))["type"] == "ack"
        refused = await say(r.alice, r.id, "second")
        assert refused["code"] == "slow_mode"
        assert 25 <= refused["retry_after"] <= 30
        assert (await say(r.instructor, r.id, "i1"))["type"] == "ack"
        assert (await say(r.instructor, r.id, "i2"))["type"] == "ack"


async def test_typing_in_a_room_stops_when_the_typist_drops(
    server: LiveServer, people: People
) -> None:
    room_id = await create_room(server, people)
    async with ws_client(server, people.token(people.moderator)) as instructor:
        await instructor.request(
            {"type": "subscribe", "conversation_id": room_id, "after_seq": 0}, "subscribed"
        )
        async with ws_client(server, people.token(people.user)) as alice:
            await alice.request(
                {"type": "subscribe", "conversation_id": room_id, "after_seq": 0}, "subscribed"
            )
            await alice.send({"type": "typing_start", "conversation_id": room_id})
            await instructor.expect("typing_start", user_id=people.user.id)
        await instructor.expect("typing_stop", within=0.8, user_id=people.user.id)
