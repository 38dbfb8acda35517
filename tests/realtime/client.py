"""A test WebSocket client that records every frame it receives.

A reader task takes every frame off the socket as it arrives; tests wait on the recorded list.
Receives are never cut short by a timeout (on Python 3.11 a timed-out ``wait_for`` can drop the
value it was waiting for), so a test can never lose a frame itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.servers import LiveServer

TIMEOUT = 5.0


class WsClient:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: list[dict[str, Any]] = []
        self._inbox: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._closed: ConnectionClosed | None = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                frame = json.loads(raw)
                self.frames.append(frame)
                self._inbox.append(frame)
                self._arrived.set()
        except ConnectionClosed as exc:
            self._closed = exc
        else:
            self._closed = ConnectionClosed(self.connection.close_rcvd, self.connection.close_sent)
        self._arrived.set()

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def send(self, frame: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(frame))

    async def _wait(self, deadline: float) -> None:
        if self._closed is not None:
            raise self._closed
        self._arrived.clear()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError
        await asyncio.wait_for(self._arrived.wait(), remaining)

    async def next(self, within: float = TIMEOUT) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + within
        while not self._inbox:
            await self._wait(deadline)
        return self._inbox.pop(0)

    async def expect(self, type: str, within: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The first unread frame of ``type`` (matching ``fields``); others stay unread."""
        return await self._first(
            lambda f: f.get("type") == type and all(f.get(k) == v for k, v in fields.items()),
            within,
        )

    async def expect_any(self, *types: str, within: float = TIMEOUT) -> dict[str, Any]:
        """The first unread frame whose type is one of ``types``; others stay unread."""
        return await self._first(lambda f: f.get("type") in types, within)

    async def _first(
        self, matches: Callable[[dict[str, Any]], bool], within: float
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            for index, frame in enumerate(self._inbox):
                if matches(frame):
                    return self._inbox.pop(index)
            await self._wait(deadline)

    async def drain(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Everything unread, once the socket has been quiet for ``quiet`` seconds."""
        while True:
            seen = len(self.frames)
            await asyncio.sleep(quiet)
            if len(self.frames) == seen:
                received, self._inbox = self._inbox, []
                return received

    async def request(self, frame: dict[str, Any], reply: str) -> dict[str, Any]:
        await self.send(frame)
        return await self.expect(reply)


@asynccontextmanager
async def ws_client(
    server: LiveServer, token: str | None = None, **options: Any
) -> AsyncIterator[WsClient]:
    url = server.ws_url + (f"?token={token}" if token else "")
    async with websockets.connect(url, max_size=2**22, **options) as connection:
        client = WsClient(connection)
        try:
            hello = await client.next()
            assert hello["type"] == "hello"
            yield client
        finally:
            await client.close()
