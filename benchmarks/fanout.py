"""Fan-out: one conversation, N subscribed sockets, one sender at a steady rate.

    python benchmarks/fanout.py --subscribers 100 1000 --rate 50 --seconds 10

Prints deliveries per second and end-to-end latency (send -> receipt on every subscriber).
The server is one process on SQLite, pinned to CPU 0; this generator runs on CPU 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx
import uvloop
import websockets

from benchmarks.harness import Server, make_accounts, percentile, pin_to, running_server
from chatforge.store.models import Role


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rate", type=float, default=50, help="messages per second")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    pin_to(1)
    header = ("subscribers", "sent", "delivered/expected", "deliveries/s", "p50 ms", "p99 ms")
    print("{:>11} {:>6} {:>19} {:>13} {:>8} {:>8}".format(*header))
    for count in args.subscribers:
        with running_server() as server:
            result = uvloop.run(measure(server, count, args.rate, args.seconds))
        delivered = f"{result['deliveries']:.0f}/{result['expected']:.0f}"
        rate = result["deliveries_per_s"]
        print(
            f"{count:>11} {result['sent']:>6.0f} {delivered:>19} {rate:>13.0f}"
            f" {result['p50_ms']:>8.1f} {result['p99_ms']:>8.1f}"
        )


if __name__ == "__main__":
    main()
