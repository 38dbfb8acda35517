"""Each HTTP answer's head and body leave in one write (web/http_protocol.py), and nothing else
about uvicorn's protocol changes: late bodies, streaming, closing and WebSocket upgrades."""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from chatforge.realtime.wire import DirectFrameProtocol
from chatforge.web import http_protocol
from chatforge.web.http_protocol import (
    LINGER_BYTES,
    MAX_HEAD_BYTES,
    ChatforgeHttpProtocol,
    CoalescedWrites,
)


class RecordingTransport:
    """The part of an asyncio transport uvicorn's protocols use, recording every write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.ended = False  # write_eof: our side of the stream is finished
        self.protocol: Any = None

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        assert not self.ended, "write after write_eof"
        self.writes.append(bytes(data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.ended = True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol


def coalesced_writes() -> tuple[CoalescedWrites, RecordingTransport]:
    raw = RecordingTransport()
    return CoalescedWrites(raw, asyncio.get_running_loop()), raw  # type: ignore[arg-type]


async def next_step() -> None:
    """Let the event loop run everything already scheduled, twice over."""
    for _ in range(2):
        await asyncio.sleep(0)


async def test_writes_in_one_step_leave_as_one() -> None:
    coalesced, raw = coalesced_writes()
    coalesced.write(b"HTTP/1.1 200 OK\r\n\r\n")
    coalesced.write(b"body")
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    await next_step()
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]


async def test_a_lone_write_leaves_at_the_next_step() -> None:
    coalesced, raw = coalesced_writes()
    coalesced.write(bytearray(b"head"))
    assert raw.writes == []
    await next_step()
    assert raw.writes == [b"head"]


async def test_close_sends_what_is_held_first_and_later_writes_are_dropped() -> None:
    coalesced, raw = coalesced_writes()
    coalesced.write(b"last words")
    coalesced.close()
    assert raw.writes == [b"last words"] and raw.closed
    coalesced.write(b"too late")
    await next_step()
    assert raw.writes == [b"last words"]


async def test_write_eof_sends_what_is_held_first() -> None:
    coalesced, raw = coalesced_writes()
    coalesced.write(b"last answer")
    coalesced.write_eof()
    assert raw.writes == [b"last answer"] and raw.ended and not raw.closed


async def test_other_attributes_are_the_transports_own() -> None:
    coalesced, _ = coalesced_writes()
    assert coalesced.get_extra_info("peername") == ("127.0.0.1", 50000)
    assert coalesced.is_closing() is False


async def late_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app that streams: the head, then two chunks with a pause in between."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    await asyncio.sleep(0.05)
    await send({"type": "http.response.body", "body": b"second"})


async def fixed(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


def protocol_for(app: Any) -> tuple[ChatforgeHttpProtocol, RecordingTransport]:
    config = uvicorn.Config(
        app, http=ChatforgeHttpProtocol, ws=DirectFrameProtocol, lifespan="off", log_level="error"
    )
    config.load()
    protocol = ChatforgeHttpProtocol(
        config=config,
        server_state=ServerState(),
        app_state={},
        _loop=asyncio.get_running_loop(),
    )
    raw = RecordingTransport()
    protocol.connection_made(raw)  # type: ignore[arg-type]
    return protocol, raw


async def test_uvicorn_sends_a_whole_answer_in_one_write() -> None:
    protocol, raw = protocol_for(fixed)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await asyncio.sleep(0.01)
    [answer] = raw.writes
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nok")
    # Keep-alive: the next request on the connection is answered the same way.
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    await asyncio.sleep(0.01)
    assert len(raw.writes) == 2 and raw.writes[1].endswith(b"ok") and raw.closed


async def test_a_streamed_body_is_not_held_back() -> None:
    protocol, raw = protocol_for(late_body)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await asyncio.sleep(0.02)
    # The head and the first chunk went out together, without waiting for the second.
    [first] = raw.writes
    assert b"transfer-encoding: chunked" in first and first.endswith(b"5\r\nfirst\r\n")
    await asyncio.sleep(0.08)
    assert raw.writes[1:] == [b"6\r\nsecond\r\n0\r\n\r\n"]


async def test_an_upgraded_websocket_writes_to_the_socket_itself() -> None:
    protocol, raw = protocol_for(fixed)
    key = base64.b64encode(os.urandom(16))
    protocol.data_received(
        b"GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-key: " + key + b"\r\nsec-websocket-version: 13\r\n\r\n"
    )
    assert isinstance(raw.protocol, DirectFrameProtocol)
    assert raw.protocol.transport is raw


async def test_pipelined_requests_are_answered_in_order() -> None:
    async def echo_path(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = scope["path"].encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    protocol, raw = protocol_for(echo_path)
    protocol.data_received(
        b"GET /first HTTP/1.1\r\nhost: x\r\n\r\nGET /second HTTP/1.1\r\nhost: x\r\n\r\n"
    )
    await asyncio.sleep(0.02)
    answers = b"".join(raw.writes)
    assert answers.count(b"HTTP/1.1 200 OK") == 2
    assert answers.index(b"/first") < answers.index(b"/second")
    assert answers.endswith(b"\r\n\r\n/second")


async def test_expect_100_continue_is_sent_before_the_body_is_read() -> None:
    async def read_then_answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": message["body"]})

    protocol, raw = protocol_for(read_then_answer)
    protocol.data_received(
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n"
    )
    await asyncio.sleep(0.02)
    assert raw.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    protocol.data_received(b"hello")
    await asyncio.sleep(0.02)
    assert raw.writes[1].startswith(b"HTTP/1.1 200 OK") and raw.writes[1].endswith(
        b"hello\r\n0\r\n\r\n"
    )


async def test_a_request_head_over_the_cap_gets_a_431_and_the_connection_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol, raw = protocol_for(fixed)
    head = b"GET / HTTP/1.1\r\nhost: x\r\nx-filler: "
    # Sent in pieces, as a client trickling a huge header would: refused once past the cap,
    # without waiting for the head to end.
    protocol.data_received(head)
    room = MAX_HEAD_BYTES - len(head)
    for start in range(0, room, 4096):
        protocol.data_received(b"a" * min(4096, room - start))
    await next_step()
    assert raw.writes == [] and not raw.closed  # exactly at the cap: still reading
    protocol.data_received(b"a")
    [answer] = raw.writes
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert answer.endswith(b"\r\n\r\nRequest head too large.")
    assert "request head over 16384 bytes" in caplog.text
    # Our side ends after the 431, but the socket stays open for a moment: closing it with the
    # client's bytes unread would reset the connection and lose the 431 on the client's side.
    assert raw.ended and not raw.closed


async def test_a_refused_connection_drops_what_follows_then_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_protocol, "LINGER_SECONDS", 0.05)
    protocol, raw = protocol_for(fixed)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * MAX_HEAD_BYTES)
    assert raw.ended and len(raw.writes) == 1
    # The rest of the head, and even a whole request after it: read, dropped, never answered.
    protocol.data_received(b"a" * 100_000 + b"\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await asyncio.sleep(0.01)
    assert len(raw.writes) == 1 and not raw.closed
    await asyncio.sleep(0.1)
    assert raw.closed


async def test_a_refused_connection_sending_too_much_is_closed_at_once() -> None:
    protocol, raw = protocol_for(fixed)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * MAX_HEAD_BYTES)
    for _ in range(LINGER_BYTES // 65536):
        protocol.data_received(b"a" * 65536)
    assert not raw.closed  # exactly LINGER_BYTES dropped: still reading
    protocol.data_received(b"a")
    assert raw.closed and len(raw.writes) == 1


async def test_heads_under_the_cap_and_large_bodies_are_served() -> None:
    protocol, raw = protocol_for(read_body)
    filler = b"a" * (MAX_HEAD_BYTES - 200)
    body = b"b" * (4 * MAX_HEAD_BYTES)
    # A head just under the cap, then a body far over it, in one chunk and then in pieces.
    request = b"POST / HTTP/1.1\r\nhost: x\r\nx-filler: " + filler + b"\r\n"
    request += b"content-length: %d\r\n\r\n" % len(body)
    protocol.data_received(request + body[:1000])
    for start in range(1000, len(body), 8192):
        protocol.data_received(body[start : start + 8192])
    await asyncio.sleep(0.02)
    [answer] = raw.writes
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"%d" % len(body))
    assert not raw.closed


async def read_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, then answers with its length."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    text = b"%d" % size
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"%d" % len(text))],
        }
    )
    await send({"type": "http.response.body", "body": text})


@pytest.mark.parametrize(
    "headers",
    [
        b"x-big: " + b"a" * MAX_HEAD_BYTES + b"\r\n",
        b"".join(b"x-h%d: %s\r\n" % (n, b"a" * 100) for n in range(200)),
    ],
    ids=["one huge header", "many headers"],
)
async def test_a_whole_oversized_head_in_one_read_is_refused_before_the_app_runs(
    headers: bytes,
) -> None:
    called: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        called.append(scope)

    protocol, raw = protocol_for(app)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n" + headers + b"\r\n")
    await asyncio.sleep(0.01)
    assert called == []
    [answer] = raw.writes
    assert answer.startswith(b"HTTP/1.1 431 ") and raw.ended
