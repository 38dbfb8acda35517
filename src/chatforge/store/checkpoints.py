"""WAL checkpoints off the commit path.

In WAL mode SQLite appends each commit to the ``-wal`` file and copies pages back into the
database file at a checkpoint. By default the connection whose commit takes the WAL past 1,000
pages runs that checkpoint itself, inside its ``COMMIT``: it copies the pages and syncs the
database file, 5 to 7 ms on a small VM, about one commit in a hundred under steady writing. That
commit's callers wait for it, and so does every writer queued behind it on the write turn: it
was most of the write path's p99.

Here the server's connections run with ``wal_autocheckpoint=0`` and a :class:`Checkpointer`
checkpoints on a thread of its own, with its own connection, at most once per ``interval`` and
only when something was written. A ``PASSIVE`` checkpoint neither waits for nor blocks readers
and writers, so commits never pay for it.

One catch: the WAL starts over from its beginning only when a writer finds every frame of it
copied back, and under steady writing some commit always lands during the checkpoint. So when a
checkpoint leaves the WAL longer than ``restart_frames``, a second one runs at once, holding the
write turn: the few frames committed during the first are copied with no writer in between, and
the next commit starts the file over. Writers of this process wait for that short catch-up, once per
several seconds of heavy writing, instead of a full checkpoint every thousand pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable

from chatforge.store.sqlite_thread import SqliteThread

log = logging.getLogger(__name__)

RESTART_FRAMES = 4000
"""WAL frames (pages; 16 MiB at SQLite's default 4 KiB) past which a checkpoint takes the write
turn so that the WAL can start over."""


class Checkpointer:
    def __init__(
        self,
        path: str,
        prepare: Callable[[sqlite3.Connection], None],
        turn: asyncio.Lock,
        *,
        interval: float,
        restart_frames: int = RESTART_FRAMES,
    ) -> None:
        self.path = path
        self.interval = interval
        self.restart_frames = restart_frames
        self._turn = turn
        self._thread = SqliteThread(path, prepare, "chatforge-checkpoint")
        self._dirty = False
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # Checkpoints run, and the WAL's length in frames after the last one: for tests and
        # diagnostics.
        self.checkpoints = 0
        self.frames = 0

    def written(self) -> None:
        """Note a committed write transaction: a checkpoint follows within ``interval``."""
        self._dirty = True
        if self._timer is None and self._task is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.interval, self._start)

    def _start(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sqlite checkpoint")

    async def _run(self) -> None:
        try:
            self._dirty = False
            if await self._checkpoint() > self.restart_frames:
                # Right away, while only the commits made during the first one are left.
                async with self._turn:
                    await self._checkpoint()
        except Exception:
            # The next write tries again; meanwhile the WAL only grows, nothing is lost.
            log.exception("WAL checkpoint failed")
        finally:
            self._task = None
        if self._dirty:
            self.written()

    async def _checkpoint(self) -> int:
        self.frames = await self._thread.call(self._passive)
        self.checkpoints += 1
        return self.frames

    def _passive(self) -> int:
        connection = self._thread.connection()
        # (busy, frames in the WAL, frames copied back); busy means another connection was
        # checkpointing, which does the same job.
        _busy, frames, _copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(frames)

    async def close(self) -> None:
        """Stop, after one last checkpoint of whatever was written."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        try:
            if self._dirty:
                await self._thread.call(self._passive)
        except sqlite3.Error:
            log.exception("last WAL checkpoint failed")
        finally:
            await self._thread.close()
