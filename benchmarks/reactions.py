"""Reactions: toggles per second through ``ReactionService``, no HTTP or sockets.

    python -m benchmarks.reactions --people 1 100 500 --toggles 5000

Each run gets a fresh SQLite file with one live session room, a message of its instructor,
and ``--people`` participants (the instructor among them), each toggling 👏 on that message in
turn, all at once: a class applauding. The rooms' reaction rate limit is raised so that it
counts every participant's toggle but refuses none. Prints toggles/s, the p50 / p99 latency of
one toggle (call to result), the CPU time this process spent per toggle (all threads) and the
load average before the run; then checks the database: who has a reaction on the message
follows from how many times each person toggled, and the room's last reaction event carries
that count.

With ``--hands`` each run then has everyone raise their hand at once ("raise your hand
if..."), and prints when the last hand was up and the CPU per raise; the queue is checked to
hold everyone once.

The participants enter the room all at once, as a class starting (``SessionService.enter``,
what the page and the socket's ``join_session`` use); ``--joins`` prints when the last one was
in and the CPU per join, after checking that everyone is a participant.

Pin it to one CPU as the server is (``taskset -c 0 python -m benchmarks.reactions``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import uvloop
from sqlalchemy import func, select

from benchmarks.harness import SECRET, percentile
from benchmarks.persistence import UNREFUSED_RATE, fresh_sqlite_url
from chatforge.context import AppContext, build_context
from chatforge.settings import load_settings
from chatforge.store.models import Event, Role, User
from chatforge.store.session_models import Reaction

CLAP = "👏"


@dataclass
class Room:
    id: int
    message_id: int
    people: list[User]
    # Everyone entering at once: seconds until the last was in, and CPU seconds.
    joins: tuple[float, float]


async def open_room(ctx: AppContext, people: int) -> Room:
    instructor = await ctx.accounts.register(
        "bench-instructor", "benchmark-pass", role=Role.moderator
    )
    room = await ctx.sessions.create(instructor, "Applause")
    members = [instructor]
    for index in range(people - 1):
        members.append(await ctx.accounts.register(f"bench-p{index}", "benchmark-pass"))
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(ctx.sessions.enter(member, room.id) for member in members[1:]))
    joins = (time.perf_counter() - started, time.process_time() - cpu)
    state = await ctx.sessions.room(instructor, room.id)
    if sorted(p.user_id for p in state.participants) != sorted(m.id for m in members):
        raise SystemExit(f"{len(state.participants)} participants for {people} people")
    message = await ctx.messages.post(instructor, room.id, "Thank you all!")
    return Room(room.id, message.message_id, members, joins)


async def toggle_all(ctx: AppContext, room: Room, toggles: int) -> tuple[float, float, list[float]]:
    """Everyone toggling at once, ``toggles`` in all; (seconds, CPU seconds, latencies)."""
    latencies: list[float] = []

    async def person(first: int) -> None:
        for _ in range(first, toggles, len(room.people)):
            started = time.perf_counter()
            await ctx.reactions.toggle(room.people[first], room.id, room.message_id, CLAP)
            latencies.append(time.perf_counter() - started)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(person(k) for k in range(len(room.people))))
    return time.perf_counter() - started, time.process_time() - cpu, latencies


async def check_stored(ctx: AppContext, room: Room, toggled: dict[int, int]) -> None:
    """An odd number of toggles leaves a person's reaction on; the last event has the count."""
    expected = {user_id for user_id, times in toggled.items() if times % 2}
    async with ctx.db.read() as session:
        stored = set(
            await session.scalars(
                select(Reaction.user_id).where(Reaction.message_id == room.message_id)
            )
        )
        last = await session.scalar(
            select(Event.payload)
            .where(Event.conversation_id == room.id, Event.type.like("reaction_%"))
            .order_by(Event.seq.desc())
            .limit(1)
        )
        events = await session.scalar(
            select(func.count()).where(
                Event.conversation_id == room.id, Event.type.like("reaction_%")
            )
        )
    if stored != expected or (last or {}).get("count") != len(expected):
        raise SystemExit(f"{len(stored)} reactions stored, {len(expected)} expected: {last}")
    if events != sum(toggled.values()):
        raise SystemExit(f"{events} reaction events for {sum(toggled.values())} toggles")


async def raise_all(ctx: AppContext, room: Room) -> tuple[float, float]:
    """Everyone raising their hand at once; (seconds until the last was up, CPU seconds)."""
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(ctx.hands.raise_hand(person, room.id) for person in room.people))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    queue = await ctx.hands.hands(room.people[0], room.id)
    if sorted(hand.user_id for hand in queue) != sorted(person.id for person in room.people):
        raise SystemExit(f"{len(queue)} hands up for {len(room.people)} people")
    return elapsed, cpu


async def run(
    url: str, people: int, toggles: int, hands: bool
) -> tuple[float, float, list[float], tuple[float, float] | None, tuple[float, float]]:
    settings = load_settings(
        data_dir=Path(tempfile.mkdtemp(prefix="chatforge-reactions-")),
        database_url=url,
        secret_key=SECRET,
        session_reaction_rate=UNREFUSED_RATE,
    )
    ctx = build_context(settings)
    try:
        room = await open_room(ctx, people)
        # Warm-up: each person on and off again, so statements are compiled and cached.
        await toggle_all(ctx, room, 2 * people)
        gc.freeze()  # as the server's start-up does (app.py)
        outcome = await toggle_all(ctx, room, toggles)
        toggled = {p.id: 2 for p in room.people}
        for index in range(toggles):
            toggled[room.people[index % people].id] += 1
        await check_stored(ctx, room, toggled)
        return (*outcome, await raise_all(ctx, room) if hands else None, room.joins)
    finally:
        gc.unfreeze()
        await ctx.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, nargs="+", default=[1, 100, 500])
    parser.add_argument("--toggles", type=int, default=5000)
    parser.add_argument("--hands", action="store_true", help="then everyone raises a hand")
    parser.add_argument("--joins", action="store_true", help="how long everyone took to enter")
    args = parser.parse_args()
    print(f"{'people':>6} {'toggles/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu us/toggle':>13}  load")
    for people in args.people:
        load = "/".join(f"{value:.1f}" for value in os.getloadavg())
        seconds, cpu, latencies, hands, joins = uvloop.run(
            run(fresh_sqlite_url(), people, args.toggles, args.hands)
        )
        print(
            f"{people:>6} {args.toggles / seconds:>9.0f}"
            f" {1000 * percentile(latencies, 0.5):>8.2f} {1000 * percentile(latencies, 0.99):>8.2f}"
            f" {1e6 * cpu / args.toggles:>13.1f}  {load}",
            flush=True,
        )
        if args.joins and people > 1:
            joined, join_cpu = joins
            print(
                f"{'':>6} joins: all {people - 1} in after {1000 * joined:.1f} ms,"
                f" {1e6 * join_cpu / (people - 1):.0f} us of CPU per join",
                flush=True,
            )
        if hands is not None:
            up, raise_cpu = hands
            print(
                f"{'':>6} hands: all {people} up after {1000 * up:.1f} ms,"
                f" {1e6 * raise_cpu / people:.0f} us of CPU per raise",
                flush=True,
            )


if __name__ == "__main__":
    main()
