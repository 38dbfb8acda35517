"""GroupCommit on a real SQLite file: acks only after the commit, batches that fail as a whole,
per-item failures, cancelled callers and closing. Nothing here depends on timing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from chatforge.store.database import Database
from chatforge.store.group_commit import GroupCommit, GroupCommitClosed, in_one_transaction
from chatforge.store.write_lane import Statements

TIMEOUT = 10  # seconds: the one timeout unit of the async tests here
INSERT = text("INSERT INTO items (name) VALUES (:name)")
DANGLING_REFERENCE = text("INSERT INTO refs (item) VALUES ('nothing')")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'items.db'}")
    async with database.write() as session:
        await session.execute(text("CREATE TABLE items (name TEXT PRIMARY KEY)"))
        # Checked only at COMMIT: a way to make a real commit fail.
        await session.execute(
            text(
                "CREATE TABLE refs (item TEXT REFERENCES items(name) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    try:
        yield database
    finally:
        await database.dispose()


class Recorder:
    """A flush that inserts every item in one executemany; names starting with "bad" are
    refused as a rule would refuse them."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def __call__(self, statements: Statements, items: Sequence[str]) -> list[str | Exception]:
        self.batches.append(list(items))
        statements.run(INSERT, [{"name": name} for name in items if not name.startswith("bad")])
        return [ValueError(name) if name.startswith("bad") else name.upper() for name in items]


async def stored(db: Database) -> list[str]:
    async with db.read() as session:
        return sorted((await session.scalars(text("SELECT name FROM items"))).all())


async def insert_alone(db: Database, name: str) -> str:
    async with db.write() as session:
        await session.execute(INSERT, {"name": name})
    return name.upper()


async def test_concurrent_submits_share_a_transaction_and_each_gets_its_result(
    db: Database,
) -> None:
    flush = Recorder()
    group: GroupCommit[str, str] = GroupCommit(in_one_transaction(db, flush))
    names = [f"item{n}" for n in range(100)]

    results = await asyncio.wait_for(asyncio.gather(*map(group.submit, names)), TIMEOUT)
    await group.close()

    assert results == [name.upper() for name in names]
    assert await stored(db) == sorted(names)
    assert sum(len(batch) for batch in flush.batches) == 100
    assert len(flush.batches) < 100  # callers shared transactions


async def test_no_caller_is_resolved_before_the_commit(db: Database) -> None:
    tasks: list[asyncio.Task[str]] = []
    done_while_writing: list[bool] = []
    record = Recorder()

    def flush(statements: Statements, items: Sequence[str]) -> list[str | Exception]:
        # Inside the transaction, so before its commit.
        done_while_writing.extend(task.done() for task in tasks)
        return record(statements, items)

    group: GroupCommit[str, str] = GroupCommit(in_one_transaction(db, flush))
    tasks.extend(asyncio.create_task(group.submit(f"item{n}")) for n in range(20))
    await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    await group.close()

    assert len(done_while_writing) >= 20 and not any(done_while_writing)
    assert len(await stored(db)) == 20


async def test_a_failed_commit_acks_nothing_and_stores_nothing(db: Database) -> None:
    def flush(statements: Statements, items: Sequence[str]) -> list[str | Exception]:
        results = Recorder()(statements, items)
        statements.run(DANGLING_REFERENCE, [{}])  # fails the COMMIT, not this statement
        return results

    group: GroupCommit[str, str] = GroupCommit(in_one_transaction(db, flush))
    results = await asyncio.wait_for(
        asyncio.gather(*(group.submit(f"item{n}") for n in range(10)), return_exceptions=True),
        TIMEOUT,
    )
    await group.close()

    assert all(isinstance(result, IntegrityError) for result in results), results
    assert await stored(db) == []
    async with db.read() as session:
        assert (await session.scalar(text("SELECT count(*) FROM refs"))) == 0


async def test_a_batch_that_fails_is_retried_item_by_item(db: Database) -> None:
    # The second "twin" breaks the primary key, so the whole batch rolls back; the fallback
    # then stores every other item exactly once and fails only the second twin.
    flush = Recorder()
    published: list[Sequence[str | Exception]] = []

    async def after_commit(results: Sequence[str | Exception]) -> None:
        published.append(results)

    group: GroupCommit[str, str] = GroupCommit(
        in_one_transaction(db, flush),
        fallback=lambda name: insert_alone(db, name),
        after_commit=after_commit,
    )
    names = ["a", "twin", "b", "twin", "c"]
    results = await asyncio.wait_for(
        asyncio.gather(*map(group.submit, names), return_exceptions=True), TIMEOUT
    )
    await group.close()

    assert len(flush.batches) == 1
    assert results[:3] == ["A", "TWIN", "B"] and results[4] == "C"
    assert isinstance(results[3], IntegrityError)
    assert await stored(db) == ["a", "b", "c", "twin"]
    assert published == []  # nothing of the rolled-back batch is announced


@pytest.mark.parametrize(
    "outage",
    [OSError(28, "No space left on device"), OperationalError("COMMIT", {}, Exception("locked"))],
)
async def test_when_the_database_fails_the_batch_is_not_retried_item_by_item(
    db: Database, outage: Exception
) -> None:
    flush = Recorder()
    retried: list[str] = []

    def failing(statements: Statements, items: Sequence[str]) -> list[str | Exception]:
        flush(statements, items)
        if len(flush.batches) == 1:
            raise outage
        return [item.upper() for item in items]

    async def alone(name: str) -> str:
        retried.append(name)
        return await insert_alone(db, name)

    group: GroupCommit[str, str] = GroupCommit(in_one_transaction(db, failing), fallback=alone)
    results = await asyncio.wait_for(
        asyncio.gather(*map(group.submit, ["a", "b", "c"]), return_exceptions=True), TIMEOUT
    )
    assert all(result is outage for result in results), results
    assert retried == [] and await stored(db) == []
    # The writer lives on: the next batch commits.
    assert await asyncio.wait_for(group.submit("d"), TIMEOUT) == "D"
    await group.close()
    assert await stored(db) == ["d"]


async def test_a_commit_that_miscounts_its_results_fails_every_caller(db: Database) -> None:
    async def short(items: Sequence[str]) -> list[str]:
        return []

    group: GroupCommit[str, str] = GroupCommit(short)
    results = await asyncio.wait_for(
        asyncio.gather(group.submit("a"), group.submit("b"), return_exceptions=True), TIMEOUT
    )
    await group.close()
    assert all(isinstance(r, RuntimeError) for r in results)
    assert "0 results for a batch of 2" in str(results[0])


async def test_a_refused_item_fails_alone_and_its_neighbours_commit(db: Database) -> None:
    group: GroupCommit[str, str] = GroupCommit(in_one_transaction(db, Recorder()))
    results = await asyncio.wait_for(
        asyncio.gather(*map(group.submit, ["x", "bad", "y"]), return_exceptions=True), TIMEOUT
    )
    await group.close()

    assert results[0] == "X" and results[2] == "Y"
    assert isinstance(results[1], ValueError)
    assert await stored(db) == ["x", "y"]


async def test_after_commit_runs_once_per_batch_before_the_acks_and_its_errors_are_contained(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[list[str | Exception]] = []
    tasks: list[asyncio.Task[str]] = []

    async def after_commit(results: Sequence[str | Exception]) -> None:
        calls.append(list(results))
        assert await stored(db) == ["p", "q"]  # committed
        assert not any(task.done() for task in tasks)  # not yet acked
        raise RuntimeError("broker away")

    group: GroupCommit[str, str] = GroupCommit(
        in_one_transaction(db, Recorder()), after_commit=after_commit
    )
    tasks.extend(asyncio.create_task(group.submit(name)) for name in ["p", "q"])
    results = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    await group.close()

    assert results == ["P", "Q"]
    assert calls == [["P", "Q"]]
    assert "after_commit failed" in caplog.text


async def test_cancelled_callers_lose_nothing_for_the_others(db: Database) -> None:
    """One caller gives up while its batch commits (its item is stored anyway), another gives
    up while queued behind it (its item is dropped); everybody else gets their result."""
    gate = asyncio.Event()
    in_flight = asyncio.Event()

    async def after_commit(results: Sequence[str | Exception]) -> None:
        if "FIRST0" in results:
            in_flight.set()
            await gate.wait()

    group: GroupCommit[str, str] = GroupCommit(
        in_one_transaction(db, Recorder()), after_commit=after_commit
    )
    first = [asyncio.create_task(group.submit(f"first{n}")) for n in range(5)]
    await asyncio.wait_for(in_flight.wait(), TIMEOUT)
    second = [asyncio.create_task(group.submit(f"second{n}")) for n in range(5)]
    await asyncio.sleep(0)  # the second wave is queued behind the gated batch
    first[2].cancel()
    second[3].cancel()
    gate.set()
    done = await asyncio.wait_for(asyncio.gather(*first, *second, return_exceptions=True), TIMEOUT)
    await group.close()

    assert isinstance(done[2], asyncio.CancelledError)
    assert isinstance(done[5 + 3], asyncio.CancelledError)
    expected = [n for n in range(10) if n not in (2, 8)]
    names = [f"first{n}" for n in range(5)] + [f"second{n}" for n in range(5)]
    assert [done[n] for n in expected] == [names[n].upper() for n in expected]
    assert await stored(db) == sorted(name for n, name in enumerate(names) if n != 8)


async def test_close_commits_what_is_queued_then_refuses_new_items(db: Database) -> None:
    group: GroupCommit[str, str] = GroupCommit(in_one_transaction(db, Recorder()))
    tasks = [asyncio.create_task(group.submit(f"item{n}")) for n in range(30)]
    await asyncio.sleep(0)  # queued, not yet written
    await asyncio.wait_for(group.close(), TIMEOUT)

    assert all(task.done() for task in tasks)
    assert [task.result() for task in tasks] == [f"ITEM{n}" for n in range(30)]
    with pytest.raises(GroupCommitClosed):
        await group.submit("late")


async def test_batches_never_exceed_max_batch(db: Database) -> None:
    flush = Recorder()
    group: GroupCommit[str, str] = GroupCommit(in_one_transaction(db, flush), max_batch=7)
    await asyncio.wait_for(asyncio.gather(*(group.submit(f"item{n}") for n in range(50))), TIMEOUT)
    await group.close()

    assert max(len(batch) for batch in flush.batches) == 7
    assert len(await stored(db)) == 50
