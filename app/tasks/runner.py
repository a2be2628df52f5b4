"""The in-process runner: one asyncio task per gateway task, resumed at start-up.

Handlers enqueue only after the task row is stored. Every task row carries a lease: the
process working on it (``lease_owner``) and until when (``lease_until``), renewed every
``lease_s / 3`` seconds while it runs. At start-up, and on every renewal round, a runner claims
the unfinished tasks that nobody holds — a graceful stop hands its tasks over at once, a crashed
process's tasks are taken over when their leases run out — so an accepted task always ends, and
several gateway processes on one store never work on the same task. Per-provider concurrency is
bounded inside the pipeline (``ProviderSlots``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid

from app.tasks.models import Task, utcnow
from app.tasks.pipeline import Pipeline
from app.tasks.signals import Signals
from app.tasks.store import TaskStore

logger = logging.getLogger(__name__)


class LocalRunner:
    def __init__(
        self, pipeline: Pipeline, store: TaskStore, nudges: Signals[None], *, lease_s: float = 30.0
    ) -> None:
        self._pipeline = pipeline
        self._store = store
        self._nudges = nudges
        self._lease_s = lease_s
        self._running: dict[str, asyncio.Task[None]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self.instance_id = uuid.uuid4().hex

    def lease_until(self) -> dt.datetime:
        """The lease a task created in this process starts with."""
        return utcnow() + dt.timedelta(seconds=self._lease_s)

    async def start(self) -> int:
        """Claim and resume the unfinished tasks nobody holds; return how many."""
        resumed = await self._claim_orphans()
        self._heartbeat = asyncio.create_task(self._keep_leases(), name="task-leases")
        return resumed

    async def _claim_orphans(self) -> int:
        claimed = await self._store.claim_orphans(self.instance_id, lease_s=self._lease_s)
        for task in claimed:
            self.enqueue(task, resumed=True)
        if claimed:
            logger.info("resumed %d unfinished task(s)", len(claimed))
        return len(claimed)

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                running = list(self._running)
                held = await self._store.renew_leases(
                    self.instance_id, running, lease_s=self._lease_s
                )
                for task_id in running:
                    job = self._running.get(task_id)
                    if task_id not in held and job is not None:
                        # Ended elsewhere (cancelled through another process) or taken over.
                        job.cancel()
                await self._claim_orphans()
            except Exception:  # the next round tries again; leases outlive one missed round
                logger.exception("renewing task leases failed")

    def enqueue(self, task: Task, *, resumed: bool = False) -> None:
        """Run a stored task (handlers enqueue only after the row is written)."""
        if task.id in self._running:
            return
        job = asyncio.create_task(self._pipeline.run(task, resumed=resumed), name=f"task-{task.id}")
        self._running[task.id] = job
        job.add_done_callback(lambda _: self._running.pop(task.id, None))

    async def cancel(self, task_id: str) -> None:
        job = self._running.get(task_id)
        if job is not None:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job

    def nudge(self, task_id: str) -> None:
        """Poll this task's provider job now (e.g. a provider callback arrived)."""
        self._nudges.fire(task_id)

    @property
    def active(self) -> int:
        return len(self._running)

    async def stop(self) -> None:
        """Stop working and hand every unfinished task over to the next process at once."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        jobs = list(self._running.values())
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)
        await self._store.release_leases(self.instance_id)
