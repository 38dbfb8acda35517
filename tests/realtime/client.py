"""A test WebSocket client that records every frame it receives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from tests.servers import LiveServer

TIMEOUT = 5.0


class WsClient:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: list[dict[str, Any]] = []
        self._unread: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(frame))

    async def next(self, within: float = TIMEOUT) -> dict[str, Any]:
        if self._unread:
            return self._unread.pop(0)
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.connection.recv(), within))
        self.frames.append(frame)
        return frame

    async def expect(self, type: str, within: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The next frame of ``type`` (matching ``fields``); others are kept for later reads."""
        skipped: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        try:
            while True:
                frame = await self.next(max(0.01, deadline - loop.time()))
                if frame.get("type") == type and all(frame.get(k) == v for k, v in fields.items()):
                    return frame
                skipped.append(frame)
        finally:
            self._unread[:0] = skipped

    async def expect_any(self, *types: str, within: float = TIMEOUT) -> dict[str, Any]:
        """The next frame whose type is one of ``types``; others are kept for later reads."""
        skipped: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        try:
            while True:
                frame = await self.next(max(0.01, deadline - loop.time()))
                if frame.get("type") in types:
                    return frame
                skipped.append(frame)
        finally:
            self._unread[:0] = skipped

    async def drain(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Everything that arrives until the socket is quiet for ``quiet`` seconds."""
        received = list(self._unread)
        self._unread.clear()
        while True:
            try:
                received.append(await self.next(quiet))
            except TimeoutError:
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
        hello = await client.next()
        assert hello["type"] == "hello"
        yield client
