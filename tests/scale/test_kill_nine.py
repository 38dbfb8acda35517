"""Fault test: clients keep chatting while server processes are killed with SIGKILL.

20 clients in 5 support conversations talk to 2 processes (PostgreSQL + Redis). One process is
killed with SIGKILL several times and restarted; clients reconnect with backoff, resume from
their last ``seq`` and resend unacknowledged messages with the same ``client_id``. Afterwards:
no acknowledged message is lost, none is stored twice, and no conversation has a hole in ``seq``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import websockets
from sqlalchemy import func, select

from chatforge.context import AppContext
from chatforge.store import migrate
from chatforge.store.models import Conversation, Event, Message, Role
from tests.factories import make_user, with_context
from tests.servers import SECRET, free_port, postgres_server, redis_server, server_env

pytestmark = pytest.mark.postgres

CONVERSATIONS = 5
KILLS = 3
KILL_EVERY = 3.0


@dataclass
class Process:
    port: int
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chatforge",
                    "serve",
                    "--no-migrate",
                    "--port",
                    str(self.port),
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.popen is not None
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(10)


async def healthy(port: int, within: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert loop.time() < deadline, f"process on {port} did not come up"
            await asyncio.sleep(0.1)


@dataclass
class Client:
    token: str
    port: int
    conversation_id: int
    sends: bool
    name: str
    last_seq: int = 0
    seen: list[int] = field(default_factory=list)
    unacked: dict[str, dict[str, object]] = field(default_factory=dict)
    acked: dict[str, tuple[int, int]] = field(default_factory=dict)
    counter: int = 0
    reconnects: int = 0

    async def run(self, until: asyncio.Event, drained: asyncio.Event) -> None:
        delay = 0.1
        while not drained.is_set():
            try:
                async with websockets.connect(
                    f"ws://127.0.0.1:{self.port}/ws?token={self.token}", open_timeout=3
                ) as ws:
                    delay = 0.1
                    await ws.recv()  # hello
                    await ws.send(
                        json.dumps(
                            {
                                "type": "subscribe",
                                "conversation_id": self.conversation_id,
                                "after_seq": self.last_seq,
                            }
                        )
                    )
                    for frame in list(self.unacked.values()):
                        await ws.send(json.dumps(frame))
                    await self.talk(ws, until, drained)
            except (OSError, websockets.exceptions.WebSocketException, TimeoutError):
                self.reconnects += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def talk(
        self, ws: websockets.ClientConnection, until: asyncio.Event, drained: asyncio.Event
    ) -> None:
        # Reading and sending run side by side; no receive is ever cut short by a timeout
        # (a timed-out receive can lose a frame on Python 3.11), so the client drops nothing.
        sender = asyncio.create_task(self.send_steadily(ws, until))
        reader = asyncio.create_task(self.read(ws))
        waiter = asyncio.create_task(drained.wait())
        try:
            done, _ = await asyncio.wait(
                {sender, reader, waiter}, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter not in done:
                for task in done:
                    task.result()  # re-raises the connection error
                raise websockets.exceptions.ConnectionClosedError(None, None)
        finally:
            for task in (sender, reader, waiter):
                task.cancel()

    async def send_steadily(self, ws: websockets.ClientConnection, until: asyncio.Event) -> None:
        while self.sends and not until.is_set():
            self.counter += 1
            client_id = f"{self.name}-{self.counter}"
            frame = {
                "type": "chat_message",
                "conversation_id": self.conversation_id,
                "body": client_id,
                "client_id": client_id,
            }
            self.unacked[client_id] = frame
            await ws.send(json.dumps(frame))
            await asyncio.sleep(0.15)
        await asyncio.Event().wait()

    async def read(self, ws: websockets.ClientConnection) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") == "ack":
                self.unacked.pop(frame["client_id"], None)
                self.acked[frame["client_id"]] = (frame["seq"], frame["message_id"])
            elif frame.get("conversation_id") == self.conversation_id and "seq" in frame:
                if frame["seq"] > self.last_seq:
                    self.seen.append(frame["seq"])
                    self.last_seq = frame["seq"]
                else:
                    self.seen.append(-frame["seq"])  # a duplicate: recorded to fail the test
        raise websockets.exceptions.ConnectionClosedOK(None, None)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kill9")


@pytest.fixture(scope="module")
def services(base: Path) -> Iterator[tuple[str, str]]:
    with postgres_server(base / "pg") as database_url, redis_server(base) as redis:
        yield database_url, redis.url


async def test_sigkill_loses_no_acknowledged_message(base: Path, services: tuple[str, str]) -> None:
    database_url, redis_url = services
    extra = {
        "CHATFORGE_DATABASE_URL": database_url,
        "CHATFORGE_REDIS_URL": redis_url,
        "CHATFORGE_CATCH_UP_SECONDS": "1",
    }
    await asyncio.to_thread(migrate.upgrade, database_url)
    processes = []
    for name in ("a", "b"):
        port = free_port()
        (base / name).mkdir(exist_ok=True)
        processes.append(
            Process(port, server_env(base / name, port, **extra), base / name / "server.log")
        )
    for process in processes:
        process.start()
    try:
        for process in processes:
            await healthy(process.port)
        clients = await asyncio.to_thread(make_clients, base, database_url, processes)
        until, drained = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(c.run(until, drained)) for c in clients]
        victim = processes[0]
        kills = 0
        for _ in range(KILLS):
            await asyncio.sleep(KILL_EVERY)
            victim.kill()
            kills += 1
            await asyncio.sleep(0.5)
            victim.start()
            await healthy(victim.port)
        until.set()
        # Let every client reconnect, resend and catch up.
        for _ in range(200):
            if all(not c.unacked for c in clients):
                break
            await asyncio.sleep(0.1)
        # Events committed by a killed process before it published them arrive through the
        # periodic catch-up (every second here): wait until every client has reached the end of
        # its conversation, or give up after 20 s and let the report show what is missing.
        for _ in range(40):
            latest = await asyncio.to_thread(last_seqs, base, database_url)
            if all(c.last_seq >= latest.get(c.conversation_id, 0) for c in clients):
                break
            await asyncio.sleep(0.5)
        drained.set()
        await asyncio.gather(*tasks)
        report = await asyncio.to_thread(check, base, database_url, clients)
        print(f"\nkill -9 x{kills}: {report}")
        assert kills >= 3
        assert report["acked"] > 100
        assert report["unacked_left"] == 0
        assert report["lost"] == 0
        assert report["stored_twice"] == 0
        assert report["seq_holes"] == 0
        assert report["client_duplicates"] == 0
        assert report["client_gaps"] == 0
        assert sum(c.reconnects for c in clients) > 0
    finally:
        for process in processes:
            process.stop()


def make_clients(base: Path, database_url: str, processes: list[Process]) -> list[Client]:
    async def create(ctx: AppContext) -> list[Client]:
        admin = await make_user(ctx, Role.admin)
        topic = await ctx.topics.create(admin, name="Faults")
        clients: list[Client] = []
        for n in range(CONVERSATIONS):
            owner = await make_user(ctx, Role.user)
            moderator = await make_user(ctx, Role.moderator)
            watchers = [await make_user(ctx, Role.moderator) for _ in range(2)]
            conversation = (await ctx.support.open(owner, topic.id)).conversation
            await ctx.support.claim(moderator, conversation.id)
            people = [(owner, True), (moderator, True), *((w, False) for w in watchers)]
            for index, (person, sends) in enumerate(people):
                clients.append(
                    Client(
                        token=ctx.tokens.issue(person.id, person.token_version),
                        port=processes[(n + index) % 2].port,
                        conversation_id=conversation.id,
                        sends=sends,
                        name=f"{person.username}",
                    )
                )
        return clients

    return with_context(base, create, secret_key=SECRET, database_url=database_url)


def last_seqs(base: Path, database_url: str) -> dict[int, int]:
    async def read(ctx: AppContext) -> dict[int, int]:
        async with ctx.db.read() as session:
            rows = await session.execute(select(Conversation.id, Conversation.last_seq))
            return dict(rows.all())

    return with_context(base, read, secret_key=SECRET, database_url=database_url)


def check(base: Path, database_url: str, clients: list[Client]) -> dict[str, int]:
    async def read(ctx: AppContext) -> dict[str, int]:
        async with ctx.db.read() as session:
            stored = {
                client_id: (seq, message_id)
                for client_id, seq, message_id in await session.execute(
                    select(Message.client_id, Message.seq, Message.id)
                )
            }
            twice = await session.scalar(
                select(func.count()).select_from(
                    select(Message.body).group_by(Message.body).having(func.count() > 1).subquery()
                )
            )
            holes = 0
            events: dict[int, list[int]] = {}
            for conversation_id, seq in await session.execute(
                select(Event.conversation_id, Event.seq).order_by(Event.conversation_id, Event.seq)
            ):
                events.setdefault(conversation_id, []).append(seq)
            for seqs in events.values():
                holes += len(set(range(1, seqs[-1] + 1)) - set(seqs))
        acked = {k: v for c in clients for k, v in c.acked.items()}
        lost = sum(1 for client_id, ack in acked.items() if stored.get(client_id) != ack)
        duplicates = sum(1 for c in clients for s in c.seen if s < 0)
        # Every client subscribed from seq 0, so it must have seen every event of its conversation.
        gaps = sum(len(set(events.get(c.conversation_id, [])) - set(c.seen)) for c in clients)
        return {
            "acked": len(acked),
            "unacked_left": sum(len(c.unacked) for c in clients),
            "lost": lost,
            "stored_twice": twice or 0,
            "seq_holes": holes,
            "client_duplicates": duplicates,
            "client_gaps": gaps,
        }

    return with_context(base, read, secret_key=SECRET, database_url=database_url)
