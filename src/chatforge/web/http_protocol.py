"""uvicorn's HTTP protocol as ``chatforge serve`` runs it: one write per answer, capped heads.

uvicorn writes an answer's status line and headers when the app sends ``http.response.start``
and the body when it sends ``http.response.body``: two ``send`` calls and two TCP segments
per answer (on a busy webhook, the writes took about a sixth of the event loop's time). The
app always sends the two messages back to back, within one step of the event loop, so
:class:`CoalescedWrites` holds the first write of a step and sends it together with the next
one, or on its own at the start of the next step when nothing follows.

uvicorn's own cap on a request head (``h11_max_incomplete_event_size``) belongs to its h11
protocol; its httptools protocol, the faster one used here, reads a head of any size. This one
answers a head that grows past :data:`MAX_HEAD_BYTES` with a 431 and ends the connection: it
sends its end of the stream at once, then reads and drops what the client still sends for up
to :data:`LINGER_SECONDS` (or :data:`LINGER_BYTES`) before it closes. Closing with the client's
bytes still unread would make the kernel answer them with a reset, which destroys the 431 in
the client's receive buffer before it is read: a client sending a 256 KB header never saw it.

Everything else (parsing, keep-alive, flow control, pipelining) stays uvicorn's, and an
upgraded WebSocket is handed the socket's own transport: its frames (realtime/wire.py) are
written at once, as before.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 16 * 1024
"""The largest request head (request line and headers) read; browsers send under 8 KiB."""
LINGER_SECONDS = 2.0
"""How long a refused connection is read (and what is read dropped) before it is closed."""
LINGER_BYTES = 1024 * 1024
"""How much of a refused request is read and dropped before the connection is closed anyway."""

log = logging.getLogger(__name__)

_HEAD_TOO_LARGE = b"Request head too large."


class CoalescedWrites:
    """A transport whose writes made in one event-loop step leave as one ``write``.

    Only ``write``, ``write_eof`` and ``close`` differ from the wrapped transport; every other
    attribute is the wrapped transport's own.
    """

    __slots__ = ("_held", "_loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._held = None
            self.transport.write(held + data)
            # The flush already scheduled for ``held`` finds nothing and returns.

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self.transport.is_closing():
            self.transport.write(held)

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head that was refused."""


class ChatforgeHttpProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` writing through :class:`CoalescedWrites`, with request heads
    capped at :data:`MAX_HEAD_BYTES`."""

    # The current request head's size: its URL and headers as parsed, and every byte read
    # while it is unfinished (a client sending a huge header a piece at a time: the parser
    # holds what it has read). None while no head is being read.
    _parsed: int | None = None
    _read = 0
    # Set once a head was refused: what arrives after it is dropped (``_read`` then counts it),
    # until ``_linger`` closes the connection.
    _refused = False
    _linger: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescedWrites(transport, self.loop))  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._read += len(data)
            if self._read > LINGER_BYTES:
                self.transport.close()
            return
        super().data_received(data)
        if self._parsed is not None:  # the head is still unfinished after this chunk
            self._read += len(data)
            if self._read > MAX_HEAD_BYTES:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed, self._read = 0, 0

    def on_url(self, url: bytes) -> None:
        if self._grow(len(url)):
            raise _HeadTooLarge  # stops the parser; uvicorn then sends nothing more
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._grow(len(name) + len(value) + 4):
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._parsed = None
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        coalesced: CoalescedWrites = self.transport  # type: ignore[assignment]
        coalesced.flush()
        self.transport = coalesced.transport
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        if not self._refused and not self.transport.is_closing():  # not after a last answer
            super().send_400_response(msg)

    def _grow(self, size: int) -> bool:
        """Count ``size`` more parsed bytes of the head; True when that refused it."""
        if self._parsed is None:
            return False
        self._parsed += size
        if self._parsed <= MAX_HEAD_BYTES:
            return False
        self._refuse_head()
        return True

    def _refuse_head(self) -> None:
        self._parsed, self._refused, self._read = None, True, 0
        log.warning("request head over %d bytes from %s: refused", MAX_HEAD_BYTES, self.client)
        if self.cycle is not None and not self.cycle.response_complete:
            # An answer to an earlier request is still being written: no room for one more.
            self.transport.close()
            return
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (len(_HEAD_TOO_LARGE), _HEAD_TOO_LARGE)
        )
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()  # the 431, then the end of our side of the stream
        self._linger = self.loop.call_later(LINGER_SECONDS, self.transport.close)
