"""Group commit: many concurrent callers' items handled in one write transaction.

On SQLite a write transaction costs far more than the rows it writes (``BEGIN IMMEDIATE``, the
commit, a thread hop per statement, all behind the process's write lock), so one transaction per
webhook caps a process at a few hundred webhooks a second. Here callers ``submit`` an item and
wait; one writer task takes everything queued, runs ``flush(transaction, items)`` in one transaction
(bulk statements, one result per item), and answers each caller only once that transaction has
committed: nobody is told about work that could still roll back.

If a batch fails because of what is in it (a bug or a constraint that one item trips), each of
its items is run again in a transaction of its own, so only the items that fail by themselves get
the error and the others are answered normally. Items must therefore be safe to handle again
after a rollback, which they are when everything they do is in the transaction. When the database
itself fails (locked past its busy timeout, a full disk, a lost connection: ``OSError`` or the
driver's ``OperationalError``), running the items one by one would only fail them one by one,
each after its own wait: the whole batch gets the error at once.

The generic ``GroupCommit`` of ``chatforge.store.group_commit`` has the same shape (``submit``,
one writer, futures resolved after the commit); this one takes an async ``flush``, because bot
handlers may be coroutines and run between the batch's reads and its writes, and an
``after_commit`` step (publishing the batch's events) whose failure does not undo the answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Generic, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

log = logging.getLogger(__name__)

Tx = TypeVar("Tx")
Item = TypeVar("Item")
Result = TypeVar("Result")
Begin = Callable[[], AbstractAsyncContextManager[Tx]]
Flush = Callable[[Tx, Sequence[Item]], Awaitable[Sequence[Result]]]
AfterCommit = Callable[[Tx], Awaitable[None]]

# Failures of the database rather than of a batch's contents.
OUTAGES = (OperationalError, InterfaceError, OSError)

# More items per transaction saves little once the fixed cost is shared, and a huge batch holds
# SQLite's write lock (and every caller in it) for longer.
MAX_BATCH = 256


class WriterStopped(RuntimeError):
    """The writer was shut down before this item's transaction committed."""


class GroupCommit(Generic[Tx, Item, Result]):
    def __init__(
        self,
        begin: Begin[Tx],
        flush: Flush[Tx, Item, Result],
        *,
        after_commit: AfterCommit[Tx] | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._begin = begin
        self._flush = flush
        self._after_commit = after_commit
        self.max_batch = max_batch
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._wakeup: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        # Batches committed and items handled, for tests and diagnostics.
        self.batches = 0
        self.items = 0

    async def submit(self, item: Item) -> Result:
        """Handle ``item`` in the next batch; returns its result once the batch committed.

        Raises what handling the item raised when it fails in a transaction of its own (the
        transaction rolled back: nothing of it is stored).
        """
        writer = self._writer
        if writer is None or writer.done():
            loop = asyncio.get_running_loop()
            writer = self._writer = loop.create_task(self._run(), name="group-commit writer")
        else:
            # The writer's loop is the caller's: ``get_running_loop`` asks the kernel for the
            # process id each time (a syscall per webhook), the task does not.
            loop = writer.get_loop()
            if self._wakeup is not None and not self._wakeup.done():
                self._wakeup.set_result(None)
        future: asyncio.Future[Result] = loop.create_future()
        self._queue.append((item, future))
        return await future

    async def close(self) -> None:
        """Stop the writer; callers still waiting get ``WriterStopped``."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        self._fail(self._queue, WriterStopped("the server is shutting down"))
        self._queue = []

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup = loop.create_future()
                await self._wakeup
            # Whatever arrived while the last batch was in its transaction is the next batch.
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                self._fail(batch, WriterStopped("the server is shutting down"))
                raise
            except Exception as exc:  # never lose the writer: fail this batch, serve the next
                log.exception("group commit writer failed")
                self._fail(batch, exc)

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        # A caller that went away (its request was cancelled) before its turn is not handled.
        batch = [(item, future) for item, future in batch if not future.done()]
        if not batch:
            return
        try:
            async with self._begin() as transaction:
                results = await self._flush(transaction, [item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(
                        f"flush returned {len(results)} results for {len(batch)} items"
                    )
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, OUTAGES):
                self._fail(batch, exc)
                return
            log.warning("a batch of %d failed (%r); handling its items one by one", len(batch), exc)
            for one in batch:
                await self._commit([one])
            return
        if self._after_commit is not None:
            # Committed is committed: a failure here (publishing events) must not make callers
            # retry work that is stored, so it is logged and the results still go out.
            try:
                await self._after_commit(transaction)
            except Exception:
                log.exception("after-commit work of a batch of %d failed", len(batch))
        self.batches += 1
        self.items += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    @staticmethod
    def _fail(batch: list[tuple[Item, asyncio.Future[Result]]], exc: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)
