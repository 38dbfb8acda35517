"""The database handle on SQLite: WAL, busy timeout, write transactions that queue, and the
read lane's look-ups."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, insert, literal, select, text
from sqlalchemy.exc import OperationalError, StatementError

from chatforge.settings import Settings
from chatforge.store.database import Database
from chatforge.store.models import Topic
from chatforge.store.types import utcnow
from chatforge.store.write_lane import Statements

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


def topic_row(name: str) -> dict[str, object]:
    return {"name": name, "description": "", "is_active": True, "created_at": utcnow()}


def topic_names(statements: Statements) -> tuple[str, list[str]]:
    """The thread the work ran on, and the topics it saw."""
    rows = statements.rows(select(Topic.__table__.c.name).order_by(Topic.__table__.c.id))
    return threading.current_thread().name, [name for (name,) in rows]


async def test_fetch_reads_on_the_read_lane_and_sees_every_commit_before_it(db: Database) -> None:
    assert await db.fetch(topic_names) == ("chatforge-reader", [])
    async with db.write() as session:
        session.add(Topic(name="first"))
    await db.transact(lambda s: s.run(insert(Topic.__table__), [topic_row("second")]))

    assert await db.fetch(topic_names) == ("chatforge-reader", ["first", "second"])


async def test_fetch_does_not_wait_for_an_open_write(db: Database) -> None:
    async with db.write() as session:
        session.add(Topic(name="uncommitted"))
        await session.flush()
        async with asyncio.timeout(TIMEOUT):
            assert (await db.fetch(topic_names))[1] == []
    assert (await db.fetch(topic_names))[1] == ["uncommitted"]


async def test_a_write_given_to_fetch_fails_and_stores_nothing(db: Database) -> None:
    def sneaky(statements: Statements) -> None:
        statements.run(insert(Topic.__table__), [topic_row("written by a reader")])

    with pytest.raises(OperationalError, match="readonly"):
        await db.fetch(sneaky)

    # The lane's transaction was ended: it reads on, and the writers were never held up.
    await db.transact(lambda s: s.run(insert(Topic.__table__), [topic_row("written")]))
    assert (await db.fetch(topic_names))[1] == ["written"]


async def test_fetch_on_an_in_memory_database_runs_in_a_read_session() -> None:
    database = Database("sqlite+aiosqlite:///:memory:")
    try:
        assert await database.fetch(lambda s: s.rows(select(literal(7)))) == [(7,)]
    finally:
        await database.dispose()


def add_topic(name: str) -> Callable[[Statements], None]:
    return lambda statements: statements.run(insert(Topic.__table__), [topic_row(name)])


async def test_steps_commit_at_the_end_of_their_block(db: Database) -> None:
    async with db.steps() as steps:
        await steps.run(add_topic("first"))
        await asyncio.sleep(0)  # async work between the steps
        await steps.run(add_topic("second"))
        assert (await db.fetch(topic_names))[1] == []  # not committed yet
    assert (await db.fetch(topic_names))[1] == ["first", "second"]


async def test_a_last_step_commits_with_itself_and_ends_the_transaction(db: Database) -> None:
    async with db.steps() as steps:
        await steps.run(add_topic("first"))
        await steps.last(add_topic("second"))
        # Committed in the last step's own hop, before the block ends.
        assert (await db.fetch(topic_names))[1] == ["first", "second"]
        with pytest.raises(RuntimeError, match="last step"):
            await steps.run(add_topic("too late"))
    assert (await db.fetch(topic_names))[1] == ["first", "second"]
    # The lane is free for the next transaction.
    await db.transact(add_topic("third"))
    assert (await db.fetch(topic_names))[1] == ["first", "second", "third"]


async def test_a_failing_last_step_rolls_back_every_step(db: Database) -> None:
    def fail(statements: Statements) -> None:
        add_topic("half")(statements)
        raise RuntimeError("the bots broke")

    with pytest.raises(RuntimeError, match="the bots broke"):
        async with db.steps() as steps:
            await steps.run(add_topic("first"))
            await steps.last(fail)
    assert (await db.fetch(topic_names))[1] == []
    await db.transact(add_topic("after"))
    assert (await db.fetch(topic_names))[1] == ["after"]
