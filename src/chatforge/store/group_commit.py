"""Group commit: many concurrent writers share one transaction, and each is acked after it.

A transaction costs a fixed price (``BEGIN IMMEDIATE``, ``COMMIT``, one thread hop per
statement through the async driver) that dwarfs the work of one small insert. ``GroupCommit``
pays it once for a whole batch: callers ``submit`` items and wait; one writer task takes
everything queued (up to ``max_batch``), hands it to a ``commit`` function that writes the batch
with a few bulk statements in one write transaction, and only once that transaction committed
resolves each caller's future. While a batch commits, new submissions queue up and form the
next batch, so the batch size follows the load and an idle system still commits at once.

The guarantees callers rely on:

* No caller is told its item succeeded unless the transaction holding it committed.
* ``commit`` returns one result per item; an ``Exception`` in that list fails only its own
  item (a rule the item broke) while the rest of the batch commits.
* If ``commit`` raises, nothing of the batch was stored. With a ``fallback``
  each item is then retried alone through it, so one bad item cannot fail its neighbours;
  without one, every item of the batch gets the exception.
* A caller cancelled while it waits does not disturb the batch: its item is either dropped
  (not yet taken) or committed like the others (already in flight), and nobody else notices.
* When the database itself fails (locked past its busy timeout, a full disk, a lost
  connection: ``OSError`` or the driver's ``OperationalError``), retrying item by item would
  only fail them one by one, each after its own wait: the whole batch gets the error at once.

Two writers use it. The message writer's transaction is one synchronous ``flush`` on the write
lane (:func:`in_one_transaction`). A webhook batch's transaction has steps, with bot handlers
(which may be coroutines) running on the event loop between its reads and its writes: the
gateway passes its own ``commit`` coroutine, and itself as the ``fallback`` for single items.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

from chatforge.errors import TryAgain
from chatforge.store.database import Database
from chatforge.store.write_lane import Statements

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
Commit = Callable[[Sequence[ItemT]], Awaitable[Sequence[ResultT | Exception]]]
"""One write transaction for a batch: its results (one per item, in order) once committed."""

# Failures of the database rather than of a batch's contents.
OUTAGES = (OperationalError, InterfaceError, OSError)

MAX_BATCH = 512
log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending(Generic[ItemT, ResultT]):
    item: ItemT
    future: asyncio.Future[ResultT]


class GroupCommitClosed(TryAgain):
    """Raised by ``submit`` once ``close`` was called (the server is stopping): nothing of the
    item was stored, so the client sends it again, to this process's successor."""


def in_one_transaction(
    db: Database, flush: Callable[[Statements, Sequence[ItemT]], Sequence[ResultT | Exception]]
) -> Commit[ItemT, ResultT]:
    """The commit of a synchronous ``flush``: the body of one ``Database.transact`` (on SQLite
    the whole batch is one trip to the write lane)."""
    return lambda items: db.transact(lambda statements: flush(statements, items))


class GroupCommit(Generic[ItemT, ResultT]):
    """Batch concurrent ``submit`` calls into shared write transactions.

    ``commit(items)`` runs one write transaction for the batch and returns once it committed;
    it should write the whole batch with bulk statements: its cost per item is what bounds
    throughput. ``after_commit(results)`` runs once the batch committed and before the callers are
    resolved (publishing events there means subscribers are sent them no later than the
    sender's ack); its failures are logged, never turned into failures of items that are
    already stored.
    """

    def __init__(
        self,
        commit: Commit[ItemT, ResultT],
        *,
        fallback: Callable[[ItemT], Awaitable[ResultT]] | None = None,
        after_commit: Callable[[Sequence[ResultT | Exception]], Awaitable[None]] | None = None,
        max_batch: int = MAX_BATCH,
        name: str = "group-commit",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.commit = commit
        self.fallback = fallback
        self.after_commit = after_commit
        self.max_batch = max_batch
        self.name = name
        self._queue: deque[_Pending[ItemT, ResultT]] = deque()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    async def submit(self, item: ItemT) -> ResultT:
        """Queue ``item`` for the next batch; returns its result once its batch committed."""
        if self._closing:
            raise GroupCommitClosed("The server is restarting; send it again.")
        future: asyncio.Future[ResultT] = self._writer_loop().create_future()
        self._queue.append(_Pending(item, future))
        self._wake.set()
        # Cancelling this await cancels the future: the writer then skips the item if it has
        # not taken it yet, and otherwise commits it and simply has nobody to tell.
        return await future

    async def close(self) -> None:
        """Refuse new items, commit everything already queued, then stop the writer."""
        self._closing = True
        writer = self._writer
        if writer is None:
            return
        self._wake.set()
        await asyncio.shield(writer)

    def _writer_loop(self) -> asyncio.AbstractEventLoop:
        """The loop of the writer task, which is started here if it is not running."""
        writer = self._writer
        if writer is None or writer.done():
            # Started lazily so the writer lives in the loop of its callers, not of whoever
            # built this object (tests and the CLI build the context before a loop runs).
            self._wake = asyncio.Event()
            writer = asyncio.get_running_loop().create_task(self._run(), name=self.name)
            self._writer = writer
        # Not ``get_running_loop()`` for every item: it asks the kernel for the process id
        # each time (a syscall per message on Python 3.11); the task knows its loop.
        return writer.get_loop()

    async def _run(self) -> None:
        batch: list[_Pending[ItemT, ResultT]] = []
        try:
            while True:
                batch = self._take()
                if batch:
                    await self._commit(batch)
                    batch = []
                    continue
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
        finally:
            # Only reached early if this task itself is cancelled (the loop shutting down):
            # fail whoever still waits rather than leaving them hanging forever.
            for pending in (*batch, *self._queue):
                if not pending.future.done():
                    pending.future.cancel()
            self._queue.clear()

    def _take(self) -> list[_Pending[ItemT, ResultT]]:
        batch: list[_Pending[ItemT, ResultT]] = []
        while self._queue and len(batch) < self.max_batch:
            pending = self._queue.popleft()
            if not pending.future.done():  # its caller gave up before it was written
                batch.append(pending)
        return batch

    async def _commit(self, batch: list[_Pending[ItemT, ResultT]]) -> None:
        items = [pending.item for pending in batch]
        try:
            results = await self.commit(items)
            if len(results) != len(items):
                raise RuntimeError(
                    f"{self.name}: {len(results)} results for a batch of {len(items)}"
                )
        except Exception as error:
            await self._recover(batch, error)
            return
        if self.after_commit is not None:
            try:
                await self.after_commit(results)
            except Exception:
                log.exception("%s: after_commit failed for a committed batch", self.name)
        for pending, result in zip(batch, results, strict=True):
            _settle(pending.future, result)

    async def _recover(self, batch: list[_Pending[ItemT, ResultT]], error: Exception) -> None:
        """The batch's transaction rolled back: retry its items alone, or fail them all."""
        if self.fallback is None or isinstance(error, OUTAGES):
            for pending in batch:
                _settle(pending.future, error)
            return
        if len(batch) > 1:
            log.warning(
                "%s: batch of %d failed (%r); retrying one by one", self.name, len(batch), error
            )
        for pending in batch:
            try:
                result: ResultT | Exception = await self.fallback(pending.item)
            except Exception as item_error:
                result = item_error
            _settle(pending.future, result)


def _settle(future: asyncio.Future[ResultT], result: ResultT | Exception) -> None:
    if future.done():  # cancelled by its caller meanwhile
        return
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)
