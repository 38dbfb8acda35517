"""The database handle: one async engine, and read / write transactions on it.

On SQLite every connection runs in WAL mode with a busy timeout, and write transactions start
with ``BEGIN IMMEDIATE`` so that two writers queue on the lock at the start instead of failing
with "database is locked" when one of them upgrades a read lock half-way through.

Hot write paths use ``transact``: a whole transaction as one synchronous function, run in one
thread hop on SQLite (``store.write_lane``); the look-ups on every request's path use ``fetch``,
one hop to a read lane (``store.read_lane``). WAL checkpoints run on a thread of their own,
after writes, instead of inside every thousandth commit (``store.checkpoints``).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from chatforge.store import sqlite_driver
from chatforge.store.checkpoints import Checkpointer
from chatforge.store.read_lane import ReadLane
from chatforge.store.write_lane import SessionSteps, Statements, Steps, WriteLane, in_session

_WRITE = "chatforge_write"
T = TypeVar("T")


class Database:
    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int = 5000,
        checkpoint_seconds: float = 0.5,
        echo: bool = False,
    ) -> None:
        """``checkpoint_seconds``: on a SQLite file, how long after a write the WAL is
        checkpointed off the commit path; 0 leaves it to SQLite, inside commits."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        path = make_url(url).database if self.is_sqlite else None
        is_file = bool(path) and path != ":memory:" and not str(path).startswith("file:")
        if is_file:
            assert path is not None
            # One trip to the connection's thread per statement, not four (store.sqlite_driver).
            kwargs["async_creator"] = functools.partial(sqlite_driver.connect, path)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        # SQLite has one writer at a time. Queuing this process's writers here, in order, beats
        # many connections sleeping in SQLite's busy handler: under load that handler is unfair
        # and gives multi-second tails and "database is locked" errors. Other processes on the
        # same file still wait through the busy timeout.
        self._write_turn = asyncio.Lock() if self.is_sqlite else None
        self._lane: WriteLane | None = None
        self._reads: ReadLane | None = None
        self.checkpointer: Checkpointer | None = None
        if self.is_sqlite:
            prepare = functools.partial(
                _prepare_sqlite,
                busy_timeout_ms=busy_timeout_ms,
                autocheckpoint=not (is_file and checkpoint_seconds > 0),
            )
            _configure_sqlite(self.engine, prepare)
            if is_file:
                assert path is not None and self._write_turn is not None
                self._lane = WriteLane(path, prepare, self.engine.dialect)
                self._reads = ReadLane(path, prepare, self.engine.dialect)
                if checkpoint_seconds > 0:
                    self.checkpointer = Checkpointer(
                        path, prepare, self._write_turn, interval=checkpoint_seconds
                    )
        self._reader = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writer = async_sessionmaker(
            self.engine.execution_options(**{_WRITE: True}), expire_on_commit=False
        )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading; whatever it did is rolled back at the end."""
        async with self._reader() as session:
            yield session

    async def fetch(self, work: Callable[[Statements], T]) -> T:
        """Run ``work``, which only reads, in one read transaction; its result.

        For the short look-ups on every request's path: on a SQLite file it is one hop to the
        read lane (``store.read_lane``) instead of a session's round trips.
        """
        if self._reads is not None:
            return await self._reads.run(work)
        async with self.read() as session:
            return await session.run_sync(in_session, work)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction, committed when the block ends without an exception."""
        if self._write_turn is None:
            async with self._writer() as session, session.begin():
                yield session
            return
        async with self._write_turn, self._writer() as session, session.begin():
            yield session
        if self.checkpointer is not None:
            self.checkpointer.written()

    async def transact(self, work: Callable[[Statements], T]) -> T:
        """Run ``work`` as one write transaction; its result once that committed.

        ``work`` is synchronous and issues every statement through its argument; an exception
        from it (or from the commit) rolls the whole transaction back and is raised here.
        """
        if self._lane is not None:
            assert self._write_turn is not None
            async with self._write_turn:
                result = await self._lane.run(work)
            if self.checkpointer is not None:
                self.checkpointer.written()
            return result
        async with self.write() as session:
            return await session.run_sync(in_session, work)

    @asynccontextmanager
    async def steps(self) -> AsyncIterator[Steps]:
        """A write transaction as a few synchronous steps, ``await steps.run(work)``, with async
        work between them; it commits when the block ends without an exception.

        On a SQLite file each step is one hop to the write lane, which holds the write turn
        (and so SQLite's lock) from the first step to the commit.
        """
        if self._lane is None:
            async with self.write() as session:
                yield SessionSteps(session)
            return
        assert self._write_turn is not None
        async with self._write_turn, self._lane.steps() as steps:
            yield steps
        if self.checkpointer is not None:
            self.checkpointer.written()

    async def dispose(self) -> None:
        if self.checkpointer is not None:
            await self.checkpointer.close()
        if self._lane is not None:
            await self._lane.close()
        if self._reads is not None:
            await self._reads.close()
        await self.engine.dispose()


def _prepare_sqlite(
    connection: sqlite3.Connection, *, busy_timeout_ms: int, autocheckpoint: bool
) -> None:
    """The settings of every connection to the file: the engine's (aiosqlite's adapter, which
    has cursors but no ``execute``), the write lane's and the checkpointer's (plain
    ``sqlite3``)."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    if not autocheckpoint:
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _configure_sqlite(engine: AsyncEngine, prepare: Callable[[Any], None]) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself, so we choose its kind.
        dbapi_connection.isolation_level = None
        prepare(dbapi_connection)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
