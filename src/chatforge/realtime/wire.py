"""Server WebSocket frames built once per event, and written straight to each socket.

Fan-out is the hottest path of a chat server: one event, thousands of sockets. Sending through
ASGI costs, per recipient, a chain of awaits through every middleware layer and a fresh frame
encoding in the WebSocket library. Instead, chatforge encodes an event's text frame once
(:func:`text_frame`: server frames are not masked, so the same bytes are valid on every socket)
and writes those bytes to each recipient's transport.

The writing needs the transport, which ASGI hides: :class:`DirectFrameProtocol` is uvicorn's
sans-I/O WebSocket protocol with one addition, a :class:`FrameWriter` placed in the connection's
ASGI scope under :data:`FRAME_WRITER`. Everything else (handshake, reading, ping/pong, close)
stays uvicorn's. Under a server without it (Starlette's test client, another ASGI server) the
endpoint falls back to ``send_text`` through a per-socket queue.

Frames from the writer and uvicorn's own frames (pongs, close) never interleave half-way: both
write whole frames from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

FRAME_WRITER = "chatforge.frame_writer"
"""The key of the :class:`FrameWriter` in a WebSocket scope's ``extensions``."""

SEND_BUFFER_LIMIT = 1 << 20
"""Bytes a socket may have waiting in its transport before it counts as too slow, unless the
app sets ``FrameWriter.limit`` (``CHATFORGE_WS_SEND_BUFFER_BYTES``): past it the socket is
closed with 1013 and the client resumes from its last ``seq`` when it reconnects, instead of
this process buffering without bound."""

_TEXT = 0x81  # FIN + text opcode


def text_frame(text: str) -> bytes:
    """The unmasked, uncompressed server frame carrying ``text`` (RFC 6455 section 5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((_TEXT, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", _TEXT, 126, size) + payload
    return struct.pack("!BBQ", _TEXT, 127, size) + payload


class FrameWriter:
    """Writes prebuilt frames to one socket's transport, without awaiting."""

    __slots__ = ("_protocol", "limit")

    def __init__(self, protocol: DirectFrameProtocol) -> None:
        self._protocol = protocol
        self.limit = SEND_BUFFER_LIMIT

    @property
    def open(self) -> bool:
        protocol = self._protocol
        return not (protocol.close_sent or protocol.disconnected)

    def write(self, frame: bytes) -> bool:
        """Queue ``frame`` on the transport; False when the socket is too far behind.

        A closed or closing socket swallows the frame: its receive loop is about to end and the
        hub forgets it then.
        """
        protocol = self._protocol
        if protocol.close_sent or protocol.disconnected:
            return True
        transport = protocol.transport
        if transport.get_write_buffer_size() > self.limit:
            return False
        transport.write(frame)
        return True

    def close(self, code: int) -> None:
        """Start the closing handshake after what is buffered, as uvicorn's own close does.

        The connection stays readable until the client answers (closing it at once would reset
        it and could destroy frames the client has not read yet); a client that does not answer
        within the close timeout, typically one too slow to read at all, is cut off.
        """
        protocol = self._protocol
        if protocol.close_sent or protocol.disconnected:
            return
        protocol.queue.put_nowait({"type": "websocket.disconnect", "code": code})
        protocol.conn.send_close(code)
        protocol.transport.write(b"".join(protocol.conn.data_to_send()))
        protocol.close_sent = True
        if protocol.read_paused:
            protocol.read_paused = False
            protocol.transport.resume_reading()
        protocol.close_timer = protocol.loop.call_later(
            protocol.close_timeout, protocol.transport.abort
        )


class DirectFrameProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, offering a :class:`FrameWriter` to the app.

    It also holds less per connection, since idle sockets are what fills a chat server's memory:
    a plain deque-and-future inbox and writable flag instead of an ``asyncio.Queue`` and
    ``Event`` (each carries several deques), and no handshake request or response once the
    socket is accepted.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue: Any = Inbox()
        self.writable: Any = Flag()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: Any = getattr(self, "scope", None)
        if scope is not None:  # None when the handshake was refused before reaching the app
            scope["extensions"][FRAME_WRITER] = FrameWriter(self)

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and hasattr(self, "response"):
            # The websockets parser's generator keeps the request alive for the life of the
            # connection; its headers, at least, can go.
            self.request.headers.clear()
            del self.request, self.response


class Inbox:
    """The receive queue uvicorn needs (``put_nowait``, ``get``, ``empty``), without bounds."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        # A list, not a deque: it rarely holds more than one event, and an empty deque
        # allocates a 600-byte block up front.
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class Flag:
    """An ``asyncio.Event`` for one waiter at a time (uvicorn's ``send`` awaits writability)."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = True
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        while not self._set:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
