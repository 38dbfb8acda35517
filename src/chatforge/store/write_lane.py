"""Whole write transactions in one thread hop.

Through SQLAlchemy's asyncio layer on aiosqlite every statement is a round trip between the
event loop and aiosqlite's worker thread, and each round trip is two thread switches. One
message (a transaction of eight statements) cost about 3.5 ms of CPU that way, most of it in the
kernel switching threads, not in SQLite. ``Database.transact(work)`` runs a whole transaction
as one synchronous function instead: ``work(statements)`` issues its statements through
:class:`Statements` and returns a result; the transaction commits when it returns and rolls
back when it raises.

On a SQLite file the function runs on :class:`WriteLane`, a thread owning its own ``sqlite3``
connection (configured as the engine's), between ``BEGIN IMMEDIATE`` and ``COMMIT``: one hop
per transaction. Statements are SQLAlchemy Core constructs compiled once (``store.bulk``), with
values converted by the column types' own processors. Elsewhere (PostgreSQL, in-memory SQLite)
the same function runs in a session's transaction through ``run_sync``, so callers are written
once for both.

A transaction that must wait for async work half-way (a batch of webhooks: read, let the bots
step, write) is written as :class:`Steps` (``Database.steps()``): each ``run(work)`` is one such
function, one hop, in the same transaction, which commits when the block ends; ``last(work)``
commits in the hop of the last step instead of one more.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from chatforge.store.bulk import (
    Statement,
    compiled_form,
    driver_values,
    multi_row,
    python_rows,
)
from chatforge.store.sqlite_thread import SqliteThread

T = TypeVar("T")


class Statements(Protocol):
    """What a transaction function may do: the statements of one write transaction."""

    def rows(
        self, statement: Statement, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """The rows ``statement`` returns (a select, or DML with RETURNING), as tuples."""
        ...

    def run(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute ``statement`` once per row (inserts as multi-row VALUES); nothing if no rows."""
        ...

    def insert_ids(self, statement: Insert, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Insert ``rows`` and return the integer primary key given to each, in row order."""
        ...


class Steps(Protocol):
    """One write transaction, run as synchronous functions with async work between them."""

    async def run(self, work: Callable[[Statements], T]) -> T:
        """``work(statements)`` in the transaction; its result (not yet committed)."""
        ...

    async def last(self, work: Callable[[Statements], T]) -> T:
        """``work(statements)`` as the transaction's last step, with the commit in the same
        hop on the lane (in a session, the commit stays at the block's end, which must follow
        at once). No step may follow."""
        ...


class ConnectionStatements:
    """:class:`Statements` on a SQLAlchemy connection (inside ``run_sync``)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def rows(
        self, statement: Statement, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.connection.execute(statement, dict(params or {}))]

    def run(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            self.connection.execute(statement, [dict(row) for row in rows])

    def insert_ids(self, statement: Insert, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        if not rows:
            return []
        (key,) = list(statement.table.primary_key)
        returning = statement.returning(key, sort_by_parameter_order=True)
        return [row[0] for row in self.connection.execute(returning, [dict(r) for r in rows])]


class DriverStatements:
    """:class:`Statements` straight on a ``sqlite3`` connection, on the lane's thread."""

    def __init__(self, connection: sqlite3.Connection, dialect: Dialect) -> None:
        self.connection = connection
        self.dialect = dialect

    def rows(
        self, statement: Statement, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        compiled = compiled_form(statement, (), self.dialect)
        found = self.connection.execute(compiled.sql, driver_values(compiled, [params or {}])[0])
        return python_rows(compiled, found)

    def run(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        compiled = compiled_form(statement, tuple(rows[0]), self.dialect)
        values = driver_values(compiled, rows)
        chunks = multi_row(compiled.sql, values)
        if chunks is None:
            self.connection.executemany(compiled.sql, values)
            return
        for sql, params in chunks:
            self.connection.execute(sql, params)

    def insert_ids(self, statement: Insert, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        if not rows:
            return []
        if len(rows) == 1:
            # One row (a message alone, the usual case off peak): the cursor knows its rowid,
            # which spares the two look-ups below.
            compiled = compiled_form(statement, tuple(rows[0]), self.dialect)
            cursor = self.connection.execute(compiled.sql, driver_values(compiled, rows)[0])
            if cursor.lastrowid is None:
                raise RuntimeError("an insert that gave no rowid")
            return [cursor.lastrowid]
        # The lane holds the database's write lock, so the rows above the largest rowid seen
        # before the insert are exactly this insert's, and SQLite numbers them in row order.
        table = self.dialect.identifier_preparer.format_table(statement.table)
        (before,) = self.connection.execute(f"SELECT max(rowid) FROM {table}").fetchone()
        self.run(statement, rows)
        ids = [
            row[0]
            for row in self.connection.execute(
                f"SELECT rowid FROM {table} WHERE rowid > ? ORDER BY rowid", (before or 0,)
            )
        ]
        if len(ids) != len(rows):
            raise RuntimeError(f"{len(rows)} rows inserted into {table} but {len(ids)} found")
        return ids


class WriteLane:
    """A thread with its own connection to a SQLite file, running one transaction at a time.

    Callers must hold the database's write turn (``Database.transact`` does): the lane is one
    more writer of the file, and queuing behind the others in order beats waiting in SQLite's
    busy handler.
    """

    def __init__(
        self, path: str, prepare: Callable[[sqlite3.Connection], None], dialect: Dialect
    ) -> None:
        self.path = path
        self._dialect = dialect
        self._thread = SqliteThread(path, prepare, "chatforge-writer", cached_statements=256)
        self._statements: DriverStatements | None = None

    async def run(self, work: Callable[[Statements], T]) -> T:
        """``work`` in one transaction on the lane's thread; its result once committed."""
        return await self._settle(functools.partial(self._transact, work))

    @asynccontextmanager
    async def steps(self) -> AsyncIterator[Steps]:
        """A transaction whose ``run(work)`` calls take one hop each: the first begins it, and
        it commits when the block ends (rolls back when the block raises)."""
        steps = _LaneSteps(self)
        try:
            yield steps
        except BaseException:
            if steps.begun:
                await self._settle(functools.partial(self._end, "ROLLBACK"))
            raise
        if steps.begun and not steps.ended:
            await self._settle(functools.partial(self._end, "COMMIT"))

    async def _settle(self, function: Callable[[], T]) -> T:
        """``function`` on the lane's thread, seen through to its end even if we are cancelled."""
        future = self._thread.call(function)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The transaction goes on in its thread whatever happens here: wait for it, so the
            # caller's write turn is not handed on while the lane still holds SQLite's lock.
            await asyncio.wait({future})
            raise

    def _transact(self, work: Callable[[Statements], T]) -> T:
        try:
            result = self._step(work, begin=True)
        except BaseException:
            self._end("ROLLBACK")
            raise
        self._end("COMMIT")
        return result

    def _last_step(self, work: Callable[[Statements], T], *, begin: bool) -> T:
        result = self._step(work, begin=begin)
        self._end("COMMIT")
        return result

    def _step(self, work: Callable[[Statements], T], *, begin: bool) -> T:
        statements = self._statements
        if statements is None:
            statements = DriverStatements(self._thread.connection(), self._dialect)
            self._statements = statements
        try:
            if begin:
                statements.connection.execute("BEGIN IMMEDIATE")
            return work(statements)
        except sqlite3.Error as error:
            raise as_dbapi_error(error) from error

    def _end(self, command: str) -> None:
        """``COMMIT`` or ``ROLLBACK`` the lane's transaction, if one is open."""
        connection = self._thread.connection()
        try:
            if connection.in_transaction:
                connection.execute(command)
        except sqlite3.Error as error:
            if connection.in_transaction:  # a failed COMMIT may leave it open, or not
                connection.execute("ROLLBACK")
            raise as_dbapi_error(error) from error

    async def close(self) -> None:
        self._statements = None
        await self._thread.close()


class _LaneSteps:
    def __init__(self, lane: WriteLane) -> None:
        self._lane = lane
        self.begun = False
        self.ended = False

    async def run(self, work: Callable[[Statements], T]) -> T:
        return await self._lane._settle(functools.partial(self._lane._step, work, **self._next()))

    async def last(self, work: Callable[[Statements], T]) -> T:
        step = functools.partial(self._lane._last_step, work, **self._next())
        self.ended = True  # committed, or rolled back by the failure it raises
        return await self._lane._settle(step)

    def _next(self) -> dict[str, bool]:
        if self.ended:
            raise RuntimeError("the transaction's last step has run")
        begin, self.begun = not self.begun, True
        return {"begin": begin}


class SessionSteps:
    """:class:`Steps` in a session's transaction (PostgreSQL, in-memory SQLite)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def run(self, work: Callable[[Statements], T]) -> T:
        return await self.session.run_sync(in_session, work)

    async def last(self, work: Callable[[Statements], T]) -> T:
        # The session commits when ``Database.steps``'s block ends, right after this.
        return await self.run(work)


def in_session(session: Session, work: Callable[[Statements], T]) -> T:
    """``work`` on the connection of ``session``'s transaction (for ``run_sync``)."""
    return work(ConnectionStatements(session.connection()))


def as_dbapi_error(error: sqlite3.Error) -> StatementError:
    # As SQLAlchemy would raise it (IntegrityError, OperationalError...), so callers handle one
    # family of errors whichever way their transaction ran.
    return DBAPIError.instance(None, None, error, sqlite3.Error)
