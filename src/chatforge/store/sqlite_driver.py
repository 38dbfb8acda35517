"""aiosqlite with one thread hop per statement, under SQLAlchemy's asyncio engine on SQLite.

SQLAlchemy's aiosqlite adapter makes four round trips to aiosqlite's worker thread for every
statement: open a cursor, execute, fetch the rows, close the cursor. Each round trip is two
thread switches and a hand-over of the GIL, about 0.2-0.4 ms of CPU with both threads on one
core, so a transaction of ten statements (a message in a live session room) cost about 10 ms.
:class:`OneHopConnection` is aiosqlite's connection with a cursor that executes and fetches in
one trip and opens and closes without one: the adapter sees the same interface (an awaitable
cursor that is its own async context manager, ``execute``, ``fetchall``, ``description``,
``rowcount``, ``lastrowid``), and aiosqlite still owns the thread and the connection.

It leans on two of aiosqlite's private names, ``Connection._execute`` (run a function on the
thread) and ``Connection._conn``; the version is pinned, and ``tests/store/test_sqlite_driver.py``
fails if either changes.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite

_Rows = list[Any]


class OneHopCursor:
    arraysize = 1

    def __init__(self, connection: OneHopConnection) -> None:
        self._connection = connection
        self._cursor: sqlite3.Cursor | None = None
        self._rows: _Rows = []

    async def __aenter__(self) -> OneHopCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Any = None) -> OneHopCursor:
        self._cursor, self._rows = await self._connection.on_thread(_execute, sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> OneHopCursor:
        self._cursor, self._rows = await self._connection.on_thread(_execute_many, sql, parameters)
        return self

    async def fetchall(self) -> _Rows:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> _Rows:
        count = self.arraysize if size is None else size
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    async def close(self) -> None:
        # The sqlite3 cursor holds no statement once its rows were fetched: nothing to do there.
        self._rows = []

    @property
    def description(self) -> Sequence[Any] | None:
        return self._cursor.description if self._cursor is not None else None

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount if self._cursor is not None else -1

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid if self._cursor is not None else None


class OneHopConnection(aiosqlite.Connection):
    def cursor(self) -> OneHopCursor:  # type: ignore[override]
        return OneHopCursor(self)

    async def on_thread(self, function: Any, *args: Any) -> Any:
        """``function(sqlite3_connection, *args)`` on aiosqlite's thread, in one trip."""
        return await self._execute(functools.partial(function, self._conn, *args))  # type: ignore[no-untyped-call]


def _execute(
    connection: sqlite3.Connection, sql: str, parameters: Any
) -> tuple[sqlite3.Cursor, _Rows]:
    cursor = connection.cursor()
    cursor.execute(sql, () if parameters is None else parameters)
    return cursor, cursor.fetchall() if cursor.description else []


def _execute_many(
    connection: sqlite3.Connection, sql: str, parameters: Iterable[Any]
) -> tuple[sqlite3.Cursor, _Rows]:
    cursor = connection.cursor()
    cursor.executemany(sql, parameters)
    return cursor, []


def connect(path: str) -> OneHopConnection:
    """An unopened connection to the SQLite file ``path`` (SQLAlchemy awaits it)."""
    connection = OneHopConnection(
        functools.partial(sqlite3.connect, path, check_same_thread=False), iter_chunk_size=64
    )
    # As SQLAlchemy does for aiosqlite's own connections: a forgotten connection must not keep
    # the process alive.
    connection._thread.daemon = True
    return connection
