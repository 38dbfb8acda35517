"""The group commit writer on its own: batches, answers after the commit, failures isolated."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.channels.batching import GroupCommit, WriterStopped


class FakeTransactions:
    """Transactions that record what was committed; a commit can be made to fail."""

    def __init__(self) -> None:
        self.committed: list[list[str]] = []
        self.fail_commit = False
        self.log: list[str] = []

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        batch: list[str] = []
        yield cast(AsyncSession, batch)
        if self.fail_commit:
            raise OSError("disk full")
        self.committed.append(batch)
        self.log.append("commit")

    async def flush(self, session: AsyncSession, items: Sequence[str]) -> list[str]:
        batch = cast(list[str], session)
        for item in items:
            if item.startswith("poison"):
                raise ValueError(f"cannot handle {item}")
            batch.append(item)
        return [item.upper() for item in items]


async def test_concurrent_items_share_one_transaction_and_get_their_own_results() -> None:
    db = FakeTransactions()
    writer = GroupCommit(db.begin, db.flush)
    results = await asyncio.gather(*(writer.submit(f"m{i}") for i in range(10)))
    assert results == [f"M{i}" for i in range(10)]
    assert db.committed == [[f"m{i}" for i in range(10)]]
    later = await asyncio.gather(writer.submit("a"), writer.submit("b"))
    assert later == ["A", "B"]
    assert db.committed[1:] == [["a", "b"]]
    await writer.close()


async def test_results_are_given_only_after_the_commit() -> None:
    db = FakeTransactions()
    order: list[str] = db.log

    async def flush(session: AsyncSession, items: Sequence[str]) -> list[str]:
        await asyncio.sleep(0)  # give callers every chance to run early
        return await db.flush(session, items)

    writer = GroupCommit(db.begin, flush)

    async def caller(item: str) -> None:
        await writer.submit(item)
        order.append(f"answered {item}")

    await asyncio.gather(caller("x"), caller("y"))
    assert order == ["commit", "answered x", "answered y"]
    await writer.close()


async def test_a_failing_item_fails_alone_and_its_batch_mates_commit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = FakeTransactions()
    writer = GroupCommit(db.begin, db.flush)
    results = await asyncio.gather(
        *(writer.submit(item) for item in ["a", "poison-1", "b", "c"]), return_exceptions=True
    )
    assert results[0] == "A" and results[2:] == ["B", "C"]
    assert isinstance(results[1], ValueError)
    # The whole batch rolled back, then each item had a transaction of its own.
    assert db.committed == [["a"], ["b"], ["c"]]
    assert "handling its items one by one" in caplog.text
    await writer.close()


async def test_when_the_commit_fails_nobody_is_answered_with_a_result() -> None:
    db = FakeTransactions()
    flushed: list[int] = []

    async def flush(session: AsyncSession, items: Sequence[str]) -> list[str]:
        flushed.append(len(items))
        return await db.flush(session, items)

    writer = GroupCommit(db.begin, flush)
    db.fail_commit = True
    results = await asyncio.gather(writer.submit("a"), writer.submit("b"), return_exceptions=True)
    assert all(isinstance(result, OSError) for result in results)
    assert db.committed == []
    # A failing database is not retried item by item: that would fail them one by one.
    assert flushed == [2]
    db.fail_commit = False
    assert await writer.submit("a") == "A"  # the writer lives on
    await writer.close()


async def test_after_commit_work_that_fails_does_not_withhold_the_results(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = FakeTransactions()

    async def publish(session: AsyncSession) -> None:
        raise ConnectionError("broker away")

    writer = GroupCommit(db.begin, db.flush, after_commit=publish)
    with caplog.at_level(logging.ERROR):
        assert await asyncio.gather(writer.submit("a"), writer.submit("b")) == ["A", "B"]
    assert db.committed == [["a", "b"]]  # once: committed work is never handled again
    assert "after-commit work of a batch of 2 failed" in caplog.text
    await writer.close()


async def test_a_caller_that_went_away_before_its_turn_is_not_handled() -> None:
    db = FakeTransactions()
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow(session: AsyncSession, items: Sequence[str]) -> list[str]:
        entered.set()
        await release.wait()
        return await db.flush(session, items)

    writer = GroupCommit(db.begin, slow)
    first = asyncio.create_task(writer.submit("first"))
    await entered.wait()
    gone = asyncio.create_task(writer.submit("gone"))
    kept = asyncio.create_task(writer.submit("kept"))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    assert await first == "FIRST"
    assert await kept == "KEPT"
    assert db.committed == [["first"], ["kept"]]
    await writer.close()


async def test_closing_refuses_what_is_still_waiting() -> None:
    db = FakeTransactions()
    blocked = asyncio.Event()

    async def stuck(session: AsyncSession, items: Sequence[str]) -> list[str]:
        blocked.set()
        await asyncio.Event().wait()
        raise AssertionError("never")

    writer = GroupCommit(db.begin, stuck)
    running = asyncio.create_task(writer.submit("in flight"))
    await blocked.wait()
    waiting = asyncio.create_task(writer.submit("queued"))
    await asyncio.sleep(0)
    await writer.close()
    for task in (running, waiting):
        with pytest.raises(WriterStopped):
            await task
    assert db.committed == []


async def test_a_flush_that_miscounts_its_results_is_a_loud_error() -> None:
    db = FakeTransactions()

    async def short(session: AsyncSession, items: Sequence[str]) -> list[Any]:
        return []

    writer = GroupCommit(db.begin, short)
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        await writer.submit("a")
    await writer.close()
