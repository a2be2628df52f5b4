"""Group commit for SQLite: writes that arrive together share one transaction.

SQLite has one writer at a time, so the task store's writes queue behind each other anyway.
When a hundred tasks change at once (a hundred jobs ending together), each write used to pay
for itself: a hop to a worker thread, a pooled connection, ``BEGIN`` and ``COMMIT``, and the
hand-over of the interpreter lock between threads. Here writes are handed to one writer
thread; whatever arrived while it was busy goes in its next transaction. A lone write waits
for nothing (it starts at once); a crowd shares the cost.

Every write is a function of the connection that runs in a transaction it does not own, with no
effect outside the database; its caller is answered after the commit. When any write of a batch
fails, the batch is rolled back and each of its writes runs again in a transaction of its own,
so that one write's error (an ``IntegrityError``, a domain error raised to roll back) is only
its own.

Hand-written: SQLAlchemy has no group commit, and the pieces are an asyncio future per write
and a single-thread executor.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

T = TypeVar("T")
Write = Callable[[sa.Connection], Any]
_Outcome = tuple[bool, Any]  # (succeeded, result or exception)


class GroupCommit:
    """One writer thread for ``engine``; ``lock`` is held around each transaction (the store's
    in-process SQLite write lock, which its other writes take too)."""

    def __init__(self, engine: Engine, lock: contextlib.AbstractContextManager[object]) -> None:
        self._engine = engine
        self._lock = lock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._pending: list[tuple[Write, asyncio.Future[Any]]] = []
        self._flushing: asyncio.Task[None] | None = None

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
            batch, self._pending = self._pending, []
            try:
                outcomes = await loop.run_in_executor(
                    self._executor, self._apply, [fn for fn, _ in batch]
                )
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
        await asyncio.to_thread(self._executor.shutdown)
