"""The SQLite driver under the async engine: one trip to the connection's thread per statement
(store/sqlite_driver.py), with the cursor behaving as SQLAlchemy's adapter expects."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, insert, select, text, update

from chatforge.store.database import Database
from chatforge.store.models import Topic
from chatforge.store.sqlite_driver import OneHopConnection
from chatforge.store.types import utcnow


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every function sent to a connection's thread."""
    sent: list[str] = []
    original = OneHopConnection._execute

    async def counted(self: OneHopConnection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(getattr(fn, "func", fn), "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(OneHopConnection, "_execute", counted)
    return sent


async def test_a_read_is_four_trips(db: Database, trips: list[str]) -> None:
    async with db.read() as session:
        await session.scalar(select(func.count(Topic.id)))  # the pool's first connection
    trips.clear()

    async with db.read() as session:
        assert await session.scalar(select(func.count(Topic.id))) == 0

    # BEGIN, the SELECT with its rows, the session's rollback and the pool's reset (through
    # aiosqlite's own cursor, the two statements alone took eight).
    assert trips == ["_execute", "_execute", "rollback", "rollback"]


async def test_a_write_keeps_ids_counts_and_returned_rows(db: Database, trips: list[str]) -> None:
    async with db.write() as session:
        first = Topic(name="first")
        session.add(first)
        await session.flush()
        assert first.id is not None  # lastrowid
        rows = [
            {"name": name, "description": "", "is_active": True, "created_at": utcnow()}
            for name in ("t0", "t2")
        ]
        await session.execute(insert(Topic), rows)  # executemany
        changed = await session.execute(
            update(Topic).where(Topic.name.like("t%")).values(description="x")
        )
        assert changed.rowcount == 2
        returned = await session.execute(
            update(Topic).where(Topic.id == first.id).values(description="y").returning(Topic.name)
        )
        assert returned.all() == [("first",)]
    assert trips.count("commit") == 1

    async with db.read() as session:
        result = await session.execute(text("SELECT name FROM topics ORDER BY id"))
        assert result.fetchone() == ("first",)
        assert result.fetchmany(5) == [("t0",), ("t2",)]
        assert result.fetchone() is None
