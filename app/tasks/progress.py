"""Live progress: what a task's ``progress``, ``progress_estimated`` and ``eta_s`` say.

A provider that reports progress (CogVideoX's denoising steps, the preview's rendered frames)
is shown as it reports (``progress_estimated: false``). For the others (Seedance, Jimeng) the
progress of a generating job is estimated from that provider's recent durations — the median
time from submit to "done" over its last ``SAMPLE`` successes, read from the store (so every
replica, and a restarted one, estimates alike) at most every ``REFRESH_S`` — and says so
(``progress_estimated: true``). ``eta_s`` is the estimated time left, where there is a basis.
Computed when a task is read, never stored: it moves with the clock.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from app.tasks.models import Task, TaskStage, TaskStatus, utcnow

if TYPE_CHECKING:
    from app.tasks.store import TaskStore

SAMPLE = 50
REFRESH_S = 30.0
#: "No success yet" is asked again sooner (another replica may have finished one).
REFRESH_NONE_S = 5.0
#: An estimate never claims more than this: the job is not done until the provider says so.
MAX_ESTIMATE = 95


@dataclass(frozen=True)
class Progress:
    progress: int
    estimated: bool
    eta_s: float | None


class ProgressEstimator:
    def __init__(self, store: TaskStore) -> None:
        self._store = store
        self._typical: dict[str, tuple[float, float | None]] = {}

    async def typical_s(self, provider: str) -> float | None:
        """The median submit-to-done time of the provider's recent successes (None: none yet)."""
        cached = self._typical.get(provider)
        now = time.monotonic()
        if cached is not None:
            at, typical = cached
            if now - at < (REFRESH_S if typical is not None else REFRESH_NONE_S):
                return typical
        from app.tasks.store import tasks_table

        c = tasks_table.c
        query = (
            sa.select(c.submit_started_at, c.generated_at)
            .where(
                c.provider == provider,
                c.status == TaskStatus.SUCCEEDED.value,
                c.generated_at.is_not(None),
                c.submit_started_at.is_not(None),
            )
            .order_by(c.finished_at.desc())
            .limit(SAMPLE)
        )

        def select() -> list[float]:
            with self._store.engine.connect() as conn:
                return [
                    (row.generated_at - row.submit_started_at).total_seconds()
                    for row in conn.execute(query)
                ]

        durations = [d for d in await self._store.run(select) if d >= 0]
        typical = statistics.median(durations) if durations else None
        self._typical[provider] = (now, typical)
        return typical

    def learn(self, task: Task) -> None:
        """A task ended here: its provider's figure is read afresh next time."""
        if task.provider is not None and task.status is TaskStatus.SUCCEEDED:
            self._typical.pop(task.provider, None)

    async def of(self, task: Task) -> Progress:
        if task.status.is_terminal or task.provider is None or "long_video" in task.route:
            # Ended; or a long video, whose progress its shots make (one clip's typical time
            # says nothing about it).
            return Progress(task.progress, False, None)
        generating = task.status is TaskStatus.RUNNING and task.stage is TaskStage.GENERATING
        if generating and task.progress > 0:
            # The provider's own progress: the time left at the rate so far.
            elapsed = _elapsed(task)
            eta = elapsed * (100 - task.progress) / task.progress if elapsed else None
            return Progress(task.progress, False, eta)
        typical = await self.typical_s(task.provider)
        if typical is None or typical <= 0:
            return Progress(task.progress, False, None)
        if generating:
            elapsed = _elapsed(task) or 0.0
            estimate = min(MAX_ESTIMATE, int(100 * elapsed / typical))
            return Progress(max(task.progress, estimate), True, max(0.0, typical - elapsed))
        if task.stage in (TaskStage.DOWNLOADING, TaskStage.UPLOADING):
            return Progress(max(task.progress, MAX_ESTIMATE), task.progress < MAX_ESTIMATE, None)
        # Queued, or expanding the prompt: the whole generation is still ahead.
        return Progress(task.progress, False, typical)


def _elapsed(task: Task) -> float | None:
    if task.submit_started_at is None:
        return None
    return max(0.0, (utcnow() - task.submit_started_at).total_seconds())
