"""A bare Starlette app: one WebSocket route, a set of sockets, a loop of ``send_text``.

    uvicorn benchmarks.peers.starlette_peer:app --ws websockets-sansio --loop uvloop \\
        --http httptools --log-level warning --port 8766

uvicorn's defaults otherwise: permessage-deflate is on (chatforge serves with it off).
"""

from __future__ import annotations

import contextlib

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

clients: set[WebSocket] = set()


async def endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    clients.add(websocket)
    try:
        while True:
            text = await websocket.receive_text()
            for client in list(clients):
                with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                    await client.send_text(text)
    except WebSocketDisconnect:
        pass
    finally:
        clients.discard(websocket)


app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
