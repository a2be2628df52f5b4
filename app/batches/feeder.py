"""Turning a batch's rows into tasks, a bounded number at a time, across restarts and replicas.

Ownership works like tasks' (``app.tasks.leases``): each running batch is leased to one gateway
process, renewed every ``lease_s / 3``; a graceful stop releases its batches, and a process that
died (its instance lock is free) or stalled past its lease has its batches claimed by another.
Only the holder feeds, and a row is written only while the batch is still held and running.

Feeding a row is ``TaskService.create`` with the idempotency key ``batch:<batch id>:<row>``:
if a process creates the task and dies before recording it on the row, whoever feeds the row
next gets the same task back, so a row never becomes two tasks (the key lives 24 h; a batch
left unfed longer than that is the one case this does not cover). At most ``concurrency`` of
a batch's tasks are unfinished at a time. A create refused with 429 (the token's rate limit,
active-task cap or quota) or 503 leaves the row pending until ``Retry-After`` (1–60 s); any
other refusal fails that row alone, with the reason.

Hand-written: the leases are the same few SQL statements as the tasks' (no queue library
leases rows of our own tables), and the loop is one coroutine per held batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from app.batches.store import CANCELLED, COMPLETED, FAILED, FED, RUNNING, BatchRow, BatchStore
from app.errors import AppError, ForbiddenError, UnavailableError
from app.tasks.leases import Leases
from app.tasks.models import Task, utcnow
from app.tasks.service import TaskService
from app.tenants.principal import Principal

logger = logging.getLogger(__name__)

#: How often a feeder looks at its batch when nothing wakes it (tasks ending elsewhere).
TICK_S = 1.0
RETRY_MIN_S, RETRY_MAX_S = 1.0, 60.0


def row_key(batch_id: str, idx: int) -> str:
    return f"batch:{batch_id}:{idx}"


def _retry_after(exc: AppError, attempts: int) -> float:
    header = exc.headers.get("Retry-After")
    try:
        seconds = float(header) if header is not None else 2.0**attempts
    except ValueError:
        seconds = 2.0**attempts
    return min(RETRY_MAX_S, max(RETRY_MIN_S, seconds))


class BatchFeeder:
    def __init__(
        self,
        *,
        store: BatchStore,
        tasks: TaskService,
        leases: Leases,
        principals: Callable[[str], Awaitable[Principal | None]],
        check_s: float = 1.0,
    ) -> None:
        self._store = store
        self._tasks = tasks
        self._principals = principals
        self._leases = leases
        self._check_s = check_s
        self._feeding: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._loop: asyncio.Task[None] | None = None

    @property
    def instance_id(self) -> str:
        return self._leases.instance_id

    async def start(self) -> None:
        await self._claim()
        self._loop = asyncio.create_task(self._keep(), name="batch-leases")

    async def stop(self) -> None:
        """Stop feeding and hand this process's batches to the next one at once."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        jobs = list(self._feeding.values())
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        await self._store.release(self.instance_id)

    async def take(self, batch_id: str) -> None:
        """A batch was just created here: claim it now rather than at the next round."""
        await self._claim()
        self.wake(batch_id)

    def wake(self, batch_id: str) -> None:
        event = self._wake.get(batch_id)
        if event is not None:
            event.set()

    def task_ended(self, task: Task) -> None:
        """One of this process's tasks ended; if it is a batch's, its feeder looks now."""
        if task.group_id:
            self.wake(task.group_id)

    async def _claim(self) -> None:
        owners, claimable = await self._store.lease_owners()
        dead = await self._leases.dead(owners) if owners else set()
        if not dead and not claimable:
            return
        for batch_id in await self._store.claim(
            self.instance_id, lease_s=self._leases.lease_s, dead_owners=dead
        ):
            self._start(batch_id)

    def _start(self, batch_id: str) -> None:
        if batch_id in self._feeding:
            return
        self._wake[batch_id] = asyncio.Event()
        job = asyncio.create_task(self._feed(batch_id), name=f"batch-{batch_id}")
        self._feeding[batch_id] = job

        def done(_: asyncio.Task[None]) -> None:
            self._feeding.pop(batch_id, None)
            self._wake.pop(batch_id, None)

        job.add_done_callback(done)

    async def _keep(self) -> None:
        last_renew = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._check_s)
            try:
                if loop.time() - last_renew >= self._leases.lease_s / 3:
                    last_renew = loop.time()
                    held = await self._store.renew(
                        self.instance_id, list(self._feeding), lease_s=self._leases.lease_s
                    )
                    for batch_id, job in list(self._feeding.items()):
                        if batch_id not in held:
                            job.cancel()  # cancelled, finished or taken over elsewhere
                await self._claim()
            except Exception:  # the next round tries again; leases outlive a missed round
                logger.exception("batch lease round failed")

    async def _feed(self, batch_id: str) -> None:
        try:
            while True:
                batch = await self._store.get(batch_id)
                if batch is None or batch.status != RUNNING:
                    return
                if batch.lease_owner != self.instance_id:
                    return
                live = await self._store.live_task_ids(batch_id)
                free = batch.concurrency - len(live)
                fed = 0
                if free > 0:
                    for row in await self._store.due_rows(batch_id, limit=free):
                        fed += await self._feed_row(batch.id, batch.owner, row)
                if not live and not fed and not await self._store.pending(batch_id):
                    await self._store.finish(batch_id, COMPLETED)
                    logger.info("batch %s completed", batch_id)
                    return
                event = self._wake[batch_id]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), TICK_S)
                event.clear()
        except asyncio.CancelledError:
            raise
        except Exception:  # the lease runs out and this batch is claimed again
            logger.exception("feeding batch %s failed", batch_id)

    async def _feed_row(self, batch_id: str, owner: str, row: BatchRow) -> int:
        """Create the row's task (or find it); 1 when the row now has a task."""
        assert row.body is not None  # rows without a body were stored as failed
        me = self.instance_id
        try:
            # The batch's tenant as it is now: its limits, quotas and providers apply to every
            # row, and a revoked token stops its batches.
            principal = await self._principals(owner)
            if principal is None:
                raise ForbiddenError("the token that created this batch was revoked")
            task, _ = await self._tasks.create(
                row.body,
                owner=owner,
                idempotency_key=row_key(batch_id, row.idx),
                explicit=set(row.body),
                group_id=batch_id,
                principal=principal,
            )
        except AppError as exc:
            if exc.status_code == 429 or isinstance(exc, UnavailableError):
                delay = _retry_after(exc, row.attempts)
                await self._store.update_row(
                    batch_id,
                    row.idx,
                    fence=me,
                    attempts=row.attempts + 1,
                    next_attempt_at=utcnow() + dt.timedelta(seconds=delay),
                )
                logger.info("batch %s row %d waits %.0f s (%s)", batch_id, row.idx, delay, exc.code)
            else:
                await self._store.update_row(
                    batch_id, row.idx, fence=me, status=FAILED, error=exc.to_dict()
                )
            return 0
        if await self._store.update_row(batch_id, row.idx, fence=me, status=FED, task_id=task.id):
            return 1
        # The batch was cancelled (or taken over) while this row was being fed.
        batch = await self._store.get(batch_id)
        if batch is not None and batch.status == CANCELLED:
            await self._tasks.cancel(task.id, owner=owner)
        return 0
