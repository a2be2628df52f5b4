"""The in-process runner: one asyncio task per gateway task, resumed wherever it was left.

Handlers enqueue only after the task row is stored. Ownership is ``app.tasks.leases``': at
start-up and every ``[queue] takeover_check_s`` the runner claims the tasks nobody works on
(released by a graceful stop, or left by a dead process) and runs them; every ``lease_s / 3``
it renews its leases, and stops its local work on any task it no longer holds (cancelled
through another process, or taken over while this one stalled). Per-provider concurrency is
bounded inside the pipeline (``ProviderSlots``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.tasks.leases import Leases
from app.tasks.models import Task
from app.tasks.pipeline import Pipeline
from app.tasks.signals import Signals

logger = logging.getLogger(__name__)


class LocalRunner:
    def __init__(
        self,
        pipeline: Pipeline,
        leases: Leases,
        nudges: Signals[None],
        *,
        takeover_check_s: float = 1.0,
    ) -> None:
        self._pipeline = pipeline
        self._leases = leases
        self._nudges = nudges
        self._check_s = takeover_check_s
        self._running: dict[str, asyncio.Task[None]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self.instance_id = leases.instance_id

    @property
    def lease_s(self) -> float:
        return self._leases.lease_s

    async def start(self) -> int:
        """Take this process's instance lock, then claim and resume what nobody holds."""
        await self._leases.start()
        resumed = await self._claim()
        self._heartbeat = asyncio.create_task(self._keep_leases(), name="task-leases")
        return resumed

    async def _claim(self) -> int:
        claimed = await self._leases.claim()
        for task in claimed:
            self.enqueue(task, resumed=True)
        if claimed:
            logger.info("resumed %d unfinished task(s)", len(claimed))
        return len(claimed)

    async def _keep_leases(self) -> None:
        loop = asyncio.get_running_loop()
        renew_every = self._leases.lease_s / 3
        next_renewal = loop.time() + renew_every
        while True:
            await asyncio.sleep(min(self._check_s, renew_every))
            try:
                if loop.time() >= next_renewal:
                    next_renewal = loop.time() + renew_every
                    await self._renew()
                await self._claim()
            except Exception:  # the next round tries again; leases outlive a missed round
                logger.exception("task lease round failed")

    async def _renew(self) -> None:
        running = set(self._running)
        held = await self._leases.renew(running)
        for task_id in running - held:
            job = self._running.get(task_id)
            if job is not None:
                # Ended elsewhere (cancelled through another process) or taken over.
                logger.info("task %s is no longer ours; stopping local work", task_id)
                job.cancel()

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
        """Look at this task's provider job now (e.g. a provider callback arrived)."""
        self._pipeline.nudge(task_id)

    def works_on(self, task_id: str) -> bool:
        return task_id in self._running

    def watched_job(self, task_id: str) -> str | None:
        """The provider job this process is following for the task (None: not following)."""
        return self._pipeline.watched_job(task_id)

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
        try:
            await self._leases.release()
        finally:
            await self._leases.close()
