"""uvicorn's HTTP protocol with each answer's head and body sent in one system call.

uvicorn writes an answer's status line and headers when the app sends ``http.response.start``
and the body when it sends ``http.response.body``: two ``send`` calls, two TCP segments, and on
a busy webhook about a sixth of the event loop's time went to those writes. The app always
sends the two messages back to back, within one step of the event loop, so
:class:`CoalescedWrites` holds the first write of a step and sends it together with the next
one, or on its own at the start of the next step when nothing follows.

Everything else (parsing, keep-alive, flow control, pipelining) stays uvicorn's, and an
upgraded WebSocket is handed the socket's own transport: its frames (realtime/wire.py) are
written at once, as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescedWrites:
    """A transport whose writes made in one event-loop step leave as one ``write``.

    Only ``write`` and ``close`` differ from the wrapped transport; every other attribute is
    the wrapped transport's own.
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

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class OneWriteHttpProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` writing through :class:`CoalescedWrites`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescedWrites(transport, self.loop))  # type: ignore[arg-type]

    def handle_websocket_upgrade(self) -> None:
        coalesced: CoalescedWrites = self.transport  # type: ignore[assignment]
        coalesced.flush()
        self.transport = coalesced.transport
        super().handle_websocket_upgrade()
