"""The database handle on SQLite: WAL, busy timeout, and write transactions that queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import StatementError

from chatforge.settings import Settings
from chatforge.store.database import Database
from chatforge.store.models import Topic

TIMEOUT = 10  # seconds: the one timeout unit of the async tests here


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.resolved_database_url, busy_timeout_ms=1234)
    try:
        yield database
    finally:
        await database.dispose()


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(db: Database) -> None:
    async with db.read() as session:
        journal = await session.scalar(text("PRAGMA journal_mode"))
        busy = await session.scalar(text("PRAGMA busy_timeout"))
        foreign_keys = await session.scalar(text("PRAGMA foreign_keys"))

    assert journal == "wal"
    assert busy == 1234
    assert foreign_keys == 1


async def test_write_transactions_begin_immediate_and_reads_do_not(db: Database) -> None:
    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    async with db.write() as session:
        await session.execute(select(1))
    async with db.read() as session:
        await session.execute(select(2))

    begins = [s for s in statements if s.startswith("BEGIN")]
    assert begins == ["BEGIN IMMEDIATE", "BEGIN"]


async def test_concurrent_writers_queue_instead_of_failing(db: Database) -> None:
    # Each writer reads, waits while holding its transaction, then writes. With a deferred
    # BEGIN the later writers would hold stale read snapshots and fail with "database is
    # locked"; BEGIN IMMEDIATE makes them wait for the lock at the start.
    async def writer(index: int) -> int:
        async with db.write() as session:
            count = await session.scalar(select(func.count(Topic.id))) or 0
            await asyncio.sleep(0.05)
            session.add(Topic(name=f"topic {index}", description=f"saw {count}"))
        return count

    async with asyncio.timeout(TIMEOUT):
        seen = await asyncio.gather(*(writer(i) for i in range(5)))

    # Serialized: each writer saw the rows of every writer before it.
    assert sorted(seen) == [0, 1, 2, 3, 4]
    async with db.read() as session:
        assert await session.scalar(select(func.count(Topic.id))) == 5


async def test_a_reader_is_not_blocked_by_an_open_write(db: Database) -> None:
    async with db.write() as session:
        session.add(Topic(name="uncommitted"))
        await session.flush()
        async with asyncio.timeout(TIMEOUT), db.read() as reader:
            assert await reader.scalar(select(func.count(Topic.id))) == 0
    async with db.read() as reader:
        assert await reader.scalar(select(func.count(Topic.id))) == 1


async def test_a_failed_write_block_is_rolled_back(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.write() as session:
            session.add(Topic(name="half done"))
            await session.flush()
            raise RuntimeError("boom")

    async with db.read() as session:
        assert await session.scalar(select(func.count(Topic.id))) == 0


async def test_times_come_back_as_aware_utc(db: Database) -> None:
    local = timezone(timedelta(hours=2))
    async with db.write() as session:
        topic = Topic(name="dated", created_at=datetime(2030, 1, 1, 12, 0, tzinfo=local))
        session.add(topic)

    async with db.read() as session:
        stored = await session.get(Topic, topic.id)

    assert stored is not None
    assert stored.created_at == datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
    assert stored.created_at.utcoffset() == timedelta(0)


async def test_naive_times_are_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with db.write() as session:
            session.add(Topic(name="naive", created_at=datetime(2030, 1, 1)))  # noqa: DTZ001
