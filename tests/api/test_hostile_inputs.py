"""Hostile input through REST and the WebSocket: every one gets a precise 4xx or ``error`` frame
(never a 5xx or a dropped socket), markup is stored and served back as the very same text, and a
refused request stores nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from chatforge.store.models import Message, Role, User
from tests.conftest import Api
from tests.factories import make_topic

MARKUP = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1)) <a href='javascript:alert(1)'>x</a>",
    '"><svg onload=alert(1)>',
]
MEGABYTE = "x" * 1_000_000
NESTED = "[" * 10_000 + "]" * 10_000
NESTED_OBJECT = '{"a":' * 10_000 + "1" + "}" * 10_000


@dataclass
class Room:
    api: Api
    user: User
    conversation_id: int
    headers: dict[str, str]

    def stored(self) -> int:
        async def run() -> int:
            async with self.api.ctx.db.read() as session:
                found = await session.scalar(select(func.count()).select_from(Message))
                return int(found or 0)

        return self.api.call(run)


@pytest.fixture
def room(api: Api) -> Room:
    user, moderator, admin = api.user(), api.user(Role.moderator), api.user(Role.admin)
    topic = api.call(make_topic, api.ctx, admin, None, "")
    conversation = api.call(api.ctx.support.open, user, topic.id).conversation.id
    api.call(api.ctx.support.claim, moderator, conversation)
    return Room(api, user, conversation, api.auth(user))


@pytest.mark.parametrize("text", MARKUP)
def test_markup_is_stored_and_served_back_as_text(room: Room, text: str) -> None:
    api, path = room.api, f"/api/conversations/{room.conversation_id}/messages"
    sent = api.client.post(path, json={"body": text}, headers=room.headers)
    assert sent.status_code == 201, sent.text
    [message] = api.client.get(path, headers=room.headers).json()
    assert message["body"] == text
    api.client.patch("/api/me", json={"display_name": text[:64]}, headers=room.headers)
    assert api.client.get("/api/me", headers=room.headers).json()["display_name"] == text[:64]


# (what, how to send it, the status and code wanted)
Send = Callable[[Room], Any]


def post_json(body: Any) -> Send:
    def send(room: Room) -> Any:
        return room.api.client.post(
            f"/api/conversations/{room.conversation_id}/messages",
            content=body if isinstance(body, bytes | str) else json.dumps(body),
            headers={**room.headers, "Content-Type": "application/json"},
        )

    return send


def get(path: str) -> Send:
    return lambda room: room.api.client.get(path, headers=room.headers)


REST_CASES: list[tuple[str, Send, int, str]] = [
    ("1 MB body", post_json({"body": MEGABYTE}), 413, "too_large"),
    (
        "1 MB raw request",
        post_json(b'{"body": "' + MEGABYTE.encode() * 2 + b'"}'),
        413,
        "too_large",
    ),
    ("NUL in body", post_json({"body": "a\x00b"}), 422, "invalid_body"),
    ("only spaces", post_json({"body": " \n\t "}), 422, "empty_body"),
    ("invalid UTF-8", post_json(b'{"body": "\xff\xfe\xc3("}'), 400, "bad_request"),
    ("raw binary", post_json(bytes(range(256))), 422, "invalid"),
    ("10,000 nested arrays", post_json(NESTED), 400, "bad_request"),
    ("10,000 nested objects", post_json(NESTED_OBJECT), 400, "bad_request"),
    ("body is a number", post_json({"body": 12}), 422, "invalid"),
    ("body is a list", post_json({"body": ["hi"]}), 422, "invalid"),
    ("body missing", post_json({}), 422, "invalid"),
    ("not an object", post_json([1, 2]), 422, "invalid"),
    ("unknown field", post_json({"body": "hi", "admin": True}), 422, "invalid"),
    (
        "client_id with NUL",
        post_json({"body": "hi", "client_id": "a\x00"}),
        422,
        "invalid_client_id",
    ),
    ("negative recipient", post_json({"body": "hi", "recipient_id": -1}), 422, "invalid"),
    ("huge recipient", post_json({"body": "hi", "recipient_id": 2**80}), 422, "invalid"),
    ("negative conversation id", get("/api/conversations/-1"), 422, "invalid"),
    ("huge conversation id", get("/api/conversations/" + "9" * 40), 422, "invalid"),
    ("id is text", get("/api/conversations/abc"), 422, "invalid"),
    ("missing conversation", get("/api/conversations/2147483647"), 404, "conversation_not_found"),
    ("huge after_seq", get("/api/conversations/1/events?after_seq=" + "9" * 40), 422, "invalid"),
    ("negative limit", get("/api/conversations/1/events?limit=-5"), 422, "invalid"),
    ("huge user id", get("/api/users/" + "9" * 30), 422, "invalid"),
    ("script as a path id", get("/api/users/<script>"), 422, "invalid"),
]


@pytest.mark.parametrize(
    ("send", "status", "code"),
    [pytest.param(send, status, code, id=what) for what, send, status, code in REST_CASES],
)
def test_hostile_rest_input_gets_a_precise_refusal(
    room: Room, send: Send, status: int, code: str
) -> None:
    before = room.stored()
    response = send(room)
    assert response.status_code == status, response.text[:300]
    assert response.json()["code"] == code
    assert room.stored() == before


WS_CASES: list[tuple[str, str | bytes, str]] = [
    ("not JSON", "<script>alert(1)</script>", "bad_json"),
    ("10,000 nested arrays", NESTED, "bad_json"),
    ("10,000 nested objects", NESTED_OBJECT, "bad_json"),
    ("binary frame", b"\xff\xfe\x00\x01", "bad_json"),
    ("a list", "[1, 2]", "unknown_type"),
    ("unknown type", '{"type": "<img src=x onerror=alert(1)>"}', "unknown_type"),
    ("1 MB body", json.dumps({"type": "chat_message", "conversation_id": 0, "body": MEGABYTE}), ""),
    ("NUL in body", '{"type": "chat_message", "conversation_id": 0, "body": "a\\u0000b"}', ""),
    (
        "body is a number",
        '{"type": "chat_message", "conversation_id": 0, "body": 5}',
        "invalid_frame",
    ),
    (
        "negative id",
        '{"type": "chat_message", "conversation_id": -1, "body": "hi"}',
        "invalid_frame",
    ),
    (
        "huge id",
        '{"type": "chat_message", "conversation_id": 1' + "0" * 30 + ', "body": "hi"}',
        "invalid_frame",
    ),
    ("id is text", '{"type": "subscribe", "conversation_id": "1; drop table"}', "invalid_frame"),
]


def test_hostile_websocket_frames_get_error_frames_and_the_socket_lives(room: Room) -> None:
    api = room.api
    before = room.stored()
    expected_body_codes = {"1 MB body": "invalid_frame", "NUL in body": "invalid_body"}
    with api.client.websocket_connect("/ws", headers=room.headers) as ws:
        assert ws.receive_json()["type"] == "hello"
        for what, frame, code in WS_CASES:
            text = frame if isinstance(frame, str) else None
            if text is not None and '"conversation_id": 0' in text:
                text = text.replace(
                    '"conversation_id": 0', f'"conversation_id": {room.conversation_id}'
                )
            if text is None:
                ws.send_bytes(frame)  # type: ignore[arg-type]
            else:
                ws.send_text(text)
            answer = ws.receive_json()
            while answer["type"] != "error":
                answer = ws.receive_json()
            assert answer["code"] == (code or expected_body_codes[what]), (what, answer)
        # Still alive and well after all that.
        ws.send_json({"type": "ping", "nonce": "after"})
        answer = ws.receive_json()
        assert answer == {"type": "pong", "nonce": "after"}
    assert room.stored() == before
