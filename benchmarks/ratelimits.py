"""CPU spent counting room rate limits in one process's memory, with many people active.

    python -m benchmarks.ratelimits --keys 1 50 500 --rate 50 --seconds 5

Every person of a live session room has a rate-limit key per action, so a room of 500 keeps
about 500 keys alive. For each storage and each ``--keys``, this counts every key once, then
counts ``--rate`` actions a second, spread over the keys, for ``--seconds``, and prints the
process's CPU time per second of wall time (as a share of one core) and per counted action:

- ``limits``: the asyncio memory storage of the ``limits`` library;
- ``chatforge``: :class:`chatforge.services.window_storage.MemoryWindows`, what a server
  without Redis uses;
- ``none``: the same loop counting nothing, the cost of its own sleeps and wake-ups.

Both run under ``limits``' own moving-window strategy, the one chatforge's rate limits use.
Pinned to CPU 0 when the machine has more than one, as the servers in the other benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time

from limits import parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from chatforge.services.window_storage import MemoryWindows

STORAGES: dict[str, type[Storage] | None] = {
    "limits": MemoryStorage,
    "chatforge": MemoryWindows,
    "none": None,
}
RULE = parse("5/10 seconds")  # the room's message limit, as chatforge's settings default it


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(
    storage: Storage | None, keys: int, rate: float, seconds: float
) -> tuple[float, int]:
    """CPU seconds used and actions counted while counting ``rate`` actions a second."""
    limiter = MovingWindowRateLimiter(storage) if storage is not None else None
    for key in range(keys):
        if limiter is not None:
            await limiter.hit(RULE, "session-message", "1", str(key))
    await asyncio.sleep(0.2)  # whatever the warm-up left running settles first
    started, used = time.perf_counter(), cpu_seconds()
    count = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        if limiter is not None:
            await limiter.hit(RULE, "session-message", "1", str(count % keys))
        count += 1
        await asyncio.sleep(max(0.0, count / rate - elapsed))
    return cpu_seconds() - used, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[1, 50, 500])
    parser.add_argument("--rate", type=float, default=50.0, help="counted actions per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    print(
        f"{'storage':<10} {'keys':>6} {'actions':>8} {'CPU % of a core':>16} {'CPU us/action':>14}"
    )
    for keys in args.keys:
        for name, storage in STORAGES.items():
            store = storage() if storage is not None else None
            used, count = asyncio.run(measure(store, keys, args.rate, args.seconds))
            share = used / args.seconds * 100
            print(f"{name:<10} {keys:>6} {count:>8} {share:>16.1f} {used / count * 1e6:>14.0f}")


if __name__ == "__main__":
    main()
