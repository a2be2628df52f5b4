"""The in-process runner: one asyncio task per gateway task, resumed at start-up.

Handlers enqueue only after the task row is stored; ``start()`` re-enqueues every unfinished
task so that an accepted task always ends, across restarts. Per-provider concurrency is
bounded inside the pipeline (``ProviderSlots``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.tasks.models import Task
from app.tasks.pipeline import Pipeline
from app.tasks.signals import Signals
from app.tasks.store import TaskStore

logger = logging.getLogger(__name__)


class LocalRunner:
    def __init__(self, pipeline: Pipeline, store: TaskStore, nudges: Signals[None]) -> None:
        self._pipeline = pipeline
        self._store = store
        self._nudges = nudges
        self._running: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> int:
        """Resume unfinished tasks; return how many."""
        unfinished = await self._store.unfinished()
        for task in unfinished:
            self.enqueue(task, resumed=True)
        if unfinished:
            logger.info("resumed %d unfinished task(s)", len(unfinished))
        return len(unfinished)

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
        jobs = list(self._running.values())
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)
