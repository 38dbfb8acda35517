"""``benchmarks/gateway.py`` runs end to end, accounts for every statement, and leaves the write
lane as it found it. Nothing here is timed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from benchmarks.gateway import StatementClock

from chatforge.store.write_lane import DriverStatements, WriteLane

ROOT = Path(__file__).resolve().parent.parent
SMALL_RUN = ("--senders", "20", "--batch", "8", "--rounds", "3", "--statements")


def test_a_small_run_prints_threads_statements_and_a_sound_database() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.gateway", *SMALL_RUN],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "24 messages in batches of 8" in out
    assert re.search(r"chatforge-writer\s+[0-9.]+ us/message", out)
    # The webhook's writes and the commit, each once per batch.
    for label in ("insert messages (insert_ids)", "insert events (run)", "commit"):
        assert re.search(rf"[0-9.]+\s+1\.0\s+{re.escape(label)}", out), label
    # 20 first contacts, then 24 measured messages: each claimed and logged once.
    assert "database ok: 44 MessageSids claimed, 44 interactions logged" in out


def test_the_statement_clock_puts_the_lane_back() -> None:
    before = (DriverStatements.rows, DriverStatements.run, WriteLane._end)
    clock = StatementClock()
    with clock.installed():
        assert DriverStatements.rows is not before[0]
        assert WriteLane._end is not before[2]
    assert (DriverStatements.rows, DriverStatements.run, WriteLane._end) == before
