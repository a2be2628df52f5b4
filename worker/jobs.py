"""Jobs: the in-memory task store, the bounded queue and the single runner thread.

One ``JobQueue`` per worker process (one process per GPU). HTTP handlers call ``submit``, ``get``
and ``cancel``, which only touch the store under a lock and return immediately; the runner thread
(``run``) takes one job at a time and hands it to the ``Engine``. A job's state changes only here.

    queued ──► processing ──► completed ──(retention)──► deleted
       │            ├───────► failed
       └────────────┴───────► cancelled
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from worker.errors import (
    ConflictError,
    GenerationError,
    JobCancelledError,
    NotFoundError,
    QueueFullError,
)
from worker.video import write_mp4

log = logging.getLogger("worker.jobs")

# Share of the progress bar the denoising steps fill; decoding and MP4 export fill the rest.
STEPS_PROGRESS = 90
DECODED_PROGRESS = 95


class TaskStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


@dataclass(frozen=True, kw_only=True)
class GenerationInput:
    """Validated parameters of one generation (what the engine receives)."""

    prompt: str
    negative_prompt: str
    num_frames: int
    width: int
    height: int
    num_inference_steps: int
    guidance_scale: float
    seed: int
    fps: int
    image: bytes | None = None  # the encoded input image for image-to-video


class Engine(Protocol):
    """Runs one generation at a time; only the runner thread calls it.

    ``on_step(done, total)`` is called after each denoising step and may raise
    ``JobCancelledError``, which must propagate. Failures the caller should report are raised as
    ``GenerationError``.
    """

    def generate(
        self, params: GenerationInput, *, on_step: Callable[[int, int], None]
    ) -> npt.NDArray[np.uint8]: ...


@dataclass(frozen=True, kw_only=True)
class TaskView:
    """A consistent snapshot of a job, safe to hand to HTTP handlers."""

    task_id: str
    status: TaskStatus
    progress: int
    error: str | None
    seed: int
    num_frames: int
    width: int
    height: int
    fps: int
    queue_position: int | None
    cancel_requested: bool
    created_at: float
    started_at: float | None
    finished_at: float | None
    expires_at: float | None


@dataclass(kw_only=True)
class _Job:
    task_id: str
    params: GenerationInput
    fingerprint: str
    created_at: float
    status: TaskStatus = TaskStatus.QUEUED
    progress: int = 0
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class QueueStats:
    queue_length: int
    running: int
    max_queue: int


class JobQueue:
    """Task store + bounded FIFO + the runner loop. Thread-safe."""

    def __init__(
        self,
        *,
        output_dir: Path,
        max_queue: int,
        retention_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.output_dir = output_dir
        self.max_queue = max_queue
        self.retention_s = retention_s
        self._clock = clock
        self._cond = threading.Condition()
        self._jobs: dict[str, _Job] = {}
        self._pending: deque[str] = deque()
        self._running: str | None = None
        self._durations: deque[float] = deque(maxlen=10)
        self._closed = False

    # ---- called by HTTP handlers -------------------------------------------------------------
    def lookup(self, task_id: str | None, fingerprint: str) -> TaskView | None:
        """The task a client-chosen id already names (an idempotent repeat), if any.

        ``fingerprint`` digests the request as the client sent it; the same id with another
        fingerprint is a conflict.
        """
        if task_id is None:
            return None
        with self._cond:
            existing = self._jobs.get(task_id)
            if existing is None:
                return None
            if existing.fingerprint != fingerprint:
                raise ConflictError(f"task {task_id} already exists with different parameters")
            return self._view(existing)

    def submit(
        self, params: GenerationInput, *, fingerprint: str, task_id: str | None = None
    ) -> tuple[TaskView, bool]:
        """Queue a job; returns its view and whether it was created (False: idempotent repeat)."""
        with self._cond:
            if (existing := self.lookup(task_id, fingerprint)) is not None:
                return existing, False
            if len(self._pending) >= self.max_queue:
                raise QueueFullError(
                    f"the queue is full ({self.max_queue} waiting); retry later",
                    retry_after_s=self._retry_after_s(),
                )
            job = _Job(
                task_id=task_id or uuid.uuid4().hex,
                params=params,
                fingerprint=fingerprint,
                created_at=self._clock(),
            )
            self._jobs[job.task_id] = job
            self._pending.append(job.task_id)
            self._cond.notify_all()
            log.info("queued task_id=%s queue_length=%d", job.task_id, len(self._pending))
            return self._view(job), True

    def get(self, task_id: str) -> TaskView:
        with self._cond:
            return self._view(self._job(task_id))

    def cancel(self, task_id: str) -> TaskView:
        """Cancel: a queued job leaves the queue now, a running one stops after its current step."""
        with self._cond:
            job = self._job(task_id)
            if job.status is TaskStatus.QUEUED:
                self._pending.remove(task_id)
                self._finish(job, TaskStatus.CANCELLED)
            elif job.status is TaskStatus.PROCESSING:
                job.cancel.set()
            return self._view(job)

    def video_path(self, task_id: str) -> Path:
        with self._cond:
            job = self._job(task_id)
            if job.status is not TaskStatus.COMPLETED:
                raise ConflictError(f"task {task_id} is {job.status.value}, not completed")
            return self._path(task_id)

    def stats(self) -> QueueStats:
        with self._cond:
            return QueueStats(len(self._pending), int(self._running is not None), self.max_queue)

    # ---- the runner thread -------------------------------------------------------------------
    def run(self, engine: Engine) -> None:
        """Take jobs one at a time until ``close()``; a failing job never stops the loop."""
        while (job := self._next_job()) is not None:
            try:
                frames = engine.generate(
                    job.params, on_step=lambda done, total: self._on_step(job, done, total)
                )
                self._set_progress(job, DECODED_PROGRESS)
                if job.cancel.is_set():
                    raise JobCancelledError("cancelled")
                write_mp4(frames, self._path(job.task_id), fps=job.params.fps)
            except JobCancelledError:
                self._end(job, TaskStatus.CANCELLED, None)
            except GenerationError as exc:
                log.warning("task_id=%s failed: %s", job.task_id, exc)
                self._end(job, TaskStatus.FAILED, str(exc))
            except Exception as exc:
                log.exception("task_id=%s failed unexpectedly", job.task_id)
                self._end(job, TaskStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}")
            else:
                self._end(job, TaskStatus.COMPLETED, None)

    def close(self) -> None:
        """Stop the runner after the current step (the process is ending)."""
        with self._cond:
            self._closed = True
            if self._running is not None:
                self._jobs[self._running].cancel.set()
            self._cond.notify_all()

    # ---- retention ---------------------------------------------------------------------------
    def purge_expired(self) -> int:
        """Delete finished tasks and their videos after the retention time, and stray videos."""
        now = self._clock()
        with self._cond:
            expired = [
                job.task_id
                for job in self._jobs.values()
                if job.finished_at is not None and job.finished_at + self.retention_s <= now
            ]
            for task_id in expired:
                del self._jobs[task_id]
            known = set(self._jobs)
        removed = 0
        for task_id in expired:
            self._path(task_id).unlink(missing_ok=True)
            removed += 1
        # Videos left by an earlier process (the store is in memory) go by their age.
        for path in self.output_dir.glob("*.mp4*"):
            if path.name.split(".", 1)[0] in known:
                continue
            try:
                if path.stat().st_mtime + self.retention_s <= now:
                    path.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
        if removed:
            log.info("deleted %d expired tasks", removed)
        return removed

    # ---- internals ---------------------------------------------------------------------------
    def _next_job(self) -> _Job | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            job = self._jobs[self._pending.popleft()]
            job.status = TaskStatus.PROCESSING
            job.started_at = self._clock()
            self._running = job.task_id
            log.info("started task_id=%s", job.task_id)
            return job

    def _on_step(self, job: _Job, done: int, total: int) -> None:
        if job.cancel.is_set():
            raise JobCancelledError("cancelled")
        self._set_progress(job, STEPS_PROGRESS * done // max(total, 1))

    def _set_progress(self, job: _Job, progress: int) -> None:
        with self._cond:
            job.progress = max(job.progress, min(progress, 99))

    def _end(self, job: _Job, status: TaskStatus, error: str | None) -> None:
        with self._cond:
            self._running = None
            duration = self._clock() - (job.started_at or job.created_at)
            if status is TaskStatus.COMPLETED:
                self._durations.append(duration)
            if job.cancel.is_set() and status is TaskStatus.COMPLETED:
                status = TaskStatus.CANCELLED  # cancelled while the MP4 was being written
            if status is not TaskStatus.COMPLETED:
                self._path(job.task_id).unlink(missing_ok=True)
            job.error = error
            self._finish(job, status)
        log.info("finished task_id=%s status=%s in %.1f s", job.task_id, status.value, duration)

    def _finish(self, job: _Job, status: TaskStatus) -> None:
        job.params = replace(job.params, image=None)  # an input image can be megabytes
        job.status = status
        job.finished_at = self._clock()
        if status is TaskStatus.COMPLETED:
            job.progress = 100

    def _job(self, task_id: str) -> _Job:
        job = self._jobs.get(task_id)
        if job is None:
            raise NotFoundError(f"task {task_id} not found")
        return job

    def _path(self, task_id: str) -> Path:
        return self.output_dir / f"{task_id}.mp4"

    def _retry_after_s(self) -> int:
        # About when the running job ends and frees a slot.
        average = sum(self._durations) / len(self._durations) if self._durations else 30.0
        return max(1, min(3600, math.ceil(average)))

    def _view(self, job: _Job) -> TaskView:
        position = self._pending.index(job.task_id) + 1 if job.status is TaskStatus.QUEUED else None
        return TaskView(
            task_id=job.task_id,
            status=job.status,
            progress=job.progress,
            error=job.error,
            seed=job.params.seed,
            num_frames=job.params.num_frames,
            width=job.params.width,
            height=job.params.height,
            fps=job.params.fps,
            queue_position=position,
            cancel_requested=job.cancel.is_set(),
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            expires_at=job.finished_at + self.retention_s if job.finished_at is not None else None,
        )
