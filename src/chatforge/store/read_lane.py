"""Short read transactions in one thread hop: the look-ups on every request's path.

Through SQLAlchemy's asyncio session on aiosqlite, one look-up by primary key is a session, a
``BEGIN``, the ``SELECT``, a rollback and the pool's reset, each at least one round trip to the
connection's thread: 1.3-1.6 ms of CPU on the benchmark machine (both threads on one core), still
0.7 ms with one trip per statement (``store.sqlite_driver``). Every authenticated request, page
and WebSocket handshake makes one, to check its account. ``Database.fetch(work)`` runs a
read-only function on :class:`ReadLane` instead: a thread with its own connection, one hop, and
the function's statements in one snapshot. Elsewhere (PostgreSQL, in-memory SQLite) the same
function runs in a read session through ``run_sync``.

The lane runs one function at a time, so it is for look-ups that take microseconds; listings
and searches stay on the engine's pool.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Dialect

from chatforge.store.sqlite_thread import SqliteThread
from chatforge.store.write_lane import DriverStatements, Statements, as_dbapi_error

T = TypeVar("T")


class ReadLane:
    """A thread with its own read-only connection to a SQLite file."""

    def __init__(
        self, path: str, prepare: Callable[[sqlite3.Connection], None], dialect: Dialect
    ) -> None:
        self._dialect = dialect
        self._thread = SqliteThread(
            path, functools.partial(_read_only, prepare), "chatforge-reader", cached_statements=64
        )
        self._statements: DriverStatements | None = None

    async def run(self, work: Callable[[Statements], T]) -> T:
        """``work`` in one read transaction on the lane's thread; its result."""
        return await self._thread.call(functools.partial(self._read, work))

    def _read(self, work: Callable[[Statements], T]) -> T:
        statements = self._statements
        if statements is None:
            statements = DriverStatements(self._thread.connection(), self._dialect)
            self._statements = statements
        connection = statements.connection
        try:
            connection.execute("BEGIN")
            return work(statements)
        except sqlite3.Error as error:
            raise as_dbapi_error(error) from error
        finally:
            if connection.in_transaction:
                connection.execute("ROLLBACK")

    async def close(self) -> None:
        self._statements = None
        await self._thread.close()


def _read_only(
    prepare: Callable[[sqlite3.Connection], None], connection: sqlite3.Connection
) -> None:
    prepare(connection)
    # A function given to the read lane that tries to write fails instead of taking SQLite's
    # write lock behind the write lane's back.
    connection.execute("PRAGMA query_only=ON")
