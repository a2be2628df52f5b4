"""The work of one task: expand → submit → poll → re-host → done.

This is the only place a task's state moves forward. Every step is resumable: the provider
task id is stored the moment a provider accepts a job, so a restarted gateway polls that job
again instead of paying for a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from app.config import Settings
from app.errors import (
    AppError,
    ContentRejectedError,
    ProviderAuthError,
    ProviderError,
    ProviderTimeoutError,
    ValidationError,
    error_from_dict,
)
from app.prompts.service import PromptService
from app.providers.base import GenerationRequest, JobState, JobStatus, VideoProvider
from app.providers.registry import ProviderRegistry
from app.storage.base import Storage, new_object_key
from app.tasks.models import Task, TaskStage, TaskStatus, utcnow
from app.tasks.signals import Signals
from app.tasks.store import TaskStore

logger = logging.getLogger(__name__)

POLL_FIRST_S = 0.5
POLL_MAX_S = 10.0
POLL_GROWTH = 1.5
RELAY_ATTEMPTS = 3


class TaskCancelledError(Exception):
    """The task was cancelled while the pipeline worked on it."""


def build_request(task: Task) -> GenerationRequest:
    body = task.request
    return GenerationRequest(
        task_id=task.id,
        prompt=task.expanded_prompt or task.prompt,
        aspect_ratio=body.get("aspect_ratio", "16:9"),
        duration_ms=int(body.get("duration_ms", 5000)),
        fps=int(body.get("fps", 24)),
        negative_prompt=body.get("negative_prompt"),
        seed=body.get("seed"),
        resolution=body.get("resolution"),
        image_url=body.get("image_url"),
        last_frame_url=body.get("last_frame_url"),
        # Routing rules and adapters read platform/style from the options too.
        options={
            **(body.get("options") or {}),
            **{key: body[key] for key in ("platform", "style") if body.get(key)},
        },
    )


def video_filename(task: Task, now: dt.datetime | None = None) -> str:
    now = now or utcnow()
    return f"video_{now:%Y%m%d%H%M%S}_{task.id[-8:]}.mp4"


class ProviderSlots:
    """A concurrency bound per provider (``[queue] concurrency`` or the provider's own cap)."""

    def __init__(self, registry: ProviderRegistry, overrides: dict[str, int]) -> None:
        self._slots = {
            name: asyncio.Semaphore(
                overrides.get(name, registry.get(name).capabilities.max_concurrency)
            )
            for name in registry.names()
        }

    def __call__(self, name: str) -> asyncio.Semaphore:
        return self._slots[name]


class Pipeline:
    def __init__(
        self,
        *,
        settings: Settings,
        store: TaskStore,
        providers: ProviderRegistry,
        storage: Storage,
        prompts: PromptService,
        changes: Signals[Task],
        nudges: Signals[None],
        on_terminal: Callable[[Task], Awaitable[None]] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._providers = providers
        self._storage = storage
        self._prompts = prompts
        self._changes = changes
        self._nudges = nudges
        self._on_terminal = on_terminal
        self.slots = ProviderSlots(providers, settings.queue.concurrency)

    async def _update(self, task_id: str, **changes: Any) -> Task:
        updated = await self._store.update(task_id, **changes)
        if updated is None:
            raise TaskCancelledError(task_id)
        if updated.status.is_terminal:
            self._changes.fire(task_id, updated)  # waiters only care about the end
            if self._on_terminal is not None:
                await self._on_terminal(updated)
        return updated

    async def run(self, task: Task, *, resumed: bool = False) -> None:
        """Take ``task`` (as stored when it was created or found unfinished) to its end."""
        task_id = task.id
        if task.status.is_terminal:
            return
        try:
            if resumed:
                if task.attempts >= self._settings.queue.max_attempts:
                    raise ProviderError(
                        f"gave up after {task.attempts} interrupted attempts", retryable=False
                    )
                task = await self._update(task.id, attempts=task.attempts + 1)
            await self._run(task, resumed=resumed)
        except TaskCancelledError:
            logger.info("task %s was cancelled", task_id)
        except AppError as exc:
            await self._fail(task_id, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("task %s failed unexpectedly", task_id)
            await self._fail(
                task_id, ProviderError("internal error while processing the task", retryable=False)
            )
        finally:
            self._nudges.discard(task_id)

    async def _fail(self, task_id: str, exc: AppError) -> None:
        logger.info("task %s failed: %s (%s)", task_id, exc.message, exc.code)
        with contextlib.suppress(TaskCancelledError):
            await self._update(task_id, status=TaskStatus.FAILED, error=exc.to_dict())

    async def _run(self, task: Task, *, resumed: bool) -> None:
        if task.provider_task_id and task.provider:
            provider = self._providers.get(task.provider)
            await provider.resume(task.provider_task_id, build_request(task))
            async with self.slots(task.provider):
                await self._finish_job(task, provider)
            return

        task = await self._expand(task)
        chain: list[str] = list(task.route.get("chain") or [self._providers.default])
        for index, name in enumerate(chain):
            provider = self._providers.get(name)
            request = build_request(task)
            params = provider.plan(request)
            # A task waiting for a slot of its provider is "queued"; the submit and the state it
            # leads to are one write (the provider task id must be stored the moment we have it).
            async with self.slots(name):
                try:
                    provider_task_id = await provider.submit(request)
                except ProviderError as exc:
                    down = isinstance(exc, ProviderAuthError) or exc.retryable
                    if not down or index == len(chain) - 1:
                        await self._update(task.id, provider=name, params=params)
                        raise
                    logger.warning("provider %s is down (%s); falling back", name, exc.code)
                    reason = (
                        f"{task.route.get('reason', '')}; {name} failed ({exc.code}), fell back"
                    )
                    task = await self._update(task.id, route={**task.route, "reason": reason})
                    continue
                except (ContentRejectedError, ValidationError):
                    await self._update(task.id, provider=name, params=params)
                    raise
                task = await self._update(
                    task.id,
                    status=TaskStatus.RUNNING,
                    stage=TaskStage.GENERATING,
                    expanded_by=task.expanded_by,
                    request=task.request,
                    provider=name,
                    params=params,
                    route={**task.route, "provider": name} if index else task.route,
                    provider_task_id=provider_task_id,
                    provider_status="submitted",
                )
                await self._finish_job(task, provider)
                return
        # Unreachable while the chain is non-empty (the last provider's error is raised above),
        # but a task must never end silently.
        raise ProviderError("no provider could take the task", retryable=False)

    async def _expand(self, task: Task) -> Task:
        if task.expanded_by is not None:
            return task
        body = task.request
        wants = body.get("expand_prompt")
        expand = self._prompts.expands_by_default if wants is None else bool(wants)
        asks_shaping = any(body.get(k) for k in ("style", "template", "platform"))
        if expand or asks_shaping:
            task = await self._update(task.id, status=TaskStatus.RUNNING, stage=TaskStage.EXPANDING)
        chain = task.route.get("chain") or [self._providers.default]
        caps = self._providers.get(chain[0]).capabilities
        expansion = await self._prompts.expand(
            task.prompt,
            style=body.get("style"),
            template=body.get("template"),
            platform=body.get("platform"),
            max_chars=caps.max_prompt_chars,
            negative_prompt=body.get("negative_prompt"),
            use_llm=expand,
        )
        if expansion.fallback_reason:
            logger.warning(
                "task %s: %s; used the template expansion", task.id, expansion.fallback_reason
            )
        if expansion.expanded_by == "none":
            # Nothing was expanded: recorded with the next state change, not a write of its own.
            task.expanded_by = "none"
            if (
                expansion.negative_prompt
                and caps.negative_prompt
                and not body.get("negative_prompt")
            ):
                task.request = {**body, "negative_prompt": expansion.negative_prompt}
            return task
        await self._prompts.screen(expansion.expanded_prompt, what="expanded prompt")
        changes: dict[str, Any] = {
            "expanded_prompt": expansion.expanded_prompt,
            "expanded_by": expansion.expanded_by,
        }
        if expansion.negative_prompt and caps.negative_prompt and not body.get("negative_prompt"):
            changes["request"] = {**body, "negative_prompt": expansion.negative_prompt}
        return await self._update(task.id, **changes)

    async def _finish_job(self, task: Task, provider: VideoProvider) -> None:
        assert task.provider_task_id is not None
        status = await self._wait_for_job(task, provider)
        if status.state is JobState.CANCELLED:
            await self._update(
                task.id, status=TaskStatus.CANCELLED, provider_status=status.provider_status
            )
            return
        if status.state is JobState.FAILED:
            raise status.error or ProviderError(
                f"{provider.name} reported the job failed ({status.provider_status})",
                provider=provider.name,
                retryable=False,
            )
        await self._rehost(task, provider, status)

    def _deadline(self, task: Task, provider: VideoProvider) -> dt.datetime:
        seconds = getattr(provider, "deadline_s", None) or self._settings.providers.deadline_s
        return task.created_at + dt.timedelta(seconds=seconds)

    async def _wait_for_job(self, task: Task, provider: VideoProvider) -> JobStatus:
        provider_task_id = task.provider_task_id
        assert provider_task_id is not None
        deadline = self._deadline(task, provider)
        interval = POLL_FIRST_S
        last: tuple[str | None, int] = (task.provider_status, task.progress)
        while True:
            status = await provider.poll(provider_task_id)
            progress = max(task.progress, min(99, status.progress or 0))
            if status.state is JobState.SUCCEEDED:
                # One write: the provider's last word and the start of the relay.
                await self._update(
                    task.id,
                    provider_status=status.provider_status,
                    progress=progress,
                    stage=TaskStage.DOWNLOADING,
                )
                return status
            if (status.provider_status, progress) != last:
                last = (status.provider_status, progress)
                task = await self._update(
                    task.id, provider_status=status.provider_status, progress=progress
                )
            if status.state.is_terminal:
                return status
            remaining = (deadline - utcnow()).total_seconds()
            if remaining <= 0:
                with contextlib.suppress(AppError):
                    await provider.cancel(provider_task_id)
                raise ProviderTimeoutError(
                    f"{provider.name} did not finish before the deadline",
                    provider=provider.name,
                    retryable=False,
                )
            wait = status.poll_after_s if status.poll_after_s is not None else interval
            await self._nudges.wait(task.id, min(wait, remaining))
            interval = min(POLL_MAX_S, interval * POLL_GROWTH)

    async def _rehost(self, task: Task, provider: VideoProvider, status: JobStatus) -> None:
        provider_task_id = task.provider_task_id
        assert provider_task_id is not None
        key = new_object_key()
        for attempt in range(1, RELAY_ATTEMPTS + 1):
            if attempt > 1:
                task = await self._update(task.id, stage=TaskStage.DOWNLOADING)
            try:
                async with provider.open_video(provider_task_id, status) as stream:
                    task = await self._update(task.id, stage=TaskStage.UPLOADING)
                    stored = await self._storage.put(
                        key, stream, content_type="video/mp4", size=stream.size
                    )
                break
            except ProviderError as exc:
                if not exc.retryable or attempt == RELAY_ATTEMPTS:
                    raise
                logger.warning("task %s: download broke (%s), retrying", task.id, exc.message)
                await asyncio.sleep(0.5 * 2**attempt * random.uniform(0.5, 1.0))
        try:
            await self._update(
                task.id,
                status=TaskStatus.SUCCEEDED,
                progress=100,
                video_key=stored.key,
                video_size=stored.size,
                video_sha256=stored.sha256,
                filename=video_filename(task),
            )
        except TaskCancelledError:
            await self._storage.delete(stored.key)
            raise


def stored_error(task: Task) -> AppError:
    """The AppError a failed task ended with (for ``/generate-video``'s answer)."""
    if task.error:
        return error_from_dict(task.error)
    return ProviderError("the task failed", retryable=False)
