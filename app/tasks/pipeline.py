"""The work of one task: expand → submit → poll → re-host → done.

This is the only place a task's state moves forward. Every step is resumable: the provider
task id is stored the moment a provider accepts a job, so a restarted gateway polls that job
again instead of paying for a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from app.config import Settings
from app.errors import (
    AppError,
    ProviderAuthError,
    ProviderError,
    ProviderOutcomeUnknownError,
    ProviderTimeoutError,
    error_from_dict,
)
from app.media.moderation import OutputScreen
from app.prompts.service import PromptService
from app.providers.base import (
    GenerationRequest,
    JobState,
    JobStatus,
    LastFrameSource,
    VideoProvider,
)
from app.providers.health import Verdict, verdict
from app.providers.polling import JobPoller, Pollers
from app.providers.registry import ProviderRegistry
from app.storage.base import Storage, new_object_key
from app.tasks.extras import VideoExtras
from app.tasks.models import Task, TaskStage, TaskStatus, utcnow
from app.tasks.signals import Signals
from app.tasks.store import TaskStore

if TYPE_CHECKING:
    from app.tasks.long_video import LongVideos

logger = logging.getLogger(__name__)

RELAY_ATTEMPTS = 3
#: How often a task waiting for a slot looks again (a slot freed in this process wakes it).
SLOT_RECHECK_S = 1.0
FIND_EVERY_S = 5.0


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
        reference_images=tuple(body.get("reference_images") or ()),
        generate_audio=body.get("generate_audio"),
        return_last_frame=bool(body.get("return_last_frame")),
        draft=bool(body.get("draft")),
        draft_job_id=body.get("draft_job_id"),
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
    """How many jobs each provider may have at once, and where that is counted.

    * no cap (``max_concurrency`` None, e.g. Seedance by default: Ark queues over the account's
      running limit itself, so holding jobs here would only add latency);
    * a *shared* cap (the account's, e.g. ``[seedance] max_running``): counted in the database
      across every replica (``TaskStore.take_slot``), in ``shared``;
    * a local cap (a process's own resources, or ``[queue] concurrency``): a FIFO semaphore here.

    A task waiting for a slot is ``queued`` with its ``queue_position``.
    """

    def __init__(self, registry: ProviderRegistry, overrides: dict[str, int]) -> None:
        self.shared: dict[str, int] = {}
        self._local: dict[str, asyncio.Semaphore] = {}
        self.waiting: dict[str, list[str]] = {}
        for name in registry.names():
            caps = registry.get(name).capabilities
            cap = overrides.get(name, caps.max_concurrency)
            if cap is None:
                continue
            if caps.shared_limit and name not in overrides:
                self.shared[name] = cap
            else:
                self._local[name] = asyncio.Semaphore(cap)
                self.waiting[name] = []

    def local(self, name: str) -> asyncio.Semaphore | None:
        return self._local.get(name)

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        """This process's slot of ``name`` (if it has local slots), without showing a queue."""
        semaphore = self._local.get(name)
        if semaphore is None:
            yield
            return
        async with semaphore:
            yield


class _StageWrites:
    """A task's stage changes during a relay, written in order behind the work they describe.

    Waiting for each write before going on put a database round trip between a provider's
    "done" and the video's URL for every stage; under load each cost as much as the transfer
    itself. Here the relay goes on while its stages are written, and the final write comes
    last: where the store commits writes in the order they were asked for (SQLite's group
    commit) they are all asked for at once and usually share one transaction; elsewhere each
    waits for the one before it. Every write is fenced like any other, so when one finds the
    task ended or taken over, the final write does too, and ``settle`` raises it.
    """

    def __init__(
        self, task_id: str, update: Callable[..., Awaitable[Task]], *, in_order: bool
    ) -> None:
        self._task_id = task_id
        self._update = update
        self._in_order = in_order
        self._writes: list[asyncio.Task[Task]] = []

    def write(self, **changes: Any) -> None:
        previous = self._writes[-1] if self._writes and not self._in_order else None

        async def write_after() -> Task:
            if previous is not None:
                await previous
            return await self._update(self._task_id, **changes)

        # Tasks start in the order they are made, and each reaches the store's queue before
        # it first waits: the order of the calls is the order of the writes.
        self._writes.append(asyncio.ensure_future(write_after()))

    async def settle(self) -> Task | None:
        """The last write's result (raising what it raised); the earlier ones are done."""
        if not self._writes:
            return None
        *earlier, last = self._writes
        try:
            return await last
        finally:
            for write in earlier:
                write.add_done_callback(_retrieve)

    async def drain(self) -> None:
        """Wait for the writes, whatever they answer (the relay failed: that is the news)."""
        if self._writes:
            await asyncio.wait(self._writes)
            self.abandon()

    def abandon(self) -> None:
        """Stop caring about the writes: one under way finishes on its own, unread."""
        for write in self._writes:
            write.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class _Stop(Exception):  # noqa: N818 (a signal, not an error)
    """The pipeline must stop working on a task; nothing to record."""


class TaskCancelledError(_Stop):
    """The task ended while the pipeline worked on it (cancelled, or finished elsewhere)."""


class LeaseLostError(_Stop):
    """Another process holds the task now (this one stalled or lost the database)."""


#: ``provider_status`` words of a task whose submit may have created a job we know nothing of.
SUBMITTING = "submitting"
OUTCOME_UNKNOWN = "outcome_unknown"
#: ``provider_status`` of a cancelled task once its job's cancel was sent.
CANCEL_REQUESTED, CANCEL_FAILED = "cancel requested", "cancel failed"
CANCEL_NOTES = frozenset({CANCEL_REQUESTED, CANCEL_FAILED})


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
        instance_id: str,
        on_terminal: Callable[[Task], Awaitable[None]] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._providers = providers
        self._storage = storage
        self._prompts = prompts
        self._changes = changes
        self._nudges = nudges
        self._me = instance_id
        self._on_terminal = on_terminal
        self.slots = ProviderSlots(providers, settings.queue.concurrency)
        self._output_screen = OutputScreen.from_settings(settings, prompts.screener.moderation)
        self.extras = VideoExtras(
            store=store, storage=storage, prompts=prompts, work_dir=settings.data_dir / "tmp"
        )
        #: Runs long videos (parents of shot tasks); set once the runner exists (app.main).
        self.long_videos: LongVideos | None = None
        self.pollers = Pollers()
        self._slot_freed: Signals[None] = Signals()
        self._watching: dict[str, tuple[JobPoller, str]] = {}
        #: Jobs whose submit was answered and that are not yet followed: task id → (when the
        #: provider answered, ``time.monotonic()``; the job's id).
        self._accepted: dict[str, tuple[float, str]] = {}

    async def _update(self, task_id: str, **changes: Any) -> Task:
        """A fenced write: only while this process holds the task's lease."""
        updated = await self._store.update(task_id, fence=self._me, **changes)
        if updated is None:
            current = await self._store.get(task_id)
            if current is None or current.status.is_terminal:
                raise TaskCancelledError(task_id)
            raise LeaseLostError(task_id)
        if ("stage" in changes or "status" in changes) and updated.provider:
            self._slot_freed.fire(updated.provider)  # maybe a slot freed up: look again
        if updated.status.is_terminal:
            self._changes.fire(task_id, updated)  # waiters only care about the end
            if self._on_terminal is not None:
                await self._on_terminal(updated)
        return updated

    async def run(self, task: Task, *, resumed: bool = False) -> None:
        """Take ``task`` (as stored when it was created or claimed) to its end."""
        task_id = task.id
        if task.status.is_terminal:
            return
        try:
            if resumed and task.attempts > self._settings.queue.max_attempts:
                raise ProviderError(
                    f"gave up after {task.attempts} interrupted attempts", retryable=False
                )
            await self._run(task)
        except TaskCancelledError:
            logger.info("task %s ended elsewhere (cancelled)", task_id, extra={"task_id": task_id})
            await self._cancel_recorded_job(task_id)
        except LeaseLostError:
            logger.warning(
                "task %s: another process holds it now; stopping here",
                task_id,
                extra={"task_id": task_id},
            )
        except AppError as exc:
            await self._fail(task_id, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("task %s failed unexpectedly", task_id, extra={"task_id": task_id})
            await self._fail(
                task_id, ProviderError("internal error while processing the task", retryable=False)
            )
        finally:
            self._nudges.discard(task_id)
            self._accepted.pop(task_id, None)

    async def _fail(self, task_id: str, exc: AppError) -> None:
        logger.info(
            "task %s failed: %s (%s)", task_id, exc.message, exc.code, extra={"task_id": task_id}
        )
        with contextlib.suppress(_Stop):
            await self._update(task_id, status=TaskStatus.FAILED, error=exc.to_dict())

    async def _cancel_recorded_job(self, task_id: str) -> None:
        """A task cancelled while its job was being submitted: cancel the job too."""
        task = await self._store.get(task_id)
        if (
            task is None
            or task.status is not TaskStatus.CANCELLED
            or not task.provider_task_id
            or not task.provider
            or task.provider not in self._providers
            or task.provider_status in CANCEL_NOTES  # whoever cancelled it did so already
        ):
            return
        await cancel_job(self._store, self._providers.get(task.provider), task)

    async def _run(self, task: Task) -> None:
        if self.long_videos is not None and self.long_videos.handles(task):
            await self.long_videos.run(task, self._update)
            return
        if task.provider and task.provider_task_id:
            # A job exists (submitted by this or an earlier process): follow it, never again.
            provider = self._providers.get(task.provider)
            await provider.resume(task.provider_task_id, build_request(task))
            async with self.slots.hold(task.provider):
                await self._finish_job(task, provider)
            return
        if task.provider and task.provider_status in (SUBMITTING, OUTCOME_UNKNOWN):
            # An earlier process died (or lost the answer) while submitting: the job may exist.
            provider = self._providers.get(task.provider)
            async with self.slots.hold(task.provider):
                task = await self._recover_submit(task, provider)
                await self._finish_job(task, provider)
            return

        task = await self._expand(task)
        chain: list[str] = list(task.route.get("chain") or [self._providers.default])
        for index, name in enumerate(chain):
            provider = self._providers.get(name)
            breaker = self._providers.breaker(name)
            last = index == len(chain) - 1
            if not breaker.allow():
                # Known to be failing: pass it by while another provider can take the task.
                if last:
                    raise breaker.open_error()
                task = await self._note_route(task, f"{name} passed by (circuit open)")
                continue
            outcome: BaseException | None = None
            # The slot is held for the job's whole life, not only its submit.
            async with self._local_slot(task, name) as task:
                try:
                    task, outcome = await self._submit_to(task, index, name, provider)
                except BaseException as exc:
                    outcome = exc
                    raise
                finally:
                    self._record_submit(name, outcome)
                if outcome is None:
                    await self._finish_job(task, provider)
                    return
        # Unreachable while the chain is non-empty (the last provider's error is raised above),
        # but a task must never end silently.
        raise ProviderError("no provider could take the task", retryable=False)

    def _record_submit(self, name: str, outcome: BaseException | None) -> None:
        """Tell the provider's circuit breaker what its submit said (see app.providers.health)."""
        breaker = self._providers.breaker(name)
        found = verdict(outcome)
        if isinstance(outcome, AppError):
            breaker.note_error(outcome)
        if found is Verdict.NONE:
            breaker.release()
        else:
            breaker.record(found, error=outcome.code if isinstance(outcome, AppError) else None)

    async def _note_route(self, task: Task, note: str) -> Task:
        reason = f"{task.route.get('reason', '')}; {note}"
        return await self._update(task.id, route={**task.route, "reason": reason})

    async def _submit_to(
        self, task: Task, index: int, name: str, provider: VideoProvider
    ) -> tuple[Task, ProviderError | None]:
        """Submit to one provider of the chain: the task with its job recorded, or (when the
        provider surely took nothing and another may) the task noted and the error."""
        chain_len = len(task.route.get("chain") or [name])
        request = build_request(task)
        params = provider.plan(request)
        running = functools.partial(self._running, task, name, params, index)
        task = await self._take_slot(task, name, running)
        try:
            return await self._submit(task, provider, request), None
        except ProviderOutcomeUnknownError as exc:
            # Maybe paid: never re-sent, never fallen back from.
            logger.warning("task %s: %s", task.id, exc.message, extra={"task_id": task.id})
            return await self._recover_submit(task, provider, cause=exc), None
        except ProviderError as exc:
            # The provider surely took nothing (no connection, or an error answer).
            down = isinstance(exc, ProviderAuthError) or exc.retryable
            if not down or index >= chain_len - 1:
                raise
            logger.warning(
                "provider %s is down (%s); falling back",
                name,
                exc.code,
                extra={"task_id": task.id, "provider": name},
            )
            reason = f"{task.route.get('reason', '')}; {name} failed ({exc.code}), fell back"
            task = await self._update(
                task.id,
                route={**task.route, "reason": reason},
                provider_status=f"{name} refused: {exc.code}",
            )
            return task, exc

    @staticmethod
    def _running(task: Task, name: str, params: dict[str, Any], index: int) -> dict[str, Any]:
        # Marked before the call, so whoever finds this task after a crash knows a job may
        # exist; running from here on.
        return {
            "status": TaskStatus.RUNNING,
            "stage": TaskStage.GENERATING,
            "expanded_by": task.expanded_by,
            "request": task.request,
            "provider": name,
            "params": params,
            "route": {**task.route, "provider": name} if index else task.route,
            "provider_status": SUBMITTING,
            "submit_started_at": utcnow(),
            "queue_position": None,
        }

    @contextlib.asynccontextmanager
    async def _local_slot(self, task: Task, name: str) -> AsyncIterator[Task]:
        """Wait for this process's slot of ``name`` (if it caps locally), shown as queued."""
        semaphore = self.slots.local(name)
        if semaphore is None:
            yield task
            return
        if semaphore.locked():
            line = self.slots.waiting[name]
            line.append(task.id)
            try:
                position = 0
                while True:
                    if line.index(task.id) + 1 != position:
                        position = line.index(task.id) + 1
                        task = await self._queued(task, position)
                    try:
                        async with asyncio.timeout(SLOT_RECHECK_S):
                            await semaphore.acquire()
                        break
                    except TimeoutError:
                        continue
            finally:
                line.remove(task.id)
        else:
            await semaphore.acquire()
        try:
            yield task
        finally:
            semaphore.release()

    async def _take_slot(self, task: Task, name: str, changes: Callable[[], Any]) -> Task:
        """Move the task to running at ``name``; with a shared cap, only once a slot is free
        across every replica (the place in line shown as ``queue_position`` meanwhile)."""
        limit = self.slots.shared.get(name)
        if limit is None:
            return await self._update(task.id, **changes())
        position = 0
        while True:
            taken, place = await self._store.take_slot(
                task.id, changes(), fence=self._me, provider=name, limit=limit
            )
            if taken is not None:
                self._slot_freed.fire(name)  # the next in line may move up
                return taken
            if place == 0:
                await self._update(task.id)  # raises: ended, or no longer ours
            if place != position:
                position = place
                task = await self._queued(task, position)
            await self._slot_freed.wait(name, SLOT_RECHECK_S)

    async def _queued(self, task: Task, position: int) -> Task:
        return await self._update(
            task.id, status=TaskStatus.QUEUED, stage=None, queue_position=position
        )

    async def _submit(
        self, task: Task, provider: VideoProvider, request: GenerationRequest
    ) -> Task:
        """Submit and record the job id, as one unit that cancellation cannot split.

        A cancel (the client's, or this process stopping) that lands while the provider is
        taking the job waits for the id to be written; if the task was cancelled, the job is
        cancelled at the provider too. Nothing paid is ever orphaned.
        """

        async def submit_and_record() -> Task:
            job_id = await provider.submit(request)
            self._accepted[task.id] = (time.monotonic(), job_id)
            return await self._record_job(task, provider, job_id)

        inner = asyncio.ensure_future(submit_and_record())
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await inner  # the id is written (or the submit failed: nothing to do)
            await self._cancel_recorded_job(task.id)
            raise

    async def _record_job(self, task: Task, provider: VideoProvider, job_id: str) -> Task:
        # One write for the id and "submitted" (the id is written even without the lease).
        recorded, held = await self._store.record_submitted_job(
            task.id, job_id, fence=self._me, provider_status="submitted"
        )
        if recorded is None:
            recorded = await self._store.get(task.id)
            if recorded is None:
                raise TaskCancelledError(task.id)
            if recorded.provider_task_id != job_id:
                # Two jobs for one task would be a bug; keep the first, cancel this one.
                logger.error(
                    "task %s: provider answered job %s but %s was recorded; cancelling the new one",
                    task.id,
                    job_id,
                    recorded.provider_task_id,
                    extra={"task_id": task.id},
                )
                with contextlib.suppress(AppError):
                    await provider.cancel(job_id)
        logger.info(
            "task %s: %s job recorded",
            task.id,
            provider.name,
            extra={"task_id": task.id, "provider": provider.name},
        )
        if recorded is None or not held:
            # Not written as ours: the fenced write says why (cancelled, or no longer ours).
            return await self._update(task.id, provider_status="submitted")
        return recorded

    async def _recover_submit(
        self, task: Task, provider: VideoProvider, *, cause: AppError | None = None
    ) -> Task:
        """A submit whose outcome is unknown: find the job, submit again where that is safe
        (the provider dedupes on our task id), or fail saying the job may exist."""
        request = build_request(task)
        since = task.submit_started_at or task.updated_at
        caps = provider.capabilities
        task = await self._update(task.id, provider_status=OUTCOME_UNKNOWN)

        async def is_known(job_id: str) -> bool:
            return await self._store.find_job(provider.name, job_id) is not None

        deadline = since + dt.timedelta(seconds=caps.find_window_s)
        first = True
        while True:
            current = await self._store.get(task.id)
            if current is None or current.status.is_terminal:
                raise TaskCancelledError(task.id)
            if current.provider_task_id:  # adopted: its callback arrived
                logger.info("task %s: adopted its job from a callback", task.id)
                return await self._update(task.id, provider_status="adopted")
            if caps.find_window_s > 0 or first:
                try:
                    job_id = await provider.find_job(request, since=since, is_known=is_known)
                except ProviderError as exc:  # the window is for this; look again later
                    logger.warning(
                        "task %s: looking for its job failed: %s",
                        task.id,
                        exc.message,
                        extra={"task_id": task.id},
                    )
                    job_id = None
                if job_id is not None:
                    return await self._record_job(task, provider, job_id)
            if caps.idempotent_submit:
                return await self._submit(task, provider, request)
            first = False
            remaining = (deadline - utcnow()).total_seconds()
            if remaining <= 0:
                raise ProviderOutcomeUnknownError(
                    f"{provider.name}: the submit sent at {since:%Y-%m-%d %H:%M:%S} UTC got no "
                    "answer and no job could be found; the provider may have made (and charged "
                    f"for) it — check the {provider.name} account before creating the task "
                    "again" + (f" ({cause.message})" if cause is not None else ""),
                    provider=provider.name,
                )
            # Woken at once by the provider's callback (in this process); otherwise look again
            # in a few seconds (a callback received by another replica is in the store by then).
            await self._nudges.wait(task.id, min(remaining, FIND_EVERY_S))

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
        stages = _StageWrites(task.id, self._update, in_order=self._store.writes_in_order)
        try:
            await self._relay(task, provider, stages)
        except asyncio.CancelledError:
            stages.abandon()
            raise
        except BaseException:
            await stages.drain()  # written before the failure is
            raise

    async def _relay(self, task: Task, provider: VideoProvider, stages: _StageWrites) -> None:
        status = await self._wait_for_job(task, provider, stages)
        if status.state is JobState.CANCELLED:
            await self._update(
                task.id, status=TaskStatus.CANCELLED, provider_status=status.provider_status
            )
            return
        if status.state is JobState.FAILED:
            error = status.error or ProviderError(
                f"{provider.name} reported the job failed ({status.provider_status})",
                provider=provider.name,
                retryable=False,
            )
            breaker = self._providers.breaker(task.provider or provider.name)
            breaker.note_error(error)
            if isinstance(error, ProviderError) and error.open_circuit:
                breaker.record(Verdict.TRIP, error=error.code)
            raise error
        await self._rehost(task, provider, status, stages)

    def _deadline(self, task: Task, provider: VideoProvider) -> dt.datetime:
        seconds = getattr(provider, "deadline_s", None) or self._settings.providers.deadline_s
        return task.created_at + dt.timedelta(seconds=seconds)

    async def _wait_for_job(
        self, task: Task, provider: VideoProvider, stages: _StageWrites
    ) -> JobStatus:
        """Follow the job through this process's poller for its provider (batched reads,
        woken at once by a provider callback) until it ends or the deadline passes."""
        provider_task_id = task.provider_task_id
        assert provider_task_id is not None
        deadline = self._deadline(task, provider)
        poller = self.pollers.of(provider)
        # The job's age, for when it may be done: from the provider's answer to the submit
        # when that came here (jobs submitted together can be answered a few tenths of a
        # second apart), else from when the submit began.
        accepted = self._accepted.pop(task.id, None)
        if accepted is not None:
            age_s = time.monotonic() - accepted[0]
        else:
            started = task.submit_started_at or task.updated_at
            age_s = max(0.0, (utcnow() - started).total_seconds())
        self._watching[task.id] = (poller, provider_task_id)
        seen: JobStatus | None = None
        last: tuple[str | None, int] = (task.provider_status, task.progress)
        try:
            while True:
                remaining = (deadline - utcnow()).total_seconds()
                if remaining <= 0:
                    with contextlib.suppress(AppError):
                        await provider.cancel(provider_task_id)
                    raise ProviderTimeoutError(
                        f"{provider.name} did not finish before the deadline",
                        provider=provider.name,
                        retryable=False,
                    )
                status = await poller.next(
                    provider_task_id, after=seen, wait_s=remaining, age_s=age_s
                )
                if status is None:
                    continue
                seen = status
                progress = max(task.progress, min(99, status.progress or 0))
                if status.state is JobState.SUCCEEDED:
                    # One write: the provider's last word and the start of the relay, made
                    # while the relay starts.
                    stages.write(
                        provider_status=status.provider_status,
                        progress=progress,
                        stage=TaskStage.DOWNLOADING,
                        generated_at=utcnow(),
                    )
                    return status
                if (status.provider_status, progress) != last:
                    last = (status.provider_status, progress)
                    task = await self._update(
                        task.id, provider_status=status.provider_status, progress=progress
                    )
                if status.state.is_terminal:
                    return status
        finally:
            self._watching.pop(task.id, None)
            poller.forget(provider_task_id)

    def watched_job(self, task_id: str) -> str | None:
        """The job this process is following for the task, or whose submit it has just had
        answered (and is recording), if any."""
        watching = self._watching.get(task_id)
        if watching is not None:
            return watching[1]
        accepted = self._accepted.get(task_id)
        return accepted[1] if accepted is not None else None

    def nudge(self, task_id: str) -> None:
        """Look at this task's job now (a provider callback arrived)."""
        watching = self._watching.get(task_id)
        if watching is not None:
            poller, job_id = watching
            poller.nudge(job_id)
        else:  # still submitting, or reconciling a lost create
            self._nudges.fire(task_id)

    async def _rehost(
        self, task: Task, provider: VideoProvider, status: JobStatus, stages: _StageWrites
    ) -> None:
        provider_task_id = task.provider_task_id
        assert provider_task_id is not None
        key = new_object_key()
        for attempt in range(1, RELAY_ATTEMPTS + 1):
            if attempt > 1:
                stages.write(stage=TaskStage.DOWNLOADING)
            try:
                async with provider.open_video(provider_task_id, status) as stream:
                    stages.write(stage=TaskStage.UPLOADING)
                    screen = self._output_screen
                    if screen is not None and screen.applies(provider.name):
                        stored = await screen.put_screened(self._storage, key, stream)
                    else:
                        stored = await self._storage.put(
                            key, stream, content_type="video/mp4", size=stream.size
                        )
                break
            except ProviderError as exc:
                if not exc.retryable or attempt == RELAY_ATTEMPTS:
                    raise
                logger.warning("task %s: download broke (%s), retrying", task.id, exc.message)
                await asyncio.sleep(0.5 * 2**attempt * random.uniform(0.5, 1.0))
        frame_key = await self._store_last_frame(task, provider, status)
        extras = await self.extras.for_video(task, stored.key)  # what the client asked for
        try:
            stages.write(
                status=TaskStatus.SUCCEEDED,
                progress=100,
                video_key=stored.key,
                video_size=stored.size,
                video_sha256=stored.sha256,
                last_frame_key=frame_key,
                filename=video_filename(task),
                **extras,
            )
            await stages.settle()
        except _Stop:  # ended or taken over meanwhile: the stored copies are nobody's
            await self._storage.delete(stored.key)
            if frame_key is not None:
                await self._storage.delete(frame_key)
            await self.extras.discard(extras)
            raise
        # The poster is made after the video is published, so it never delays it.
        self.extras.poster_later(task, stored.key)

    async def _store_last_frame(
        self, task: Task, provider: VideoProvider, status: JobStatus
    ) -> str | None:
        """Keep the job's last frame image (asked for with ``return_last_frame``) beside the
        video. The video is what was paid for: a frame that cannot be fetched is a warning on
        the task, never a failed task."""
        if not status.last_frame_url or not isinstance(provider, LastFrameSource):
            return None
        assert task.provider_task_id is not None
        key = new_object_key(suffix=".png")
        try:
            async with provider.open_last_frame(task.provider_task_id, status) as stream:
                stored = await self._storage.put(
                    key, stream, content_type="image/png", size=stream.size
                )
        except AppError as exc:
            logger.warning(
                "task %s: the last frame could not be stored: %s",
                task.id,
                exc.message,
                extra={"task_id": task.id},
            )
            warnings = [
                *(task.route.get("warnings") or []),
                "last frame not stored: " + exc.message,
            ]
            await self._update(task.id, route={**task.route, "warnings": warnings})
            return None
        return stored.key


async def cancel_job(store: TaskStore, provider: VideoProvider, task: Task) -> None:
    """Cancel a cancelled task's job at its provider, once however many processes try (the one
    that cancelled the task, the one that was submitting its job), and record the outcome."""
    assert task.provider_task_id is not None
    if not await store.claim_job_cancel(task.id, task.provider_task_id, CANCEL_REQUESTED):
        return  # another process sent it
    try:
        await provider.cancel(task.provider_task_id)
    except Exception as exc:  # best effort: the task is cancelled for our client anyway
        logger.warning("task %s: provider cancel failed: %s", task.id, exc)
        await store.note_provider_status(task.id, CANCEL_FAILED)


def stored_error(task: Task) -> AppError:
    """The AppError a failed task ended with (for ``/generate-video``'s answer)."""
    if task.error:
        return error_from_dict(task.error)
    return ProviderError("the task failed", retryable=False)
