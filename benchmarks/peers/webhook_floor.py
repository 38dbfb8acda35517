"""The floor of a webhook on this machine: POST, one SQLite insert, reply; nothing else.

    python -m benchmarks.peers.webhook_floor --port 8767 --db /tmp/floor.db --commit group

The job the performance issue's webhook reference figures measure (9,000 requests/s with a
commit per request, 14,600 with a single writer task doing group commits, one process), so that
``benchmarks/webhook.py --floor`` can put chatforge's figure next to what this machine gives for
the least a stored webhook can cost. A bare ASGI callable on uvicorn (httptools, uvloop): no
framework, no signature check, no bot, one table without secondary indexes. The SQLite calls
block the event loop on purpose: that is the job as the reference describes it.

``--commit each`` commits every request's insert before answering it; ``--commit group`` hands
the insert to one writer task, which stores every insert waiting in one transaction and answers
them after its ``COMMIT``.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from typing import Any

import uvicorn

TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response />'
HEADERS = [(b"content-type", b"application/xml"), (b"content-length", b"%d" % len(TWIML))]
INSERT = "INSERT INTO webhooks (received_at, body) VALUES (?, ?)"


class Floor:
    def __init__(self, path: str, commit: str, synchronous: str) -> None:
        self.path, self.commit, self.synchronous = path, commit, synchronous
        self.db: sqlite3.Connection | None = None
        self.pending: list[tuple[tuple[float, bytes], asyncio.Future[None]]] = []
        self.wake = asyncio.Event()

    def open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute(
            "CREATE TABLE IF NOT EXISTS webhooks"
            " (id INTEGER PRIMARY KEY, received_at REAL NOT NULL, body BLOB NOT NULL)"
        )
        return db

    async def writer(self, db: sqlite3.Connection) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, []
            db.execute("BEGIN IMMEDIATE")
            db.executemany(INSERT, [row for row, _ in batch])
            db.execute("COMMIT")
            for _, answer in batch:
                answer.set_result(None)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        row = (time.time(), b"".join(chunks))
        assert self.db is not None
        if self.commit == "each":
            self.db.execute(INSERT, row)
        else:
            answer = asyncio.get_running_loop().create_future()
            self.pending.append((row, answer))
            self.wake.set()
            await answer
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": TWIML})

    async def lifespan(self, receive: Any, send: Any) -> None:
        await receive()
        self.db = self.open()
        task = asyncio.create_task(self.writer(self.db)) if self.commit == "group" else None
        await send({"type": "lifespan.startup.complete"})
        await receive()
        if task is not None:
            task.cancel()
        self.db.close()
        await send({"type": "lifespan.shutdown.complete"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--commit", choices=("each", "group"), default="group")
    parser.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="NORMAL")
    args = parser.parse_args()
    uvicorn.run(
        Floor(args.db, args.commit, args.synchronous),
        host="127.0.0.1",
        port=args.port,
        http="httptools",
        loop="uvloop",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
