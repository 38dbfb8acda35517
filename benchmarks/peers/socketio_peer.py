"""python-socketio's ``AsyncServer`` as an ASGI app: every ``msg`` event is emitted to everyone.

    uvicorn benchmarks.peers.socketio_peer:app --ws websockets-sansio --loop uvloop \\
        --http httptools --log-level warning --port 8767
"""

from __future__ import annotations

from typing import Any

import socketio

sio = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)
app = socketio.ASGIApp(sio)


@sio.on("msg")
async def message(sid: str, data: Any) -> None:
    await sio.emit("msg", data)
