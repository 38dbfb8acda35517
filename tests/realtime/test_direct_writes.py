"""Frames written straight to the transport (realtime/wire.py): their encoding, clients that
negotiated compression, and a client too slow to read being cut off without slowing others."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from chatforge.realtime.wire import text_frame
from tests.realtime.client import ws_client
from tests.realtime.conftest import People
from tests.realtime.test_protocol import open_conversation, subscribe
from tests.servers import LiveServer, chatforge_server

SEND_BUFFER = 16 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with chatforge_server(
        tmp_path_factory.mktemp("direct"),
        CHATFORGE_WS_COMPRESSION="true",
        CHATFORGE_WS_SEND_BUFFER_BYTES=str(SEND_BUFFER),
        CHATFORGE_WS_FRAMES_PER_SECOND="1000",
        CHATFORGE_WS_FRAME_BURST="1000",
    ) as live:
        yield live


def parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frames_of_every_length_encoding_parse_back(size: int) -> None:
    text = "é" * (size // 2) + "x" * (size % 2)
    frame = parse(text_frame(text))
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert not (frame.rsv1 or frame.rsv2 or frame.rsv3)
    assert frame.data.decode() == text


def test_the_length_uses_the_shortest_form() -> None:
    assert text_frame("x" * 125)[:2] == bytes((0x81, 125))
    assert text_frame("x" * 126)[:4] == bytes((0x81, 126, 0, 126))
    assert text_frame("x" * 65536)[:2] == bytes((0x81, 127))


async def post(client: Any, conversation_id: int, body: str, client_id: str) -> None:
    await client.send(
        {
            "type": "chat_message",
            "conversation_id": conversation_id,
            "body": body,
            "client_id": client_id,
        }
    )


async def test_a_client_with_compression_reads_the_shared_frames(
    server: LiveServer, people: People
) -> None:
    conversation_id = await open_conversation(server, people)
    async with (
        ws_client(server, people.token(people.user)) as user,
        ws_client(server, people.token(people.moderator), compression="deflate") as moderator,
    ):
        # This server offers per-message deflate (CHATFORGE_WS_COMPRESSION) and the client took
        # it; fan-out frames are sent uncompressed, which the extension allows per message.
        extensions = moderator.connection.response.headers.get("Sec-WebSocket-Extensions")
        assert extensions is not None and "permessage-deflate" in extensions
        await subscribe(moderator, conversation_id)
        await post(user, conversation_id, "ünïcode " * 100, "c-1")
        delivered = await moderator.expect("chat_message")
        assert delivered["body"] == "ünïcode " * 100
        # Frames answering this socket's own requests take the same path.
        pong = await moderator.request({"type": "ping", "nonce": "n"}, "pong")
        assert pong["nonce"] == "n"


class RawClient:
    """A WebSocket client on a plain socket with a tiny receive window, reading only when told.

    (Client libraries read in the background; this one lets the server's buffers fill.)
    """

    def __init__(self, server: LiveServer, token: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", server.port))
        self.sock.settimeout(15)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.reader = StreamReader()
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_text(self, text: str) -> None:
        mask = os.urandom(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(text.encode()))
        assert len(payload) < 126
        self.sock.sendall(bytes((0x81, 0x80 | len(payload))) + mask + payload)

    def frame(self) -> Frame:
        while True:
            parser = Frame.parse(self.reader.read_exact, mask=False)
            # Parse what is buffered; read more from the socket when it is not a whole frame.
            snapshot = bytes(self.reader.buffer)
            try:
                next(parser)
            except StopIteration as done:
                frame: Frame = done.value
                return frame
            self.reader.buffer[:] = snapshot
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.reader.feed_data(data)


async def test_a_client_that_stops_reading_is_closed_and_others_get_everything(
    server: LiveServer, people: People
) -> None:
    conversation_id = await open_conversation(server, people)
    stalled = RawClient(server, people.token(people.moderator))
    assert b'"hello"' in stalled.frame().data
    stalled.send_text(f'{{"type":"subscribe","conversation_id":{conversation_id}}}')
    while b'"subscribed"' not in stalled.frame().data:
        pass  # presence and queue notices come first
    # 16 KB frames (4,000 four-byte characters): enough of them fill the kernel's socket
    # buffers and then the server's own.
    body = "\U0001f600" * 4000
    count = 400
    async with (
        ws_client(server, people.token(people.user)) as user,
        ws_client(server, people.token(people.moderator)) as reader,
    ):
        await subscribe(reader, conversation_id)
        sent = 0
        while "closing slow socket" not in server.log.read_text():
            assert sent < count, "the stalled socket was never closed"
            await post(user, conversation_id, body, f"s-{sent}")
            await user.expect("ack", within=10)
            sent += 1
        seqs = [(await reader.expect("chat_message", within=10))["seq"] for _ in range(sent)]
        assert seqs == list(range(seqs[0], seqs[0] + sent))
    # The stalled socket reads again: what the server had buffered, then a 1013 close.
    received = 0  # the frame that found its buffer full, and any later one, never went out
    while (frame := stalled.frame()).opcode is Opcode.TEXT:
        received += b'"chat_message"' in frame.data
    stalled.sock.close()
    assert frame.opcode is Opcode.CLOSE
    assert int.from_bytes(frame.data[:2], "big") == 1013
    assert 0 < received < sent
    # Nothing was lost for it: resuming from the last seq it saw replays the rest.
    async with ws_client(server, people.token(people.moderator)) as resumed:
        replay = await subscribe(resumed, conversation_id, after_seq=seqs[0] - 1 + received)
        assert replay["last_seq"] == seqs[-1]
