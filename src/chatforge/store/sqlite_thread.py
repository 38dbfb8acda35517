"""A thread of its own, with a connection of its own, for blocking SQLite work.

The write lane and the checkpointer each run their statements this way: off the event loop, on
one thread owning one ``sqlite3`` connection. The connection is opened on first use with the
settings every connection to the file gets (``prepare``) and ``isolation_level=None``, so the
caller's statements say where transactions begin and end.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class SqliteThread:
    def __init__(
        self,
        path: str,
        prepare: Callable[[sqlite3.Connection], None],
        name: str,
        **connect: Any,
    ) -> None:
        self.path = path
        self._prepare = prepare
        self._connect = connect
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._connection: sqlite3.Connection | None = None

    def connection(self) -> sqlite3.Connection:
        """The thread's connection; only for functions running on the thread (``call``)."""
        if self._connection is None:
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, **self._connect
            )
            self._prepare(connection)
            self._connection = connection
        return self._connection

    def call(self, function: Callable[[], T]) -> asyncio.Future[T]:
        """Run ``function`` on the thread, after whatever was given to it before."""
        return asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def close(self) -> None:
        await self.call(self._disconnect)
        self._executor.shutdown(wait=False)

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
