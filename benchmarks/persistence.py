"""Persistence: messages per second through ``MessageService.post``, no HTTP or sockets.

    python -m benchmarks.persistence --messages 20000 --concurrency 1 50 500 --conversations 1 10
    python -m benchmarks.persistence --no-sqlite --postgres postgresql+asyncpg://user@host/db

Each run gets a fresh SQLite file (or new accounts in the given PostgreSQL database, migrated
first), opens ``--conversations`` support conversations, each claimed by a moderator, then has
``--concurrency`` callers post ``--messages`` messages between them, owners and moderators in
turn, each with its own ``client_id``. With ``--kind session`` the conversations are live
session rooms instead, each with its instructor and one participant taking turns: every message
passes the room rules (membership, mutes, slow mode, the profanity filter, and the rate limit,
raised here so that it counts every participant's message but refuses none).

Prints messages/s, the p50 / p99 latency of one ``post`` (call to ack), the CPU time this
process spent per message (all threads: it says more than messages/s on a busy shared machine)
and the load average before the run. After each run the database is checked: one message per
post, and one event for every seq of each conversation.

Profile a run with ``pyinstrument -m benchmarks.persistence ...`` or ``py-spy record``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from benchmarks.harness import SECRET, percentile
from chatforge.context import AppContext, build_context
from chatforge.settings import load_settings
from chatforge.store import migrate
from chatforge.store.models import Conversation, Event, Message, Role, User

# Session rooms' rate limit for participants, counted for every message and never full.
UNREFUSED_RATE = "1000000/second"


@dataclass
class Outcome:
    messages: int
    seconds: float
    cpu_seconds: float
    """CPU time of this process (every thread), which a busy shared machine inflates less."""
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


@dataclass
class Pair:
    conversation_id: int
    owner: User
    moderator: User


async def open_conversations(ctx: AppContext, count: int, kind: str) -> list[Pair]:
    """``count`` support conversations (owner, claiming moderator) or session rooms
    (participant, instructor)."""
    run = secrets.token_hex(3)  # PostgreSQL keeps earlier runs' accounts: names must differ
    admin = await ctx.accounts.register(f"bench-admin-{run}", "benchmark-pass", role=Role.admin)
    topic = await ctx.topics.create(admin, name=f"bench {run}")
    pairs = []
    for index in range(count):
        owner = await ctx.accounts.register(f"bench-u{index}-{run}", "benchmark-pass")
        moderator = await ctx.accounts.register(
            f"bench-m{index}-{run}", "benchmark-pass", role=Role.moderator
        )
        if kind == "session":
            room = await ctx.sessions.create(moderator, f"bench room {index}")
            await ctx.sessions.join(owner, room.id)
            pairs.append(Pair(room.id, owner, moderator))
            continue
        conversation = (await ctx.support.open(owner, topic.id)).conversation
        await ctx.support.claim(moderator, conversation.id)
        pairs.append(Pair(conversation.id, owner, moderator))
    return pairs


async def post_all(
    ctx: AppContext, pairs: list[Pair], messages: int, callers: int, phase: str
) -> Outcome:
    """``callers`` concurrent tasks posting ``messages`` messages round-robin over ``pairs``."""
    latencies: list[float] = []

    async def post(index: int) -> None:
        pair = pairs[index % len(pairs)]
        # Owner and moderator take turns, so moderators' first answers are recorded too.
        sender = pair.owner if (index // len(pairs)) % 2 == 0 else pair.moderator
        started = time.perf_counter()
        await ctx.messages.post(
            sender, pair.conversation_id, f"message {index}", client_id=f"{phase}{index}"
        )
        latencies.append(time.perf_counter() - started)

    async def caller(first: int) -> None:
        for index in range(first, messages, callers):
            await post(index)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller(k) for k in range(callers)))
    return Outcome(messages, time.perf_counter() - started, time.process_time() - cpu, latencies)


async def check_stored(ctx: AppContext, pairs: list[Pair], expected: int) -> None:
    """One row per post, and in every conversation one event for each seq 1..last_seq."""
    ids = [pair.conversation_id for pair in pairs]
    events = (
        select(func.count(Event.seq.distinct()))
        .where(
            Event.conversation_id == Conversation.id, Event.seq.between(1, Conversation.last_seq)
        )
        .scalar_subquery()
    )
    async with ctx.db.read() as session:
        stored = await session.scalar(select(func.count()).where(Message.conversation_id.in_(ids)))
        rows = await session.execute(
            select(Conversation.id, Conversation.last_seq, events).where(Conversation.id.in_(ids))
        )
        holes = [(row[0], row[1], row[2]) for row in rows if row[1] != row[2]]
    if stored != expected or holes:
        raise SystemExit(f"stored {stored} messages for {expected} posts; holes: {holes}")


async def run(url: str, conversations: int, callers: int, messages: int, kind: str) -> Outcome:
    settings = load_settings(
        data_dir=Path(tempfile.mkdtemp(prefix="chatforge-persistence-")),
        database_url=url,
        secret_key=SECRET,
        max_active_per_moderator=conversations,
        session_message_rate=UNREFUSED_RATE,
    )
    ctx = build_context(settings)
    try:
        pairs = await open_conversations(ctx, conversations, kind)
        # Warm-up: compile the statements and fill the pools before the clock starts.
        await post_all(ctx, pairs, 2 * conversations, 1, "warm")
        # As the server's start-up does (``app.py``): what exists now lives as long as the
        # process, and full collections no longer walk it.
        gc.freeze()
        outcome = await post_all(ctx, pairs, messages, callers, "m")
        await check_stored(ctx, pairs, 2 * conversations + messages)
        return outcome
    finally:
        gc.unfreeze()
        await ctx.close()


def fresh_sqlite_url() -> str:
    url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='chatforge-persistence-'))}/db"
    migrate.upgrade(url)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50, 500])
    parser.add_argument("--conversations", type=int, nargs="+", default=[1, 10])
    parser.add_argument(
        "--kind", choices=["support", "session"], default="support", help="conversations"
    )
    parser.add_argument("--postgres", metavar="URL", help="also run on this PostgreSQL database")
    parser.add_argument(
        "--sqlite", action=argparse.BooleanOptionalAction, default=True, help="run on SQLite"
    )
    parser.add_argument(
        "--loop", choices=["uvloop", "asyncio"], default="uvloop", help="uvloop, as uvicorn"
    )
    args = parser.parse_args()

    backends: list[tuple[str, Callable[[], str]]] = []
    if args.sqlite:
        backends.append(("sqlite", fresh_sqlite_url))
    if args.postgres:
        migrate.upgrade(args.postgres)
        backends.append(("postgres", lambda: str(args.postgres)))
    runner = asyncio.run
    if args.loop == "uvloop":
        import uvloop

        runner = uvloop.run

    print(
        f"{'backend':9} {'convs':>5} {'callers':>7} {'msgs/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'cpu us/msg':>10}  load average"
    )
    for (name, url), conversations, callers in itertools.product(
        backends, args.conversations, args.concurrency
    ):
        load = "/".join(f"{value:.1f}" for value in os.getloadavg())
        outcome = runner(run(url(), conversations, callers, args.messages, args.kind))
        print(
            f"{name:9} {conversations:>5} {callers:>7} {outcome.rate:>9.0f}"
            f" {1000 * percentile(outcome.latencies, 0.5):>8.2f}"
            f" {1000 * percentile(outcome.latencies, 0.99):>8.2f}"
            f" {1e6 * outcome.cpu_seconds / outcome.messages:>10.1f}  {load}",
            flush=True,
        )


if __name__ == "__main__":
    main()
