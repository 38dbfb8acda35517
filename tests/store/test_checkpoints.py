"""WAL checkpoints run off the commit path, after writes, and keep the WAL from growing."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from chatforge.store.database import Database
from chatforge.store.write_lane import Statements

TIMEOUT = 10  # seconds
ROW = "x" * 3000  # most of a 4 KiB page: one row, about one WAL frame
CREATE = text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
INSERT = text("INSERT INTO notes (body) VALUES (:body)")


@pytest.fixture
async def make_db(tmp_path: Path) -> AsyncIterator[Callable[..., Database]]:
    opened: list[Database] = []

    def make(**kwargs: float) -> Database:
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}", **kwargs)
        opened.append(database)
        return database

    yield make
    for database in opened:
        await database.dispose()


def insert(count: int) -> Callable[[Statements], None]:
    def work(statements: Statements) -> None:
        statements.run(INSERT, [{"body": ROW}] * count)

    return work


def rows_in_main_file(db: Database, scratch: Path) -> int:
    """Rows a reader finds in the database file alone, without its WAL: what checkpoints
    have copied back."""
    assert db.checkpointer is not None
    copy = scratch / "main-only.db"
    shutil.copyfile(db.checkpointer.path, copy)
    with sqlite3.connect(copy) as connection:
        tables = connection.execute("SELECT count(*) FROM sqlite_master WHERE name = 'notes'")
        if tables.fetchone()[0] == 0:
            return 0
        return int(connection.execute("SELECT count(*) FROM notes").fetchone()[0])


def wal_pages(db: Database) -> float:
    """The WAL file's length, in 4 KiB pages (it is reused, not shrunk, when it starts over)."""
    assert db.checkpointer is not None
    return Path(f"{db.checkpointer.path}-wal").stat().st_size / 4096


async def wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(TIMEOUT * 100):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still false after {TIMEOUT} s")


async def create_table(db: Database) -> None:
    async with db.write() as session:
        await session.execute(CREATE)


async def test_commits_never_checkpoint_themselves(
    make_db: Callable[..., Database], tmp_path: Path
) -> None:
    # SQLite's own rule would checkpoint inside the commit that passes 1,000 WAL pages.
    db = make_db(checkpoint_seconds=3600)
    await create_table(db)
    for _ in range(30):
        await db.transact(insert(50))

    async with db.read() as session:
        assert await session.scalar(text("PRAGMA wal_autocheckpoint")) == 0
    assert rows_in_main_file(db, tmp_path) == 0
    assert wal_pages(db) > 1500


async def test_a_write_is_checkpointed_within_the_interval(
    make_db: Callable[..., Database], tmp_path: Path
) -> None:
    db = make_db(checkpoint_seconds=0.05)
    checkpointer = db.checkpointer
    assert checkpointer is not None
    await create_table(db)  # through the session path
    await wait_for(lambda: checkpointer.checkpoints >= 1)
    done = checkpointer.checkpoints
    await db.transact(insert(5))  # through the write lane

    await wait_for(lambda: checkpointer.checkpoints > done)
    assert rows_in_main_file(db, tmp_path) == 5
    # Nothing written since: no more checkpoints.
    done = checkpointer.checkpoints
    await asyncio.sleep(0.3)
    assert checkpointer.checkpoints == done


async def test_many_writes_make_one_checkpoint_per_interval(
    make_db: Callable[..., Database],
) -> None:
    # The interval is long enough for the 100 writes to end before it, on a busy machine too
    # (they take about 15 ms on a quiet one).
    db = make_db(checkpoint_seconds=2.0)
    checkpointer = db.checkpointer
    assert checkpointer is not None
    await create_table(db)
    await asyncio.gather(*(db.transact(insert(1)) for _ in range(100)))
    assert checkpointer.checkpoints == 0

    await wait_for(lambda: checkpointer.checkpoints >= 1)
    await asyncio.sleep(0.5)
    assert checkpointer.checkpoints == 1


async def test_the_wal_starts_over_under_steady_writing(
    make_db: Callable[..., Database], tmp_path: Path
) -> None:
    # Writes never pause, so a passive checkpoint alone would always leave the newest frames
    # behind and the WAL would never start over: every page written stays in it. How many pages
    # land between two checkpoints depends on how busy the machine is, so the test watches for
    # the WAL starting over (a checkpoint finding fewer frames than one before it) rather than
    # for a size.
    db = make_db(checkpoint_seconds=0.01)
    checkpointer = db.checkpointer
    assert checkpointer is not None
    checkpointer.restart_frames = 200
    await create_table(db)
    longest = 0
    transactions = 0
    while transactions < 2000:
        await db.transact(insert(10))
        transactions += 1
        await asyncio.sleep(0)
        if checkpointer.frames < longest:
            break
        longest = max(longest, checkpointer.frames)

    assert checkpointer.frames < longest, f"no restart in {transactions} transactions"
    with sqlite3.connect(tmp_path / "wal.db") as connection:
        assert connection.execute("SELECT count(*) FROM notes").fetchone()[0] == transactions * 10


async def test_closing_checkpoints_what_was_written(
    make_db: Callable[..., Database], tmp_path: Path
) -> None:
    db = make_db(checkpoint_seconds=3600)
    await create_table(db)
    await db.transact(insert(7))
    assert rows_in_main_file(db, tmp_path) == 0

    assert db.checkpointer is not None
    await db.checkpointer.close()
    assert rows_in_main_file(db, tmp_path) == 7


async def test_zero_seconds_leaves_checkpoints_to_sqlite(
    make_db: Callable[..., Database],
) -> None:
    db = make_db(checkpoint_seconds=0)
    assert db.checkpointer is None
    async with db.read() as session:
        assert await session.scalar(text("PRAGMA wal_autocheckpoint")) == 1000


async def test_a_failed_checkpoint_is_logged_and_retried_after_the_next_write(
    make_db: Callable[..., Database], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = make_db(checkpoint_seconds=0.02)
    checkpointer = db.checkpointer
    assert checkpointer is not None
    await create_table(db)
    await wait_for(lambda: checkpointer.checkpoints >= 1)
    passive = checkpointer._passive

    def broken() -> int:
        raise sqlite3.OperationalError("disk I/O error")

    checkpointer._passive = broken  # type: ignore[method-assign]
    await db.transact(insert(3))
    await wait_for(lambda: "WAL checkpoint failed" in caplog.text)
    assert rows_in_main_file(db, tmp_path) == 0

    checkpointer._passive = passive  # type: ignore[method-assign]
    done = checkpointer.checkpoints
    await db.transact(insert(2))
    await wait_for(lambda: checkpointer.checkpoints > done)
    assert rows_in_main_file(db, tmp_path) == 5
