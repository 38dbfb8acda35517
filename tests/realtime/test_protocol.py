"""The /ws protocol against a real server process: every frame type, and delivery guarantees."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.realtime.client import WsClient, ws_client
from tests.realtime.conftest import People
from tests.servers import LiveServer


async def open_conversation(server: LiveServer, people: People) -> int:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post(
            "/api/conversations",
            json={"topic_id": people.topic_id},
            headers=people.auth(people.user),
        )
        assert response.status_code == 201, response.text
        conversation_id: int = response.json()["id"]
        claim = await http.post(
            f"/api/conversations/{conversation_id}/claim", headers=people.auth(people.moderator)
        )
        assert claim.status_code == 200, claim.text
        return conversation_id


async def stored_messages(server: LiveServer, people: People, conversation_id: int) -> list[Any]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get(
            f"/api/conversations/{conversation_id}/messages", headers=people.auth(people.user)
        )
        assert response.status_code == 200
        messages: list[Any] = response.json()
        return messages


async def subscribe(client: WsClient, conversation_id: int, after_seq: int = 0) -> dict[str, Any]:
    return await client.request(
        {"type": "subscribe", "conversation_id": conversation_id, "after_seq": after_seq},
        "subscribed",
    )


async def test_hello_and_ping(server: LiveServer, people: People) -> None:
    async with ws_client(server, people.token(people.user)) as client:
        assert client.frames[0]["user_id"] == people.user.id
        assert client.frames[0]["role"] == "user"
        pong = await client.request({"type": "ping", "nonce": "n1"}, "pong")
        assert pong["nonce"] == "n1"


async def test_compression_is_not_negotiated_by_default(server: LiveServer, people: People) -> None:
    # Per-message deflate would cost tens of KiB per socket (CHATFORGE_WS_COMPRESSION).
    async with ws_client(server, people.token(people.user), compression="deflate") as client:
        assert client.connection.response.headers.get("Sec-WebSocket-Extensions") is None


async def test_token_in_authorization_header(server: LiveServer, people: People) -> None:
    headers = {"Authorization": f"Bearer {people.token(people.user)}"}
    async with ws_client(server, additional_headers=headers) as client:
        assert client.frames[0]["user_id"] == people.user.id


@pytest.mark.parametrize("token", [None, "not-a-token"])
async def test_handshake_without_valid_credentials_is_refused(
    server: LiveServer, token: str | None
) -> None:
    url = server.ws_url + (f"?token={token}" if token else "")
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url):
            pass
    assert refused.value.response.status_code == 403


async def test_cookie_needs_our_origin(server: LiveServer, people: People) -> None:
    cookie = {"Cookie": f"cf_session={people.token(people.user)}"}
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(
            server.ws_url,
            additional_headers=cookie,
            origin="http://evil.example",  # type: ignore[arg-type]
        ):
            pass
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        async with websockets.connect(server.ws_url, additional_headers=cookie):
            pass  # no Origin at all: a cookie alone is not enough
    async with websockets.connect(
        server.ws_url,
        additional_headers=cookie,
        origin=server.url,  # type: ignore[arg-type]
    ) as connection:
        hello = json.loads(await connection.recv())
        assert hello["user_id"] == people.user.id


async def test_send_acks_after_commit_and_delivers(server: LiveServer, people: People) -> None:
    conversation_id = await open_conversation(server, people)
    async with (
        ws_client(server, people.token(people.user)) as user,
        ws_client(server, people.token(people.moderator)) as moderator,
    ):
        await subscribe(user, conversation_id)
        await subscribe(moderator, conversation_id)
        await user.send(
            {
                "type": "chat_message",
                "conversation_id": conversation_id,
                "body": "Hello <b>there</b>",
                "client_id": "m-1",
            }
        )
        ack = await user.expect("ack", client_id="m-1")
        # The ack means the message is committed: it is already in the database.
        stored = await stored_messages(server, people, conversation_id)
        assert [(m["id"], m["seq"], m["body"]) for m in stored] == [
            (ack["message_id"], ack["seq"], "Hello <b>there</b>")
        ]
        delivered = await moderator.expect("chat_message")
        assert delivered["seq"] == ack["seq"]
        assert delivered["message_id"] == ack["message_id"]
        assert delivered["sender_id"] == people.user.id
        assert delivered["body"] == "Hello <b>there</b>"


async def test_messages_sent_back_to_back_keep_their_order(
    server: LiveServer, people: People
) -> None:
    conversation_id = await open_conversation(server, people)
    async with ws_client(server, people.token(people.user)) as user:
        # No waiting for acks: the server takes several messages at once (one group commit),
        # yet numbers them in the order they were sent.
        for n in range(25):
            await user.send(
                {
                    "type": "chat_message",
                    "conversation_id": conversation_id,
                    "body": f"burst {n}",
                    "client_id": f"burst-{n}",
                }
            )
        # A frame of another kind waits for the messages before it.
        await user.send({"type": "ping", "nonce": "after"})
        acks = [await user.expect("ack", client_id=f"burst-{n}") for n in range(25)]
        assert [ack["seq"] for ack in acks] == sorted(ack["seq"] for ack in acks)
        await user.expect("pong", nonce="after")
        frames = [f for f in user.frames if f["type"] in ("ack", "pong")]
        assert frames[-1] == {"type": "pong", "nonce": "after"}
    stored = await stored_messages(server, people, conversation_id)
    assert [m["body"] for m in stored] == [f"burst {n}" for n in range(25)]


async def test_resend_with_same_client_id_is_idempotent(server: LiveServer, people: People) -> None:
    conversation_id = await open_conversation(server, people)
    async with ws_client(server, people.token(people.user)) as user:
        frame = {
            "type": "chat_message",
            "conversation_id": conversation_id,
            "body": "once",
            "client_id": "same",
        }
        first = await user.request(frame, "ack")
        second = await user.request(frame, "ack")
        assert (second["seq"], second["message_id"]) == (first["seq"], first["message_id"])
        assert second["duplicate"] is True
    assert len(await stored_messages(server, people, conversation_id)) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [("x" * 4001, "body_too_long"), ("   ", "empty_body"), ("a\x00b", "invalid_body")],
)
async def test_bad_bodies_get_an_error_and_are_not_stored(
    server: LiveServer, people: People, body: str, code: str
) -> None:
    conversation_id = await open_conversation(server, people)
    async with ws_client(server, people.token(people.user)) as user:
        await user.send(
            {
                "type": "chat_message",
                "conversation_id": conversation_id,
                "body": body,
                "client_id": "bad",
            }
        )
        error = await user.expect("error")
        assert error["code"] == code
        assert error["client_id"] == "bad"
    assert await stored_messages(server, people, conversation_id) == []


async def test_exactly_4000_characters_is_accepted(server: LiveServer, people: People) -> None:
    conversation_id = await open_conversation(server, people)
    async with ws_client(server, people.token(people.user)) as user:
        await user.send(
            {
                "type": "chat_message",
                "conversation_id": conversation_id,
                "body": "y" * 4000,
                "client_id": "max",
            }
        )
        await user.expect("ack", client_id="max")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "unknown_type"),
        ('{"type": "launch_rockets"}', "unknown_type"),
        ('{"type": "subscribe", "conversation_id": "1"}', "invalid_frame"),
        ('{"type": "subscribe", "conversation_id": -4}', "invalid_frame"),
        ('{"type": "subscribe", "conversation_id": 99999999999}', "invalid_frame"),
        ('{"type": "chat_message", "conversation_id": 1, "body": 5}', "invalid_frame"),
        ('{"type": "ping", "surprise": true}', "invalid_frame"),
    ],
)
async def test_malformed_frames_get_error_frames(
    server: LiveServer, people: People, raw: str, code: str
) -> None:
    async with ws_client(server, people.token(people.user)) as client:
        await client.connection.send(raw)
        error = await client.expect("error")
        assert error["code"] == code
        # The socket stays usable after an error.
        await client.request({"type": "ping"}, "pong")


async def test_frame_over_64_kib_closes_the_socket(server: LiveServer, people: People) -> None:
    async with ws_client(server, people.token(people.user)) as client:
        await client.connection.send("x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await client.next()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009


async def test_foreign_conversation_is_refused_and_stays_silent(
    server: LiveServer, people: People
) -> None:
    conversation_id = await open_conversation(server, people)
    async with ws_client(server, people.token(people.other_user)) as intruder:
        await intruder.send({"type": "subscribe", "conversation_id": conversation_id})
        error = await intruder.expect("error")
        assert error["code"] == "not_a_participant"
        await intruder.send(
            {
                "type": "chat_message",
                "conversation_id": conversation_id,
                "body": "let me in",
                "client_id": "x",
            }
        )
        assert (await intruder.expect("error"))["code"] == "not_a_participant"
        await intruder.send({"type": "typing_start", "conversation_id": conversation_id})
        assert (await intruder.expect("error"))["code"] == "not_subscribed"
        async with ws_client(server, people.token(people.user)) as user:
            await user.request(
                {
                    "type": "chat_message",
                    "conversation_id": conversation_id,
                    "body": "private",
                    "client_id": "p",
                },
                "ack",
            )
        leaked = [f for f in await intruder.drain() if f.get("conversation_id") == conversation_id]
        assert leaked == []
    assert [m["body"] for m in await stored_messages(server, people, conversation_id)] == [
        "private"
    ]


async def test_unknown_conversation_is_not_found(server: LiveServer, people: People) -> None:
    async with ws_client(server, people.token(people.user)) as client:
        await client.send({"type": "subscribe", "conversation_id": 2**31 - 1})
        assert (await client.expect("error"))["code"] == "conversation_not_found"


async def test_resume_after_disconnect_gets_exactly_the_missed_events(
    server: LiveServer, people: People
) -> None:
    conversation_id = await open_conversation(server, people)
    async with ws_client(server, people.token(people.user)) as user:
        subscribed = await subscribe(user, conversation_id)
        await user.request(
            {
                "type": "chat_message",
                "conversation_id": conversation_id,
                "body": "before",
                "client_id": "b",
            },
            "ack",
        )
        seen = await user.expect("chat_message")
        last_seq = seen["seq"]
        assert last_seq == subscribed["last_seq"] + 1
    async with ws_client(server, people.token(people.moderator)) as moderator:
        for n in range(3):
            await moderator.request(
                {
                    "type": "chat_message",
                    "conversation_id": conversation_id,
                    "body": f"missed {n}",
                    "client_id": f"m{n}",
                },
                "ack",
            )
    async with ws_client(server, people.token(people.user)) as user:
        resumed = await subscribe(user, conversation_id, after_seq=last_seq)
        assert resumed["replayed"] == 3
        replay = [await user.expect("chat_message") for _ in range(3)]
        assert [f["body"] for f in replay] == ["missed 0", "missed 1", "missed 2"]
        assert [f["seq"] for f in replay] == [last_seq + 1, last_seq + 2, last_seq + 3]
        assert [f for f in await user.drain() if f.get("type") == "chat_message"] == []


async def test_subscribing_while_messages_flow_has_no_gap_or_duplicate(
    server: LiveServer, people: People
) -> None:
    conversation_id = await open_conversation(server, people)
    total = 60

    async def flood(moderator: WsClient) -> None:
        for n in range(total):
            await moderator.send(
                {
                    "type": "chat_message",
                    "conversation_id": conversation_id,
                    "body": f"n{n}",
                    "client_id": f"f{n}",
                }
            )
            # Paced so the subscribe lands mid-flow, within the test server's replay cap (20):
            # messages are stored faster than they arrive.
            await asyncio.sleep(0.003)
        for _ in range(total):
            await moderator.expect("ack")

    async with (
        ws_client(server, people.token(people.moderator)) as moderator,
        ws_client(server, people.token(people.user)) as user,
    ):
        sender = asyncio.create_task(flood(moderator))
        await asyncio.sleep(0.02)
        await subscribe(user, conversation_id, after_seq=0)
        await sender
        frames = [f for f in await user.drain(0.5) if f.get("conversation_id") == conversation_id]
    seqs = [f["seq"] for f in frames if "seq" in f]
    assert seqs == list(range(1, seqs[-1] + 1)), "every event once, in order"
    bodies = [f["body"] for f in frames if f["type"] == "chat_message"]
    assert bodies == [f"n{n}" for n in range(total)]


async def test_too_large_a_gap_asks_for_resync(server: LiveServer, people: People) -> None:
    conversation_id = await open_conversation(server, people)  # the server's replay cap is 20
    async with ws_client(server, people.token(people.moderator)) as moderator:
        for n in range(21):
            await moderator.request(
                {
                    "type": "chat_message",
                    "conversation_id": conversation_id,
                    "body": f"{n}",
                    "client_id": f"r{n}",
                },
                "ack",
            )
    async with ws_client(server, people.token(people.user)) as user:
        await user.send({"type": "subscribe", "conversation_id": conversation_id, "after_seq": 0})
        resync = await user.expect("resync_required")
        assert resync["conversation_id"] == conversation_id
        assert resync["last_seq"] == 23  # opened, claimed, 21 messages
        # Resuming from a recent seq works.
        await subscribe(user, conversation_id, after_seq=resync["last_seq"] - 2)
        assert [(await user.expect("chat_message"))["body"] for _ in range(2)] == ["19", "20"]


async def test_typing_reaches_others_and_expires(server: LiveServer, people: People) -> None:
    conversation_id = await open_conversation(server, people)
    async with (
        ws_client(server, people.token(people.user)) as user,
        ws_client(server, people.token(people.moderator)) as moderator,
    ):
        await subscribe(user, conversation_id)
        await subscribe(moderator, conversation_id)
        await user.send({"type": "typing_start", "conversation_id": conversation_id})
        start = await moderator.expect("typing_start")
        assert start["user_id"] == people.user.id
        assert "seq" not in start  # ephemeral, not logged
        # The server's typing TTL is 1 s here: the stop comes by itself.
        stop = await moderator.expect("typing_stop", within=3)
        assert stop["user_id"] == people.user.id
        assert [f for f in await user.drain() if f["type"].startswith("typing")] == []
        await moderator.send({"type": "typing_start", "conversation_id": conversation_id})
        await user.expect("typing_start")
        await moderator.send({"type": "typing_stop", "conversation_id": conversation_id})
        await user.expect("typing_stop", within=0.5)


async def test_typing_stops_when_the_typist_disconnects(server: LiveServer, people: People) -> None:
    conversation_id = await open_conversation(server, people)
    async with ws_client(server, people.token(people.moderator)) as moderator:
        await subscribe(moderator, conversation_id)
        async with ws_client(server, people.token(people.user)) as user:
            await subscribe(user, conversation_id)
            await user.send({"type": "typing_start", "conversation_id": conversation_id})
            await moderator.expect("typing_start")
        await moderator.expect("typing_stop", within=0.8)


async def test_moderators_see_the_queue_live(server: LiveServer, people: People) -> None:
    async with ws_client(server, people.token(people.moderator)) as moderator:
        await moderator.send({"type": "subscribe_queue"})
        await moderator.expect("queue_updated")
        async with httpx.AsyncClient(base_url=server.url) as http:
            opened = await http.post(
                "/api/conversations",
                json={"topic_id": people.topic_id},
                headers=people.auth(people.user),
            )
            conversation_id = opened.json()["id"]
            snapshot = await moderator.expect("queue_updated")
            while conversation_id not in [c["id"] for c in snapshot["pending"]]:
                snapshot = await moderator.expect("queue_updated")
            await http.post(
                f"/api/conversations/{conversation_id}/claim",
                headers=people.auth(people.other_moderator),
            )
            snapshot = await moderator.expect("queue_updated")
            while conversation_id not in [c["id"] for c in snapshot["active"]]:
                snapshot = await moderator.expect("queue_updated")
            assert conversation_id not in [c["id"] for c in snapshot["pending"]]


async def test_users_cannot_watch_the_queue(server: LiveServer, people: People) -> None:
    async with ws_client(server, people.token(people.user)) as user:
        await user.send({"type": "subscribe_queue"})
        assert (await user.expect("error"))["code"] == "forbidden"


async def test_waiting_user_gets_position_and_sees_the_claim(
    server: LiveServer, people: People
) -> None:
    async with (
        ws_client(server, people.token(people.user)) as user,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        opened = await http.post(
            "/api/conversations",
            json={"topic_id": people.topic_id},
            headers=people.auth(people.user),
        )
        conversation_id = opened.json()["id"]
        position = await user.expect("queue_position", conversation_id=conversation_id)
        assert position["position"] >= 1
        assert position["estimated_wait_seconds"] >= 0
        await subscribe(user, conversation_id)
        await http.post(
            f"/api/conversations/{conversation_id}/claim", headers=people.auth(people.moderator)
        )
        update = await user.expect("conversation_updated", status="active")
        assert update["assignee_id"] == people.moderator.id


async def test_users_see_moderators_come_online(server: LiveServer, people: People) -> None:
    async with ws_client(server, people.token(people.user)) as user:
        async with ws_client(server, people.token(people.other_moderator)):
            came = await user.expect("presence")
            assert came["moderators_online"] >= 1
        went = await user.expect("presence")
        assert went["moderators_online"] == came["moderators_online"] - 1


async def test_unsubscribe_stops_delivery(server: LiveServer, people: People) -> None:
    conversation_id = await open_conversation(server, people)
    async with (
        ws_client(server, people.token(people.user)) as user,
        ws_client(server, people.token(people.moderator)) as moderator,
    ):
        await subscribe(user, conversation_id)
        await user.request(
            {"type": "unsubscribe", "conversation_id": conversation_id}, "unsubscribed"
        )
        await moderator.request(
            {
                "type": "chat_message",
                "conversation_id": conversation_id,
                "body": "gone",
                "client_id": "u",
            },
            "ack",
        )
        assert [f for f in await user.drain() if f.get("type") == "chat_message"] == []
