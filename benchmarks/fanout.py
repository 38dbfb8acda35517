"""Fan-out: one conversation, N subscribed sockets, one sender at a steady rate.

    python benchmarks/fanout.py --subscribers 100 1000 --rate 50 --seconds 10

Prints deliveries per second and end-to-end latency (send -> receipt on every subscriber).
The server is one process on SQLite, pinned to CPU 0; this generator runs on CPU 1.

    python benchmarks/fanout.py --room 1000 --seconds 10

A live session room instead: an instructor and N participants, all subscribed, with a mix of
public messages (instructor and participants), private messages to the instructor, reactions
and typing signals. Prints every frame delivered per second, and the p50 / p99 latency of the
public and private messages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import httpx
import uvloop
import websockets

from benchmarks.harness import (
    SECRET,
    UNTHROTTLED,
    Server,
    make_accounts,
    percentile,
    pin_to,
    running_server,
)
from chatforge.context import build_context
from chatforge.settings import load_settings
from chatforge.store.models import Participant, Role, User


async def measure(
    server: Server, subscribers: int, rate: float, seconds: float
) -> dict[str, float]:
    owner, moderator, admin = await make_accounts(server, [Role.user, Role.moderator, Role.admin])
    async with httpx.AsyncClient(base_url=server.url) as http:
        topic = await http.post(
            "/api/topics", json={"name": "bench"}, headers={"Authorization": f"Bearer {admin}"}
        )
        opened = await http.post(
            "/api/conversations",
            json={"topic_id": topic.json()["id"]},
            headers={"Authorization": f"Bearer {owner}"},
        )
        conversation_id = opened.json()["id"]
        await http.post(
            f"/api/conversations/{conversation_id}/claim",
            headers={"Authorization": f"Bearer {moderator}"},
        )

    latencies: list[float] = []
    delivered = 0
    stop = asyncio.Event()

    async def subscriber() -> None:
        nonlocal delivered
        async with websockets.connect(
            f"{server.ws_url}?token={moderator}", compression=None, max_queue=None
        ) as ws:
            await ws.recv()  # hello
            await ws.send(
                json.dumps(
                    {
                        "type": "subscribe",
                        "conversation_id": conversation_id,
                        "after_seq": 10**9 if False else 0,
                    }
                )
            )
            ready.release()
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 1)
                except TimeoutError:
                    continue
                if '"chat_message"' in raw:
                    frame = json.loads(raw)
                    latencies.append(time.perf_counter() - float(frame["body"]))
                    delivered += 1

    ready = asyncio.Semaphore(0)
    tasks = [asyncio.create_task(subscriber()) for _ in range(subscribers)]
    for _ in range(subscribers):
        await ready.acquire()
    await asyncio.sleep(0.5)
    latencies.clear()
    delivered = 0
    async with websockets.connect(f"{server.ws_url}?token={owner}", compression=None) as sender:
        await sender.recv()
        interval = 1 / rate
        started = time.perf_counter()
        sent = 0
        while time.perf_counter() - started < seconds:
            await sender.send(
                json.dumps(
                    {
                        "type": "chat_message",
                        "conversation_id": conversation_id,
                        "body": repr(time.perf_counter()),
                        "client_id": f"b{sent}",
                    }
                )
            )
            sent += 1
            await asyncio.sleep(max(0.0, started + sent * interval - time.perf_counter()))
        elapsed = time.perf_counter() - started
        await asyncio.sleep(2)  # let the last deliveries arrive
    stop.set()
    await asyncio.gather(*tasks)
    return {
        "subscribers": subscribers,
        "sent": sent,
        "deliveries": delivered,
        "expected": sent * subscribers,
        "deliveries_per_s": delivered / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


async def make_room(server: Server, participants: int) -> tuple[int, str, list[str]]:
    """A session room with an instructor and ``participants`` members; returns their tokens.

    The members are written straight to the database (no password hashing, no join events):
    the benchmark measures delivery, not set-up.
    """
    (instructor,) = await make_accounts(server, [Role.moderator])
    async with httpx.AsyncClient(base_url=server.url) as http:
        created = await http.post(
            "/api/sessions",
            json={"title": "bench"},
            headers={"Authorization": f"Bearer {instructor}"},
        )
        room_id: int = created.json()["id"]
    ctx = build_context(load_settings(data_dir=server.data_dir, secret_key=SECRET))
    try:
        tokens = []
        async with ctx.db.write() as session:
            for n in range(participants):
                user = User(username=f"crowd{n}", display_name=f"Crowd {n}", role=Role.user)
                session.add(user)
                await session.flush()
                session.add(Participant(conversation_id=room_id, user_id=user.id))
                tokens.append(ctx.tokens.issue(user.id, 0))
        return room_id, instructor, tokens
    finally:
        await ctx.close()


async def measure_room(
    server: Server,
    participants: int,
    *,
    messages: float,
    reactions: float,
    typing: float,
    private: float,
    seconds: float,
) -> dict[str, float]:
    room_id, instructor, tokens = await make_room(server, participants)
    latencies: list[float] = []
    private_latencies: list[float] = []
    delivered = 0
    last_message_id = 0
    stop = asyncio.Event()
    ready = asyncio.Semaphore(0)
    sockets: dict[int, websockets.ClientConnection] = {}
    instructor_id = 0

    connecting = asyncio.Semaphore(50)

    async def member(token: str, index: int) -> None:
        nonlocal delivered, last_message_id, instructor_id
        # A thousand handshakes at once would time out on a busy server: 50 at a time.
        async with connecting:
            ws = await websockets.connect(
                f"{server.ws_url}?token={token}",
                compression=None,
                max_queue=None,
                open_timeout=60,
            )
        async with ws:
            hello = json.loads(await ws.recv())
            if index == 0:
                instructor_id = hello["user_id"]
            sockets[index] = ws
            await ws.send(json.dumps({"type": "subscribe", "conversation_id": room_id}))
            ready.release()
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 1)
                except TimeoutError:
                    continue
                delivered += 1
                if '"chat_message"' in raw or '"private_message"' in raw:
                    frame = json.loads(raw)
                    if frame.get("type") == "chat_message":
                        latencies.append(time.perf_counter() - float(frame["body"]))
                        last_message_id = max(last_message_id, frame["message_id"])
                    elif frame.get("type") == "private_message":
                        private_latencies.append(time.perf_counter() - float(frame["body"]))

    everyone = [instructor, *tokens]
    tasks = [asyncio.create_task(member(token, n)) for n, token in enumerate(everyone)]
    for _ in everyone:
        await ready.acquire()
    await asyncio.sleep(1)
    delivered = 0
    latencies.clear()
    teacher, crowd = sockets[0], [sockets[n] for n in range(1, len(everyone))]

    async def steady(rate: float, send: Callable[[int], Awaitable[None]]) -> None:
        if rate <= 0:
            return
        started, n = time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            await send(n)
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))

    def frame(**fields: object) -> str:
        return json.dumps({"conversation_id": room_id, **fields})

    async def message(n: int) -> None:
        # Every fourth from the instructor, the rest from participants in turn (each well
        # under the 5-per-10-s limit).
        ws = teacher if n % 4 == 0 else crowd[n % len(crowd)]
        await ws.send(frame(type="chat_message", body=repr(time.perf_counter())))

    async def reaction(n: int) -> None:
        if last_message_id:
            emoji = ("👍", "👏", "❤️", "🔥")[n % 4]
            await crowd[(n * 7) % len(crowd)].send(
                frame(type="reaction_added", message_id=last_message_id, emoji=emoji)
            )

    async def typist(n: int) -> None:
        await crowd[(n * 13) % len(crowd)].send(frame(type="typing_start"))

    async def private_message(n: int) -> None:
        await crowd[(n * 17 + 3) % len(crowd)].send(
            frame(type="chat_message", body=repr(time.perf_counter()), recipient_id=instructor_id)
        )

    started = time.perf_counter()
    await asyncio.gather(
        steady(messages, message),
        steady(reactions, reaction),
        steady(typing, typist),
        steady(private, private_message),
    )
    elapsed = time.perf_counter() - started
    await asyncio.sleep(2)  # let the last deliveries arrive
    stop.set()
    await asyncio.gather(*tasks)
    return {
        "participants": participants,
        "deliveries": delivered,
        "deliveries_per_s": delivered / elapsed,
        "messages_p50_ms": percentile(latencies, 0.5) * 1000,
        "messages_p99_ms": percentile(latencies, 0.99) * 1000,
        "private_p99_ms": percentile(private_latencies, 0.99) * 1000,
        "private_received": len(private_latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rate", type=float, default=50, help="messages per second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--room", type=int, nargs="*", help="session rooms of N participants")
    parser.add_argument("--room-messages", type=float, default=8, help="public messages / s")
    parser.add_argument("--room-reactions", type=float, default=8, help="reactions / s")
    parser.add_argument("--room-typing", type=float, default=8, help="typing signals / s")
    parser.add_argument("--room-private", type=float, default=1, help="private messages / s")
    args = parser.parse_args()
    pin_to(1)
    if args.room:
        print(
            "{:>12} {:>11} {:>13} {:>11} {:>11} {:>15}".format(
                "participants",
                "deliveries",
                "deliveries/s",
                "msg p50 ms",
                "msg p99 ms",
                "private p99 ms",
            )
        )
        for count in args.room:
            with running_server(**UNTHROTTLED) as server:
                room = uvloop.run(
                    measure_room(
                        server,
                        count,
                        messages=args.room_messages,
                        reactions=args.room_reactions,
                        typing=args.room_typing,
                        private=args.room_private,
                        seconds=args.seconds,
                    )
                )
            print(
                f"{count:>12} {room['deliveries']:>11.0f} {room['deliveries_per_s']:>13.0f}"
                f" {room['messages_p50_ms']:>11.1f} {room['messages_p99_ms']:>11.1f}"
                f" {room['private_p99_ms']:>15.1f}"
            )
        return
    header = ("subscribers", "sent", "delivered/expected", "deliveries/s", "p50 ms", "p99 ms")
    print("{:>11} {:>6} {:>19} {:>13} {:>8} {:>8}".format(*header))
    for count in args.subscribers:
        with running_server(**UNTHROTTLED) as server:
            result = uvloop.run(measure(server, count, args.rate, args.seconds))
        delivered = f"{result['deliveries']:.0f}/{result['expected']:.0f}"
        rate = result["deliveries_per_s"]
        print(
            f"{count:>11} {result['sent']:>6.0f} {delivered:>19} {rate:>13.0f}"
            f" {result['p50_ms']:>8.1f} {result['p99_ms']:>8.1f}"
        )


if __name__ == "__main__":
    main()
