"""Task operations behind every client (HTTP API, OpenAI facade, batches): create
(idempotent), remix, read, page, wait, cancel, delete, present; reference-image uploads."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError

from app.config import Settings
from app.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
)
from app.logs import log_context
from app.metrics import Metrics
from app.netguard import UrlPolicy
from app.prompts.service import PromptService
from app.prompts.variants import make_variants
from app.providers.registry import ProviderRegistry
from app.providers.routing import RouteDecision, choose_route
from app.storage.base import Storage
from app.tasks.events import Event, TaskEvents
from app.tasks.extras import sidecar_key
from app.tasks.long_video import (
    FRAME_SUFFIX,
    cancel_shots,
    long_video_spec,
    present_shots,
    routing_duration,
)
from app.tasks.models import Task, TaskStatus, utcnow
from app.tasks.pipeline import build_request, cancel_job
from app.tasks.progress import ProgressEstimator
from app.tasks.runner import LocalRunner
from app.tasks.signals import Signals
from app.tasks.store import TaskStore
from app.tenants.principal import Principal
from app.tenants.quotas import QuotaGuard

logger = logging.getLogger(__name__)

#: Body fields that do not change what gets generated (so they don't break idempotency).
_NOT_HASHED = frozenset({"wait_s"})
#: Body fields that do not change the video (left out of the result cache's key).
_NOT_CACHE_KEY = frozenset(
    {"wait_s", "cache", "metadata", "callback_url", "callback_events", "expand_prompt", "prompt"}
    | {"provider"}  # keyed as the provider the request is routed to
)
#: Fields whose values are URLs a caller gives (checked against the URL guard at create).
_URL_FIELDS = ("callback_url", "image_url", "last_frame_url")

#: Image formats a reference image may have (what the providers take), with their file types.
IMAGE_TYPES = {
    "JPEG": (".jpg", "image/jpeg"),
    "PNG": (".png", "image/png"),
    "WEBP": (".webp", "image/webp"),
    "BMP": (".bmp", "image/bmp"),
    "TIFF": (".tiff", "image/tiff"),
    "GIF": (".gif", "image/gif"),
}

ContentVariant = Literal["video", "thumbnail", "spritesheet"]

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


def cache_key(body: dict[str, Any], *, provider: str, expand: bool) -> str | None:
    """What makes two requests the same video, or None when a request must not be reused.

    The prompt counts with its whitespace normalised; whether expansion was asked for counts
    (with style, template and platform, which are body fields), the LLM's words never do: an
    expansion varies from run to run, and it is what the earlier task already paid for. An
    explicit random seed (``-1``) asks for a new video every time.
    """
    if body.get("cache") is False or body.get("seed") == -1:
        return None
    canonical = {
        "v": 1,
        "prompt": " ".join(str(body["prompt"]).split()),
        "provider": provider,
        "expand": expand,
        "body": {k: v for k, v in body.items() if k not in _NOT_CACHE_KEY and v is not None},
    }
    return hashlib.sha256(
        json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()


def caller_urls(body: dict[str, Any]) -> list[tuple[str, str]]:
    """``(field, url)`` for every URL in a request body that the gateway or a provider fetches."""
    found = [(name, body[name]) for name in _URL_FIELDS if isinstance(body.get(name), str)]
    for index, url in enumerate(body.get("reference_images") or []):
        if isinstance(url, str):
            found.append((f"reference_images[{index}]", url))
    for index, shot in enumerate(body.get("shots") or []):
        if isinstance(shot, dict) and isinstance(shot.get("image_url"), str):
            found.append((f"shots[{index}].image_url", shot["image_url"]))
    return found


def caption_text(task: Task) -> str | None:
    """``caption: true``: the caption as posted (the text, then its hashtags on one line)."""
    caption = task.caption
    if not caption or not caption.get("text"):
        return None
    tags = " ".join(caption.get("hashtags") or [])
    return f"{caption['text']}\n{tags}" if tags else str(caption["text"])


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
        url_policy: UrlPolicy | None = None,
        quotas: QuotaGuard | None = None,
        events: TaskEvents | None = None,
    ) -> None:
        self._events = events or TaskEvents(store)
        self._settings = settings
        self._store = store
        self._runner = runner
        self._storage = storage
        self._providers = providers
        self._prompts = prompts
        self._changes = changes
        self._wake_webhooks = wake_webhooks
        self._metrics = metrics
        self._url_policy = url_policy or UrlPolicy()
        self._quotas = quotas or QuotaGuard(store)
        self.progress = ProgressEstimator(store)

    async def create(
        self,
        body: dict[str, Any],
        *,
        owner: str,
        idempotency_key: str | None = None,
        explicit: Collection[str] | None = None,
        group_id: str | None = None,
        principal: Principal | None = None,
        remixed_from: str | None = None,
    ) -> tuple[Task, bool]:
        """Validate, screen, route, store and enqueue; returns ``(task, created)``.

        ``explicit`` names the fields the client set (a platform preset fills only the others).
        ``principal`` brings the caller's provider allow-list and quotas. A request identical
        to one this tenant finished recently gets a task that succeeded at once with the same
        video (``cached_from``): no provider job, no quota.
        """
        for field, url in caller_urls(body):
            if not self._storage.owns(url):  # our own signed links are not a caller's URL
                self._url_policy.check_url(url, field=field)
        self._prompts.validate(
            style=body.get("style"), template=body.get("template"), platform=body.get("platform")
        )
        if body.get("from_draft"):
            body = await self._from_draft(body, owner=owner)
        await self._prompts.screen(body["prompt"])
        for index, shot in enumerate(body.get("shots") or []):
            await self._prompts.screen(shot["prompt"], what=f"shots[{index}].prompt")
        task_id = new_task_id()
        # With shots, the length to route by is theirs unless the client gave one.
        explicit_duration = (
            "duration_ms" in explicit if explicit is not None else not body.get("shots")
        )
        # A platform preset fills in what the client left out, as far as the provider that will
        # serve it can honour; routing may depend on those fields, so the preset is applied for
        # the likely provider, then again if the route lands elsewhere.
        target = body.get("provider") or self._providers.default
        shaped, warnings = self._shape(body, explicit, target, explicit_duration)
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
            shaped, warnings = self._shape(body, explicit, route.primary, explicit_duration)
            request = build_request(
                Task(id=task_id, owner=owner, prompt=body["prompt"], request=shaped)
            )
        body = shaped
        if principal is not None:
            self._check_providers(principal, requested=body.get("provider"), chain=route.chain)
            allowed = [name for name in route.chain if principal.may_use(name)]
            route = RouteDecision(chain=allowed, reason=route.reason)
        # A long video (app.tasks.long_video): shots of lengths the provider makes.
        long = long_video_spec(
            body,
            provider=route.primary,
            caps=self._providers.get(route.primary).capabilities,
            settings=self._settings.long,
            explicit_duration=explicit_duration,
        )
        if long is not None:
            body = {**body, "duration_ms": long.total_ms}
            warnings = [*warnings, *long.warnings]
            shot = {**body, "duration_ms": long.durations[0]}  # what the provider is asked
            request = build_request(
                Task(id=task_id, owner=owner, prompt=body["prompt"], request=shot)
            )
        # Fail fast (422) when the chosen provider cannot honour the request at all; note what
        # it will ignore.
        planned = self._providers.get(route.primary).plan(request)
        warnings = [*warnings, *planned.get("ignored", [])]
        wants = body.get("expand_prompt")
        expand = self._prompts.expands_by_default if wants is None else bool(wants)
        key = (
            cache_key(body, provider=route.primary, expand=expand)
            if self._settings.cache.ttl_h > 0
            else None
        )
        task = Task(
            id=task_id,
            owner=owner,
            prompt=body["prompt"],
            request={k: v for k, v in body.items() if k not in _NOT_HASHED},
            route={
                "chain": route.chain,
                "reason": route.reason,
                "warnings": warnings,
                **({"long_video": long.route()} if long is not None else {}),
            },
            provider=route.primary,
            metadata=body.get("metadata") or {},
            callback_url=body.get("callback_url"),
            idempotency_key=idempotency_key,
            request_hash=request_hash(body),
            group_id=group_id,
            cache_key=key,
            remixed_from=remixed_from,
            lease_owner=self._runner.instance_id,
        )
        if key is not None:
            reused = await self._from_cache(task)
            if reused is not None:
                return reused
        limits = principal.limits if principal is not None else None
        if limits is not None and idempotency_key:
            # A retry of a create that went through is answered, not counted again.
            earlier = await self._store.by_idempotency_key(owner, idempotency_key)
            if earlier is not None:
                limits = None
        if limits is not None:
            async with self._quotas.reserve(owner, limits):
                stored, created = await self._store.create(task, lease_s=self._runner.lease_s)
        else:
            stored, created = await self._store.create(task, lease_s=self._runner.lease_s)
        if created:
            # Bound here, inherited by the pipeline's asyncio task: its log lines carry them.
            with log_context(task_id=task.id, provider=route.primary):
                logger.info("task accepted (%s)", route.reason)
                self._metrics.tasks_created.labels(route.primary).inc()
                self._runner.enqueue(stored)
        return stored, created

    def _check_providers(
        self, principal: Principal, *, requested: str | None, chain: list[str]
    ) -> None:
        """The token's provider allow-list: an explicit provider, or the one the routing rules
        chose, must be on it (403); fallbacks that are not on it are dropped by the caller."""
        if principal.providers is None:
            return
        allowed = ", ".join(sorted(principal.providers)) or "none"
        if requested and not principal.may_use(requested):
            raise ForbiddenError(
                f"this token may not use provider {requested!r} (allowed: {allowed})"
            )
        if not principal.may_use(chain[0]):
            raise ForbiddenError(
                f"this request is routed to provider {chain[0]!r}, which this token may not "
                f"use (allowed: {allowed}); name an allowed provider in the request"
            )

    async def _from_cache(self, task: Task) -> tuple[Task, bool] | None:
        assert task.cache_key is not None
        since = utcnow() - dt.timedelta(hours=self._settings.cache.ttl_h)
        source = await self._store.find_cached(task.owner, task.cache_key, since=since)
        if source is None:
            return None
        now = utcnow()
        task.status = TaskStatus.SUCCEEDED
        task.progress = 100
        task.provider = source.provider
        task.expanded_prompt = source.expanded_prompt
        task.expanded_by = source.expanded_by
        task.params = source.params
        task.video_key = source.video_key  # the same stored object: no bytes copied
        task.video_size = source.video_size
        task.video_sha256 = source.video_sha256
        task.filename = source.filename
        task.thumbnail_key = source.thumbnail_key
        task.subtitles_key = source.subtitles_key
        task.caption = source.caption
        task.cached_from = source.id
        task.lease_owner = task.lease_until = None
        task.finished_at = now
        stored, created = await self._store.create(task)  # ended already: no lease
        if created:
            with log_context(task_id=task.id, provider=task.provider):
                logger.info("task reuses the video of %s (result cache)", source.id)
            self._metrics.tasks_created.labels(task.provider or "none").inc()
            await self.on_terminal(stored)
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
        self,
        body: dict[str, Any],
        explicit: Collection[str] | None,
        provider: str,
        explicit_duration: bool = True,
    ) -> tuple[dict[str, Any], list[str]]:
        warnings: list[str] = []
        if body.get("platform"):
            body, warnings = self._prompts.apply_platform(
                body,
                explicit=explicit,
                capabilities=self._providers.get(provider).capabilities,
                provider=provider,
            )
        if body.get("shots") and not explicit_duration:
            body = {**body, "duration_ms": routing_duration(body, explicit_duration=False)}
        return body, warnings

    async def create_group(
        self,
        body: dict[str, Any],
        *,
        owner: str,
        n: int,
        styles: list[str] | None = None,
        idempotency_key: str | None = None,
        explicit: Collection[str] | None = None,
        principal: Principal | None = None,
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
                principal=principal,
            )
            tasks.append(task)
        return group_id, tasks

    async def remix(
        self,
        task_id: str,
        *,
        owner: str,
        prompt: str,
        idempotency_key: str | None = None,
        principal: Principal | None = None,
    ) -> Task:
        """A new task with ``task_id``'s settings and a new prompt, pointing back at it."""
        source = await self.get(task_id, owner=owner)
        body = {**source.request, "prompt": prompt}
        task, _ = await self.create(
            body,
            owner=owner,
            idempotency_key=idempotency_key,
            explicit=set(body),
            principal=principal,
            remixed_from=source.id,
        )
        return task

    async def get(self, task_id: str, *, owner: str | None) -> Task:
        """``owner``'s task (``None``: anyone's, for admins); 404 for another's."""
        task = await self._store.get(task_id, owner=owner)
        if task is None or task.deleted_at is not None:
            raise NotFoundError(f"no task {task_id!r}")
        return task

    async def page(
        self, *, owner: str, after: str | None, limit: int, ascending: bool
    ) -> tuple[list[Task], bool]:
        """One page of the owner's tasks after the task ``after``; and whether more follow."""
        cursor = None
        if after is not None:
            cursor = await self._store.get(after, owner=owner)
            if cursor is None:
                raise NotFoundError(f"no task {after!r} to list after", param="after")
        found = await self._store.page_for(
            owner=owner, after=cursor, limit=limit + 1, ascending=ascending
        )
        return found[:limit], len(found) > limit

    async def list(
        self,
        *,
        owner: str | None,
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
                if self._runner.works_on(task.id):
                    # Its pipeline runs here and wakes us when it ends: nothing to read. (At
                    # 100 tasks, those reads came exactly when 2 s jobs ended, and slowed it.)
                    continue
                fresh = await self._store.get(task.id)
            if fresh is None:
                break
            task = fresh
        return task

    async def cancel(self, task_id: str, *, owner: str | None) -> Task:
        """Cancel ``owner``'s task (``None``: anyone's, for admins); an ended one stays as it is."""
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
        if task.route.get("long_video"):  # its shots too, wherever they run
            for shot in await cancel_shots(
                self._store, self._providers, self._runner, task.id, changes=self._changes
            ):
                await self.on_terminal(shot)
        await self.on_terminal(updated)
        return updated

    async def adopt_job(
        self, task_id: str, provider: str, provider_task_id: str, *, look: bool = True
    ) -> None:
        """A provider told us (e.g. by callback) which job is this task's: record it if the
        task has none yet — a submit whose answer was lost — and look at it now (a job known
        here already, only when ``look``: it may have ended)."""
        if self._runner.watched_job(task_id) == provider_task_id:
            if look:
                self._runner.nudge(task_id)  # known here already: no write, just look
            return
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
        await self.nudge(task_id)

    def follow(self, task: Task, *, after: int | None) -> AsyncIterator[Event]:
        """The task's events after ``after`` (None: from its current state), live, ending
        with the terminal event (``app.tasks.events``)."""

        async def load() -> Task:
            fresh = await self._store.get(task.id)
            if fresh is None:
                raise NotFoundError(f"no task {task.id!r}")
            return fresh

        return self._events.follow(task.id, after=after, load=load, present=self.present)

    async def nudge(self, task_id: str) -> None:
        """Look at this task's provider job now (a hint, e.g. from a provider callback): here,
        or on the replica that works on it."""
        if self._runner.works_on(task_id):
            self._runner.nudge(task_id)
        else:
            await self._events.nudge_elsewhere(task_id)

    async def delete(self, task_id: str, *, owner: str) -> Task:
        """Cancel the task if it has not ended, then delete it for its owner.

        The row stays (a paid job is never lost track of) but is hidden from the owner: reads
        answer 404, lists leave it out. The stored video is removed.
        """
        task = await self.get(task_id, owner=owner)
        if not task.status.is_terminal:
            task = await self.cancel(task_id, owner=owner)
        if not await self._store.hide(task.id, owner=owner):
            raise NotFoundError(f"no task {task_id!r}")  # deleted meanwhile
        files = [task.video_key, task.last_frame_key, task.thumbnail_key, task.subtitles_key]
        if task.route.get("long_video") and not task.cached_from:  # and its shots' clips
            for shot in await self._store.children(task.id):
                await self._store.hide(shot.id, owner=owner)
                files += [shot.video_key, shot.last_frame_key]
                if shot.video_key:  # the last frame the next shot started from, if made here
                    files.append(sidecar_key(shot.video_key, FRAME_SUFFIX))
        for key in files:
            if key:
                try:
                    await self._storage.delete(key)
                except Exception as exc:  # the record is deleted; a stray file is harmless
                    logger.warning("task %s: deleting %s failed: %s", task.id, key, exc)
        logger.info("task %s deleted by its owner", task.id)
        return task

    async def content_url(self, task: Task, variant: ContentVariant) -> str:
        """A signed URL of the task's video or thumbnail; 409 until it has one."""
        if variant == "video":
            if task.status is not TaskStatus.SUCCEEDED or not task.video_key:
                raise ConflictError(
                    f"task {task.id} has no video (it is {task.status.value})", param="variant"
                )
            key: str = task.video_key
        elif variant == "thumbnail":
            # Every video gets one (app.tasks.extras), unless making it failed.
            thumbnail = task.thumbnail_key
            if task.status is not TaskStatus.SUCCEEDED or not thumbnail:
                raise NotFoundError(f"task {task.id} has no thumbnail", param="variant")
            key = thumbnail
        else:
            raise NotFoundError(f"this gateway makes no {variant}", param="variant")
        return await self._storage.url(key, expires_s=self._settings.storage.url_expires_s)

    async def store_reference_image(self, data: bytes, *, param: str = "image") -> str:
        """Keep an uploaded image in storage; return a signed URL a provider can fetch."""
        try:
            kind = await asyncio.to_thread(_image_format, data)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            raise BadRequestError(
                "the uploaded file is not an image this gateway can read", param=param
            ) from None
        if kind not in IMAGE_TYPES:
            raise BadRequestError(
                f"{kind} images are not supported; use one of {', '.join(IMAGE_TYPES)}",
                param=param,
            )
        suffix, content_type = IMAGE_TYPES[kind]
        key = f"inputs/{utcnow():%Y/%m/%d}/{uuid.uuid4().hex}{suffix}"

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        stored = await self._storage.put(key, chunks(), content_type=content_type, size=len(data))
        # Long enough for a job that waits in a provider's queue, then fetches its input.
        return await self._storage.url(stored.key, expires_s=self._settings.storage.url_expires_s)

    async def on_terminal(self, task: Task) -> None:
        """A task ended: count it, and deliver its webhook (already in the outbox) now."""
        if task.parent_id is None:  # a long video's shots are parts of one task
            self._metrics.finished(task)
        self.progress.learn(task)
        if task.callback_url:
            self._wake_webhooks()

    async def signed_url(self, task: Task) -> tuple[str | None, dt.datetime | None]:
        if task.status is not TaskStatus.SUCCEEDED or not task.video_key:
            return None, None
        expires_s = self._settings.storage.url_expires_s
        url = await self._storage.url(task.video_key, expires_s=expires_s)
        return url, utcnow() + dt.timedelta(seconds=expires_s)

    async def sidecar_urls(self, task: Task) -> dict[str, str | None]:
        """Signed URLs of what is stored next to a finished video (poster, subtitles)."""
        expires_s = self._settings.storage.url_expires_s
        urls: dict[str, str | None] = {"thumbnail_url": None, "subtitles_url": None}
        if task.status is TaskStatus.SUCCEEDED:
            for name, key in (
                ("thumbnail_url", task.thumbnail_key),
                ("subtitles_url", task.subtitles_key),
            ):
                if key:
                    urls[name] = await self._storage.url(key, expires_s=expires_s)
        return urls

    async def present(self, task: Task) -> dict[str, Any]:
        video_url, expires_at = await self.signed_url(task)
        last_frame_url = None
        if video_url is not None and task.last_frame_key:
            last_frame_url = await self._storage.url(
                task.last_frame_key, expires_s=self._settings.storage.url_expires_s
            )
        caption = task.caption or {}
        live = await self.progress.of(task)
        return {
            "id": task.id,
            "status": task.status.value,
            "stage": task.stage.value if task.stage else None,
            "progress": live.progress,
            "progress_estimated": live.estimated,
            "eta_s": round(live.eta_s, 1) if live.eta_s is not None else None,
            "queue_position": task.queue_position if task.status is TaskStatus.QUEUED else None,
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
            "cached_from": task.cached_from,
            "remixed_from": task.remixed_from,
            "created_at": task.created_at.isoformat(),
            "updated_at": task.updated_at.isoformat(),
            "finished_at": task.finished_at.isoformat() if task.finished_at else None,
            **await self.sidecar_urls(task),
            "caption": caption_text(task),
            "hashtags": list(caption.get("hashtags") or []),
            "shots": await present_shots(
                self._store,
                self._storage,
                task,
                expires_s=self._settings.storage.url_expires_s,
            ),
            "parent_id": task.parent_id,
            "shot_index": task.shot_index,
            "request": public_request(task.request),
        }


def _image_format(data: bytes) -> str:
    """The image format Pillow reads in ``data`` (verified, not decoded in full)."""
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
        return str(image.format)
