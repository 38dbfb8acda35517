"""Idle connections: how many authenticated sockets one process holds, and RSS per socket.

python benchmarks/connections.py --sockets 1000 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource

import uvloop
import websockets

from benchmarks.harness import Server, make_accounts, pin_to, running_server
from chatforge.store.models import Role


async def hold(server: Server, count: int) -> tuple[int, int]:
    (token,) = await make_accounts(server, [Role.user])
    await asyncio.sleep(0.5)
    before = server.rss_kib()
    sockets = []
    for start in range(0, count, 200):
        batch = await asyncio.gather(
            *(
                websockets.connect(
                    f"{server.ws_url}?token={token}", compression=None, open_timeout=30
                )
                for _ in range(min(200, count - start))
            )
        )
        for ws in batch:
            assert json.loads(await ws.recv())["type"] == "hello"
        sockets += batch
    await asyncio.sleep(1)
    after = server.rss_kib()
    await asyncio.gather(*(ws.close() for ws in sockets))
    return before, after


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sockets", type=int, nargs="+", default=[1000, 5000])
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pin_to(1)
    print(f"{'sockets':>8} {'RSS before MiB':>15} {'RSS after MiB':>14} {'KiB per socket':>15}")
    for count in args.sockets:
        with running_server() as server:
            before, after = uvloop.run(hold(server, count))
        per_socket = (after - before) / count
        print(f"{count:>8} {before / 1024:>15.1f} {after / 1024:>14.1f} {per_socket:>15.1f}")


if __name__ == "__main__":
    main()
