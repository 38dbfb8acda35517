"""The ``websockets`` library's asyncio server, broadcasting with ``websockets.broadcast``.

    python -m benchmarks.peers.websockets_peer --port 8765

Default settings (permessage-deflate offered to clients that ask), on uvloop.
"""

from __future__ import annotations

import argparse

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

clients: set[ServerConnection] = set()


async def handler(websocket: ServerConnection) -> None:
    clients.add(websocket)
    try:
        async for message in websocket:
            broadcast(clients, message)
    except ConnectionClosed:
        pass  # a client that hangs up without a close frame is not news
    finally:
        clients.discard(websocket)


async def main(host: str, port: int) -> None:
    async with serve(handler, host, port) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    uvloop.run(main(args.host, args.port))
