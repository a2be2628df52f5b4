"""Group commit for SQLite: writes that arrive together share one transaction.

SQLite has one writer at a time, so the task store's writes queue behind each other anyway.
When a hundred tasks change at once (a hundred jobs ending together), each write used to pay
for itself: a hop to a worker thread, a pooled connection, ``BEGIN`` and ``COMMIT``, and the
hand-over of the interpreter lock between threads. Here writes are queued, and whatever arrived
while a transaction ran goes in the next one. A lone write waits for nothing (it starts at
once); a crowd shares the cost.

Transactions run on the event loop itself, on a connection of their own. A batch of a hundred
small writes takes SQLite 20-40 ms. The same batch in a writer thread took 120-250 ms while the
loop was busy, because the thread gives up the interpreter lock at every SQLite call and then
waits for the loop to hand it back (``bench/concurrency.py``). What could make the loop wait is
kept off it:

* that connection never waits for a lock (``busy_timeout`` 0). When another process or thread
  is writing, or anything else goes wrong, the batch is rolled back and goes to a writer thread
  as it used to, where it waits its turn;
* it never checkpoints the write-ahead log (``wal_autocheckpoint`` 0, which would ``fsync``);
  the writer thread does, after every ``CHECKPOINT_EVERY`` writes, as SQLite would have
  (a passive checkpoint, which waits for nothing).

Every write is a function of the connection that runs in a transaction it does not own, with no
effect outside the database, and small (one task's rows); its caller is answered after the
commit. When any write of a batch fails, the batch is rolled back and each of its writes runs
again in a transaction of its own, so that one write's error (an ``IntegrityError``, a domain
error raised to roll back) is only its own.

Hand-written: SQLAlchemy has no group commit, and the pieces are an asyncio future per write,
one connection and a single-thread executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: Writes committed on the loop between two checkpoints of the write-ahead log.
CHECKPOINT_EVERY = 1000
#: The most writes in one transaction: on the loop, 256 small writes take SQLite 50-100 ms,
#: during which nothing else runs there.
MAX_BATCH = 256
Write = Callable[[sa.Connection], Any]
_Outcome = tuple[bool, Any]  # (succeeded, result or exception)


class GroupCommit:
    """Transactions for ``engine``, on the loop or in one writer thread; ``lock`` is held
    around each transaction (the store's in-process SQLite write lock, which its other writes
    take too)."""

    def __init__(self, engine: Engine, lock: threading.Lock) -> None:
        self._engine = engine
        self._lock = lock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._pending: list[tuple[Write, asyncio.Future[Any]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._inline: sa.Connection | None = None
        self._since_checkpoint = 0
        self._checkpointing: asyncio.Future[None] | None = None

    async def write(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run ``fn`` in a write transaction (perhaps shared); its result after the commit."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="sqlite-group-commit")
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            fns = [fn for fn, _ in batch]
            try:
                outcomes = self._apply_inline(fns)
                if outcomes is None:
                    outcomes = await loop.run_in_executor(self._executor, self._apply, fns)
            except BaseException as exc:  # cancelled, or the executor is gone: answer everyone
                for _, future in [*batch, *self._pending]:
                    if not future.done():
                        future.set_exception(exc)
                self._pending = []
                raise
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():  # its caller was cancelled; the write stands
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            # Let the callers answered (and others) run and queue their next writes: they go
            # in one transaction rather than one each.
            await asyncio.sleep(0)

    def _apply_inline(self, fns: list[Write]) -> list[_Outcome] | None:
        """The batch in one transaction on the loop's connection; None (nothing written) when
        it cannot be done without waiting or failed: the writer thread then takes it."""
        if not self._lock.acquire(blocking=False):  # a write in a thread holds it
            return None
        try:
            conn = self._inline_connection()
            with conn.begin():
                results = [fn(conn) for fn in fns]
        except Exception as exc:
            logger.debug("batch of %d writes goes to the writer thread: %s", len(fns), exc)
            return None
        finally:
            self._lock.release()
        self._since_checkpoint += len(fns)
        if self._since_checkpoint >= CHECKPOINT_EVERY and self._checkpointing is None:
            self._since_checkpoint = 0
            self._checkpointing = asyncio.get_running_loop().run_in_executor(
                self._executor, self._checkpoint
            )
            self._checkpointing.add_done_callback(self._checkpointed)
        return [(True, result) for result in results]

    def _inline_connection(self) -> sa.Connection:
        if self._inline is None:
            conn = self._engine.connect()
            conn.exec_driver_sql("PRAGMA busy_timeout=0")
            conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
            conn.commit()
            self._inline = conn
        return self._inline

    def _checkpoint(self) -> None:
        with self._engine.connect() as conn:
            # PASSIVE, as SQLite's own automatic checkpoint: it waits for no reader or writer.
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _checkpointed(self, done: asyncio.Future[None]) -> None:
        self._checkpointing = None
        if not done.cancelled() and (exc := done.exception()) is not None:
            logger.warning("checkpointing the SQLite write-ahead log failed: %s", exc)

    def _apply(self, fns: list[Write]) -> list[_Outcome]:
        if len(fns) > 1:
            with contextlib.suppress(Exception):  # rolled back: each again on its own, below
                with self._lock, self._engine.begin() as conn:
                    results = [fn(conn) for fn in fns]
                return [(True, result) for result in results]
        outcomes: list[_Outcome] = []
        for fn in fns:
            try:
                with self._lock, self._engine.begin() as conn:
                    outcomes.append((True, fn(conn)))
            except Exception as exc:
                outcomes.append((False, exc))
        return outcomes

    async def aclose(self) -> None:
        if self._flushing is not None:
            await asyncio.wait({self._flushing})
        if self._checkpointing is not None:
            await asyncio.wait({self._checkpointing})
        if self._inline is not None:
            # Its settings are not for others: the pool does not get it back.
            self._inline.invalidate()
            self._inline.close()
            self._inline = None
        await asyncio.to_thread(self._executor.shutdown)
