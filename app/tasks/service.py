"""Task operations behind the routes: create (idempotent), read, wait, cancel, present."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Collection
from typing import Any

from app.config import Settings
from app.errors import NotFoundError, ValidationError
from app.metrics import Metrics
from app.prompts.service import PromptService
from app.prompts.variants import make_variants
from app.providers.registry import ProviderRegistry
from app.providers.routing import choose_route
from app.storage.base import Storage
from app.tasks.models import Task, TaskStatus, utcnow
from app.tasks.pipeline import build_request, cancel_job
from app.tasks.runner import LocalRunner
from app.tasks.signals import Signals
from app.tasks.store import TaskStore

logger = logging.getLogger(__name__)

#: Body fields that do not change what gets generated (so they don't break idempotency).
_NOT_HASHED = frozenset({"wait_s"})
#: What a draft's full render takes from the draft (Ark reuses the draft's own inputs).
_DRAFT_INPUTS = (
    "aspect_ratio",
    "duration_ms",
    "seed",
    "image_url",
    "last_frame_url",
    "reference_images",
    "generate_audio",
    "negative_prompt",
)


def new_task_id() -> str:
    return f"vt_{uuid.uuid4().hex}"


def owner_of(token: str) -> str:
    """Tasks are owned by a token's hash, never by the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def public_request(request: dict[str, Any]) -> dict[str, Any]:
    """The stored request for its owner to read. Inline images (``data:`` URLs, up to megabytes
    each, also inside lists such as shots) are cut to their header and an ellipsis so task
    lists stay small."""

    def shorten(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("data:") and len(value) > 200:
            return value[: value.find(",") + 1 if "," in value else 40] + "…"
        if isinstance(value, dict):
            return {k: shorten(v) for k, v in value.items()}
        if isinstance(value, list):
            return [shorten(v) for v in value]
        return value

    return {key: shorten(value) for key, value in request.items()}


def request_hash(body: dict[str, Any]) -> str:
    canonical = {k: v for k, v in body.items() if k not in _NOT_HASHED and v is not None}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


class TaskService:
    def __init__(
        self,
        *,
        settings: Settings,
        store: TaskStore,
        runner: LocalRunner,
        storage: Storage,
        providers: ProviderRegistry,
        prompts: PromptService,
        changes: Signals[Task],
        metrics: Metrics,
        wake_webhooks: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._runner = runner
        self._storage = storage
        self._providers = providers
        self._prompts = prompts
        self._changes = changes
        self._wake_webhooks = wake_webhooks
        self._metrics = metrics

    async def create(
        self,
        body: dict[str, Any],
        *,
        owner: str,
        idempotency_key: str | None = None,
        explicit: Collection[str] | None = None,
        group_id: str | None = None,
    ) -> tuple[Task, bool]:
        """Validate, screen, route, store and enqueue; returns ``(task, created)``.

        ``explicit`` names the fields the client set (a platform preset fills only the others).
        """
        self._prompts.validate(
            style=body.get("style"), template=body.get("template"), platform=body.get("platform")
        )
        if body.get("from_draft"):
            body = await self._from_draft(body, owner=owner)
        await self._prompts.screen(body["prompt"])
        task_id = new_task_id()
        # A platform preset fills in what the client left out, as far as the provider that will
        # serve it can honour; routing may depend on those fields, so the preset is applied for
        # the likely provider, then again if the route lands elsewhere.
        target = body.get("provider") or self._providers.default
        shaped, warnings = self._shape(body, explicit, target)
        request = build_request(
            Task(id=task_id, owner=owner, prompt=body["prompt"], request=shaped)
        )
        route = choose_route(
            request,
            requested=body.get("provider"),
            registry=self._providers,
            settings=self._settings,
        )
        if route.primary != target and body.get("platform"):
            shaped, warnings = self._shape(body, explicit, route.primary)
            request = build_request(
                Task(id=task_id, owner=owner, prompt=body["prompt"], request=shaped)
            )
        body = shaped
        # Fail fast (422) when the chosen provider cannot honour the request at all; note what
        # it will ignore.
        planned = self._providers.get(route.primary).plan(request)
        warnings = [*warnings, *planned.get("ignored", [])]
        task = Task(
            id=task_id,
            owner=owner,
            prompt=body["prompt"],
            request={k: v for k, v in body.items() if k not in _NOT_HASHED},
            route={"chain": route.chain, "reason": route.reason, "warnings": warnings},
            provider=route.primary,
            metadata=body.get("metadata") or {},
            callback_url=body.get("callback_url"),
            idempotency_key=idempotency_key,
            request_hash=request_hash(body),
            group_id=group_id,
            lease_owner=self._runner.instance_id,
        )
        stored, created = await self._store.create(task, lease_s=self._runner.lease_s)
        if created:
            logger.info("task %s accepted (provider %s: %s)", task.id, route.primary, route.reason)
            self._metrics.tasks_created.labels(route.primary).inc()
            self._runner.enqueue(stored)
        return stored, created

    async def _from_draft(self, body: dict[str, Any], *, owner: str) -> dict[str, Any]:
        """A full render of one of the caller's drafts: the draft's inputs, the draft's job."""
        draft = await self._store.get(body["from_draft"], owner=owner)
        if draft is None:
            raise ValidationError(f"from_draft: you have no task {body['from_draft']!r}")
        if (
            not draft.params.get("draft")
            or draft.status is not TaskStatus.SUCCEEDED
            or not draft.provider_task_id
        ):
            raise ValidationError(
                f"from_draft: task {draft.id} is not a finished draft (a succeeded task made "
                "with draft: true)"
            )
        inherited = {k: draft.request[k] for k in _DRAFT_INPUTS if k in draft.request}
        final = {k: v for k, v in body.items() if k not in (*_DRAFT_INPUTS, "draft")}
        return {
            **final,
            **inherited,
            "prompt": draft.prompt,
            "provider": draft.provider,
            "expand_prompt": False,
            "draft_job_id": draft.provider_task_id,
        }

    def _shape(
        self, body: dict[str, Any], explicit: Collection[str] | None, provider: str
    ) -> tuple[dict[str, Any], list[str]]:
        if not body.get("platform"):
            return body, []
        return self._prompts.apply_platform(
            body,
            explicit=explicit,
            capabilities=self._providers.get(provider).capabilities,
            provider=provider,
        )

    async def create_group(
        self,
        body: dict[str, Any],
        *,
        owner: str,
        n: int,
        styles: list[str] | None = None,
        idempotency_key: str | None = None,
        explicit: Collection[str] | None = None,
    ) -> tuple[str, list[Task]]:
        """``n`` variants of one idea as separate tasks under one group id."""
        for style in styles or []:
            self._prompts.validate(style=style)
        if idempotency_key:
            # A retried create must land in the same group, with the same tasks.
            group_id = (
                "vg_" + hashlib.sha256(f"{owner}:{idempotency_key}".encode()).hexdigest()[:32]
            )
        else:
            group_id = f"vg_{uuid.uuid4().hex}"
        explicit_fields = set(explicit or ()) | {"seed"} | ({"style"} if styles else set())
        tasks = []
        for index, variant in enumerate(make_variants(body, n, styles=styles)):
            task, _ = await self.create(
                variant,
                owner=owner,
                idempotency_key=f"{idempotency_key}#{index}" if idempotency_key else None,
                explicit=explicit_fields,
                group_id=group_id,
            )
            tasks.append(task)
        return group_id, tasks

    async def get(self, task_id: str, *, owner: str) -> Task:
        task = await self._store.get(task_id, owner=owner)
        if task is None:
            raise NotFoundError(f"no task {task_id!r}")
        return task

    async def list(
        self,
        *,
        owner: str,
        status: TaskStatus | None,
        group_id: str | None,
        limit: int,
        provider: str | None = None,
        before: str | None = None,
    ) -> list[Task]:
        """Newest first; ``before`` is the id of the last task of the previous page."""
        after = await self.get(before, owner=owner) if before else None
        return await self._store.list_for(
            owner=owner,
            status=status,
            group_id=group_id,
            provider=provider,
            before=after,
            limit=limit,
        )

    async def wait(self, task: Task, wait_s: float) -> Task:
        """Long-poll: return when the task is terminal or ``wait_s`` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not task.status.is_terminal:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            # Woken at the end by this process; the periodic re-read catches other replicas.
            fresh = await self._changes.wait(task.id, min(remaining, 2.0))
            if fresh is None:
                fresh = await self._store.get(task.id)
            if fresh is None:
                break
            task = fresh
        return task

    async def cancel(self, task_id: str, *, owner: str) -> Task:
        task = await self.get(task_id, owner=owner)
        if task.status.is_terminal:
            return task
        updated = await self._store.update(task.id, status=TaskStatus.CANCELLED)
        if updated is not None:
            self._changes.fire(task.id, updated)
        # Work here stops at once; a process elsewhere stops at its next lease round. A submit
        # under way finishes first and cancels its job (Pipeline._submit).
        await self._runner.cancel(task.id)
        if updated is None:  # it finished meanwhile
            return await self.get(task_id, owner=owner)
        if task.provider and task.provider_task_id and task.provider in self._providers:
            await cancel_job(self._store, self._providers.get(task.provider), updated)
        await self.on_terminal(updated)
        return updated

    async def adopt_job(self, task_id: str, provider: str, provider_task_id: str) -> None:
        """A provider told us (e.g. by callback) which job is this task's: record it if the
        task has none yet — a submit whose answer was lost — and look at it now."""
        recorded = await self._store.record_job(task_id, provider_task_id)
        if recorded is not None:
            logger.info(
                "task %s: job learnt from a %s callback",
                task_id,
                provider,
                extra={"task_id": task_id, "provider": provider},
            )
            if recorded.status is TaskStatus.CANCELLED and provider in self._providers:
                await cancel_job(self._store, self._providers.get(provider), recorded)
        self._runner.nudge(task_id)

    def nudge(self, task_id: str) -> None:
        """Look at this task's provider job now (a hint, e.g. from a provider callback)."""
        self._runner.nudge(task_id)

    async def on_terminal(self, task: Task) -> None:
        """A task ended: count it, and deliver its webhook (already in the outbox) now."""
        self._metrics.finished(task)
        if task.callback_url:
            self._wake_webhooks()

    async def signed_url(self, task: Task) -> tuple[str | None, dt.datetime | None]:
        if task.status is not TaskStatus.SUCCEEDED or not task.video_key:
            return None, None
        expires_s = self._settings.storage.url_expires_s
        url = await self._storage.url(task.video_key, expires_s=expires_s)
        return url, utcnow() + dt.timedelta(seconds=expires_s)

    async def present(self, task: Task) -> dict[str, Any]:
        video_url, expires_at = await self.signed_url(task)
        last_frame_url = None
        if video_url is not None and task.last_frame_key:
            last_frame_url = await self._storage.url(
                task.last_frame_key, expires_s=self._settings.storage.url_expires_s
            )
        return {
            "id": task.id,
            "status": task.status.value,
            "stage": task.stage.value if task.stage else None,
            "progress": task.progress,
            "provider": task.provider,
            "provider_task_id": task.provider_task_id,
            "provider_status": task.provider_status,
            "prompt": task.prompt,
            "expanded_prompt": task.expanded_prompt,
            "expanded_by": task.expanded_by,
            "params": task.params,
            "route_reason": task.route.get("reason"),
            "warnings": task.route.get("warnings") or [],
            "video_url": video_url,
            "last_frame_url": last_frame_url,
            "filename": task.filename,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "error": task.error,
            "metadata": task.metadata,
            "group_id": task.group_id,
            "created_at": task.created_at.isoformat(),
            "updated_at": task.updated_at.isoformat(),
            "finished_at": task.finished_at.isoformat() if task.finished_at else None,
            "request": public_request(task.request),
        }
