"""Webhook batches without HTTP: where one batch of WhatsApp messages spends its CPU.

    python -m benchmarks.gateway --batch 32 --rounds 300 --statements

Runs ``ChannelGateway.receive`` in this process on a fresh SQLite file, ``--batch`` messages at
a time (what arrives at once shares one transaction, as behind the webhook), from ``--senders``
WhatsApp numbers with the keywords of ``benchmarks/webhook.py``. A warm-up first sends every
sender a ``help``, so the measured rounds are returning users. Prints the CPU per message of
each thread: the event loop (the gateway, the bots and the group commit, without HTTP or the
signature check), the write lane (SQLite's statements and the Python that builds their rows)
and the checkpointer. With
``--statements`` it also times each statement on the lane and the ``COMMIT``, per message.

Pin it to one CPU as the server is (``taskset -c 0 python -m benchmarks.gateway``): the threads
then share that CPU, and their sum is what bounds a process. The figures move by 10-30 % from
one run to the next on a shared machine; compare runs made back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Table
from sqlalchemy.sql.util import find_tables

from benchmarks.harness import SECRET
from benchmarks.webhook import KEYWORDS, check_database_file
from chatforge.channels.base import InboundMessage
from chatforge.context import AppContext, build_context
from chatforge.settings import load_settings
from chatforge.store import migrate, write_lane


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads but the main one, by their Python names."""
    seconds: dict[str, float] = defaultdict(float)
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.ident is None:
            continue  # the event loop's is measured with ``time.thread_time``
        try:
            clock = time.pthread_getcpuclockid(thread.ident)
            seconds[thread.name] += time.clock_gettime(clock)
        except OSError:  # the thread ended meanwhile
            continue
    return seconds


class StatementClock:
    """Thread CPU per statement the write lane runs, and per ``COMMIT``.

    It wraps the lane's methods for the length of a run: a profiling aid, not part of chatforge.
    Labels are worked out once per statement object (printing a SELECT compiles it, which costs
    more than running it).
    """

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._labels: dict[tuple[int, str], str] = {}
        self._depth = 0

    def label(self, statement: Any, method: str) -> str:
        key = (id(statement), method)
        if key not in self._labels:
            table = getattr(statement, "table", None)
            if table is None:
                tables = find_tables(statement, include_joins=True)
                name = "+".join(sorted({t.name for t in tables if isinstance(t, Table)}))
            else:
                name = table.name
            self._labels[key] = f"{type(statement).__name__.lower()} {name} ({method})"
        return self._labels[key]

    def timed(self, label: Callable[..., str], method: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            if self._depth:  # ``insert_ids`` runs ``run``: count the outer call only
                return method(*args)
            self._depth += 1
            started = time.thread_time()
            try:
                return method(*args)
            finally:
                key = label(*args)
                self.spent[key] += time.thread_time() - started
                self.calls[key] += 1
                self._depth -= 1

        return run

    @contextmanager
    def installed(self) -> Iterator[None]:
        lane, driver = write_lane.WriteLane, write_lane.DriverStatements
        saved: dict[tuple[type, str], Any] = {
            (driver, name): getattr(driver, name) for name in ("rows", "run", "insert_ids")
        }
        saved[(lane, "_end")] = lane._end
        for (owner, name), method in saved.items():
            if owner is lane:
                wrapped = self.timed(lambda _lane, command: command.lower(), method)
            else:
                wrapped = self.timed(
                    lambda _self, statement, *_, name=name: self.label(statement, name), method
                )
            setattr(owner, name, wrapped)
        try:
            yield
        finally:
            for (owner, name), method in saved.items():
                setattr(owner, name, method)


def messages(
    first: int, count: int, senders: int, keywords: tuple[str, ...]
) -> list[InboundMessage]:
    """``count`` inbound WhatsApp messages with MessageSids from ``first``, senders spread."""
    batch = []
    for number in range(first, first + count):
        sender = (number * 7919) % senders
        batch.append(
            InboundMessage(
                channel="whatsapp",
                message_id=f"SM{number:032x}",
                sender=f"whatsapp:+1555{sender:07d}",
                text=keywords[number % len(keywords)],
                profile_name=f"Bench {sender}",
            )
        )
    return batch


async def rounds(
    ctx: AppContext, first: int, count: int, size: int, senders: int, keywords: tuple[str, ...]
) -> int:
    """Handle ``count`` messages, ``size`` at a time; returns the next unused MessageSid."""
    for start in range(first, first + count, size):
        batch = messages(start, min(size, first + count - start), senders, keywords)
        await asyncio.gather(*(ctx.channels.receive(message) for message in batch))
    return first + count


async def run(args: argparse.Namespace, folder: Path, url: str) -> None:
    ctx = build_context(load_settings(data_dir=folder, database_url=url, secret_key=SECRET))
    await ctx.start()
    clock = StatementClock()
    try:
        sid = await rounds(ctx, 1, args.senders, args.batch, args.senders, ("help",))
        gc.freeze()  # as the server's start-up does
        total = args.rounds * args.batch
        with clock.installed() if args.statements else nullcontext():
            before, loop_before = thread_cpu(), time.thread_time()
            started = time.perf_counter()
            await rounds(ctx, sid, total, args.batch, args.senders, KEYWORDS)
            elapsed = time.perf_counter() - started
            loop_cpu, after = time.thread_time() - loop_before, thread_cpu()
    finally:
        await ctx.close()
    per = 1e6 / total
    print(f"{total} messages in batches of {args.batch}: {total / elapsed:,.0f} messages/s")
    print(f"  event loop {loop_cpu * per:7.1f} us/message")
    for name in sorted(after):
        if after[name] - before.get(name, 0.0) > 0:
            print(f"  {name:<20} {(after[name] - before.get(name, 0.0)) * per:7.1f} us/message")
    if args.statements:
        print("  on the lane, by statement (thread CPU, us/message; calls per batch):")
        for key, spent in sorted(clock.spent.items(), key=lambda item: -item[1]):
            calls = clock.calls[key] / args.rounds
            print(f"    {spent * per:7.1f}  {calls:5.1f}  {key}")
        print(f"    {sum(clock.spent.values()) * per:7.1f}         in all")
    print(check_database_file(folder / "chatforge.db"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="messages handled at once")
    parser.add_argument("--rounds", type=int, default=300, help="batches measured")
    parser.add_argument("--senders", type=int, default=10_000, help="distinct WhatsApp numbers")
    parser.add_argument("--statements", action="store_true", help="time each lane statement")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="chatforge-gateway-"))
    url = f"sqlite+aiosqlite:///{folder}/chatforge.db"
    migrate.upgrade(url)  # before the event loop: Alembic runs one of its own
    import uvloop

    uvloop.run(run(args, folder, url))


if __name__ == "__main__":
    main()
