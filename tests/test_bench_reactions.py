"""``benchmarks/reactions.py`` runs end to end and its database check holds. Nothing here is
timed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.reactions import check_stored, open_room

from chatforge.context import AppContext

ROOT = Path(__file__).resolve().parent.parent


def test_a_small_run_prints_a_line_per_room_size() -> None:
    run = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.reactions"),
            *("--people", "1", "5", "--toggles", "23", "--hands", "--joins"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()[1:]
    rows = [line.split() for line in lines if "hands:" not in line and "joins:" not in line]
    assert [row[0] for row in rows] == ["1", "5"]
    hands = [line for line in lines if "hands:" in line]
    found = [re.search(r"all (\d+) up after [0-9.]+ ms", line) for line in hands]
    assert [match.group(1) if match else None for match in found] == ["1", "5"]
    assert all(re.fullmatch(r"[0-9.]+", value) for row in rows for value in row[1:5])
    # Only the room of five has anyone joining (the instructor of a room of one is in already).
    joins = [re.search(r"joins: all (\d+) in after [0-9.]+ ms", line) for line in lines]
    assert [match.group(1) for match in joins if match] == ["4"]


async def test_the_check_refuses_a_count_that_does_not_add_up(ctx: AppContext) -> None:
    room = await open_room(ctx, 3)
    first, second, third = room.people
    for person in (first, second, second):
        await ctx.reactions.toggle(person, room.id, room.message_id, "👏")
    await check_stored(ctx, room, {first.id: 1, second.id: 2, third.id: 0})
    with pytest.raises(SystemExit, match="reactions stored"):
        await check_stored(ctx, room, {first.id: 1, second.id: 1, third.id: 0})
    with pytest.raises(SystemExit, match="reaction events"):
        await check_stored(ctx, room, {first.id: 1, second.id: 2, third.id: 2})
