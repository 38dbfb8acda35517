"""``benchmarks/ratelimits.py`` runs end to end and counts what it says. Nothing here is timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.ratelimits import RULE, measure

from chatforge.services.window_storage import MemoryWindows

ROOT = Path(__file__).resolve().parent.parent


def test_a_small_run_prints_every_storage_for_every_key_count() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.ratelimits", "--keys", "1", "3", "--seconds", "0.2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines()[1:]]
    assert [(row[0], row[1]) for row in rows] == [
        (name, keys) for keys in ("1", "3") for name in ("limits", "chatforge", "none")
    ]


async def test_every_action_is_counted_in_the_storage() -> None:
    storage = MemoryWindows()
    _, count = await measure(storage, 4, rate=200, seconds=0.1)
    assert count > 0
    # The warm-up counted each key once, then the actions went round the keys.
    counted = [
        (await storage.get_moving_window(RULE.key_for("session-message", "1", str(key)), 5, 10))[1]
        for key in range(4)
    ]
    hits = [1 + len(range(key, count, 4)) for key in range(4)]
    assert counted == [min(RULE.amount, n) for n in hits], "refused hits count nothing"
