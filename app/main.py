"""The app factory. ``create_app(settings)`` builds the FastAPI app; the lifespan owns the
shared HTTP client, the task store, the storage backend, the providers and the runner."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from app import __version__
from app.api.errors import install_error_handlers
from app.api.http_metrics import HttpMetricsMiddleware
from app.api.middleware import BaseUrlMiddleware, BodyLimitMiddleware, RequestIdMiddleware
from app.api.routes import (
    admin,
    admin_stats,
    batches,
    callbacks,
    console,
    dify,
    dify_workflows,
    events,
    files,
    health,
    mcp,
    me,
    prompts,
    providers,
    tasks,
    videos,
    videos_openai,
)
from app.api.routes.health import Readiness
from app.api.schemas import TaskPublic
from app.api.security import TokenVerifier
from app.batches.feeder import BatchFeeder
from app.batches.service import BatchService
from app.batches.store import BatchStore
from app.config import Settings
from app.db.migrate import upgrade as upgrade_schema
from app.media.ffmpeg import sweep_scratch
from app.metrics import Metrics
from app.netguard import GuardedTransport, UrlPolicy, guarded_client
from app.prompts.service import PromptService
from app.providers.base import VideoProvider
from app.providers.download import download_client
from app.providers.http import provider_client
from app.providers.instrumented import instrument
from app.providers.registry import ProviderDeps, ProviderRegistry
from app.storage.instrumented import InstrumentedStorage
from app.storage.registry import StorageDeps, build_storage
from app.tasks.events import TaskEvents
from app.tasks.leases import Leases, instance_locks_for, new_instance_id
from app.tasks.long_video import LongVideos
from app.tasks.models import Task
from app.tasks.outbox import WebhookOutbox, resolve_secret
from app.tasks.pipeline import Pipeline
from app.tasks.runner import LocalRunner
from app.tasks.service import TaskService
from app.tasks.signals import Signals
from app.tasks.store import TaskStore
from app.tenants.limits import RequestLimiter, default_limits
from app.tenants.quotas import QuotaGuard
from app.tenants.tokens import TokenHasher, TokenService, TokenStore
from app.tls import tls_context
from app.urls import BaseUrlResolver

logger = logging.getLogger(__name__)
#: Objects allocated between collections of the youngest generation, once serving.
YOUNG_GC_THRESHOLD = 20_000


def dev_token_path(settings: Settings) -> Path:
    return settings.data_dir / "dev-token"


def ensure_dev_token(settings: Settings) -> tuple[str, bool]:
    """With no ``[auth] valid_tokens``, a random token made on first start (kept 0600).

    Returns ``(token, created)``: it is shown when it is made, afterwards only kept in its file.
    """
    path = dev_token_path(settings)
    with contextlib.suppress(FileNotFoundError):
        token = path.read_text().strip()
        if token:
            return token, False
    path.parent.mkdir(parents=True, exist_ok=True)
    token = "vgw-dev-" + secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token, True


def configured_tokens(settings: Settings) -> list[str]:
    tokens = [token.get_secret_value() for token in settings.auth.valid_tokens]
    return tokens or [ensure_dev_token(settings)[0]]


def token_hasher(settings: Settings) -> TokenHasher:
    key = settings.auth.token_hash_key
    return TokenHasher(key.get_secret_value().encode() if key is not None else None)


def url_policy(settings: Settings) -> UrlPolicy:
    return UrlPolicy.from_allowlist(settings.security.private_url_allowlist)


async def _count_tasks(store: TaskStore, metrics: Metrics) -> None:
    counts = await store.count_unfinished()
    for status in ("queued", "running"):
        metrics.tasks.labels(status).set(counts.get(status, 0))


async def _count_webhooks(outbox: WebhookOutbox, metrics: Metrics) -> None:
    metrics.webhook_backlog.set(await outbox.backlog())


def create_app(
    settings: Settings,
    *,
    extra_providers: Mapping[str, VideoProvider] | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """Build the gateway. ``extra_providers`` adds ready-made providers (tests, benchmarks).
    ``freeze_heap`` (``python -m app serve``): once ready, leave the startup objects out of
    the garbage collector; a test process would keep every frozen app's garbage."""
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.server.binds_all and not settings.server.public_base_url:
            logger.warning(
                "bound to %s without [server] public_base_url: links are built from each "
                "request's Host header (set public_base_url for webhooks and provider callbacks)",
                settings.server.host,
            )
        async with contextlib.AsyncExitStack() as stack:
            http = provider_client(tls_context())
            stack.push_async_callback(http.aclose)
            downloads = download_client(tls_context())
            stack.push_async_callback(downloads.aclose)
            url = settings.database_url()
            if settings.database.migrate_on_start:
                await asyncio.to_thread(upgrade_schema, url)
            store = TaskStore.from_url(url)
            stack.push_async_callback(store.aclose)
            token_store = TokenStore.from_url(url)
            stack.push_async_callback(token_store.aclose)
            limits = default_limits(settings.limits)
            app.state.verifier = TokenVerifier(
                configured_tokens(settings),
                store=token_store,
                hasher=token_hasher(settings),
                defaults=limits,
                cache_s=settings.auth.cache_s,
            )
            app.state.token_service = TokenService(
                token_store, token_hasher(settings), counts=store
            )
            app.state.limiter = limiter = RequestLimiter.from_settings(settings.limits)
            stack.push_async_callback(limiter.aclose)
            policy = url_policy(settings)
            # For anything fetched for a caller (images, …): through the guard, never with the
            # providers' client. Webhook deliveries have their own guarded transport.
            guarded = guarded_client(policy, timeout=httpx.Timeout(10.0, connect=5.0))
            stack.push_async_callback(guarded.aclose)
            base_url = settings.server.base_url()
            storage = build_storage(
                settings, StorageDeps(data_dir=settings.data_dir, public_base_url=base_url)
            )
            stack.push_async_callback(storage.aclose)
            providers = ProviderRegistry.from_settings(
                settings,
                ProviderDeps(
                    http=http,
                    downloads=downloads,
                    data_dir=settings.data_dir,
                    public_base_url=base_url,
                ),
                extra=extra_providers,
            ).wrapped(lambda provider: instrument(provider, metrics))
            stack.push_async_callback(providers.aclose)
            prompts = PromptService.from_settings(settings)
            stack.push_async_callback(prompts.aclose)
            metrics.watch_breakers(providers.breakers)
            observed_storage = InstrumentedStorage(storage, metrics)
            changes: Signals[Task] = Signals()
            nudges: Signals[None] = Signals()
            instance_id = new_instance_id()
            leases = Leases(
                store,
                instance_locks_for(store, url, instance_id),
                lease_s=settings.queue.lease_s,
            )

            async def on_terminal(task: Task) -> None:
                await service.on_terminal(task)
                feeder.task_ended(task)

            async def render(task: Task) -> dict[str, Any]:
                # The task exactly as GET /v1/tasks/{id} shows it.
                public = TaskPublic.model_validate(await service.present(task))
                return public.model_dump(mode="json")

            secret = settings.webhooks.secret
            webhooks = WebhookOutbox(
                store,
                settings=settings.webhooks,
                secret=await resolve_secret(store, secret.get_secret_value() if secret else None),
                render=render,
                instance_id=instance_id,
                # callback_url is a caller's URL: every delivery goes through the URL guard.
                transport=GuardedTransport(
                    policy,
                    limits=httpx.Limits(
                        max_connections=settings.webhooks.max_connections,
                        max_keepalive_connections=settings.webhooks.max_connections,
                    ),
                ),
            )
            stack.push_async_callback(webhooks.aclose)

            pipeline = Pipeline(
                settings=settings,
                store=store,
                providers=providers,
                storage=observed_storage,
                prompts=prompts,
                changes=changes,
                nudges=nudges,
                instance_id=instance_id,
                on_terminal=on_terminal,
            )
            stack.push_async_callback(pipeline.extras.aclose)
            # Scratch folders of joins a crash interrupted (data/tmp) would stay forever.
            await asyncio.to_thread(sweep_scratch, settings.data_dir / "tmp")
            stack.push_async_callback(pipeline.pollers.aclose)
            task_events = TaskEvents(store)
            stack.push_async_callback(task_events.aclose)
            runner = LocalRunner(
                pipeline, leases, nudges, takeover_check_s=settings.queue.takeover_check_s
            )
            task_events.on_nudge = runner.nudge
            pipeline.long_videos = LongVideos(
                settings=settings,
                store=store,
                providers=providers,
                storage=storage,
                prompts=prompts,
                extras=pipeline.extras,
                downloads=downloads,
                changes=changes,
                runner=runner,
                instance_id=instance_id,
                lease_s=settings.queue.lease_s,
            )
            service = TaskService(
                settings=settings,
                store=store,
                runner=runner,
                storage=observed_storage,
                providers=providers,
                prompts=prompts,
                changes=changes,
                metrics=metrics,
                wake_webhooks=webhooks.wake,
                url_policy=policy,
                quotas=QuotaGuard(store),
                events=task_events,
            )
            feeder = BatchFeeder(
                store=BatchStore(store),
                tasks=service,
                leases=leases,
                principals=app.state.verifier.principal_of,
                check_s=settings.queue.takeover_check_s,
            )
            app.state.batches = BatchService(
                settings=settings,
                store=BatchStore(store),
                tasks=service,
                storage=storage,
                feeder=feeder,
            )
            app.state.store = store
            app.state.storage = storage
            app.state.providers = providers
            app.state.prompts = prompts
            app.state.runner = runner
            app.state.tasks = service
            metrics.tasks_active.set_function(lambda: runner.active)
            metrics.on_scrape(lambda: _count_tasks(store, metrics))
            metrics.on_scrape(lambda: _count_webhooks(webhooks, metrics))
            app.state.http = http
            app.state.webhooks = webhooks
            app.state.events = task_events
            webhooks.start()
            app.state.guarded_http = guarded
            default = providers.get(providers.default)
            checks = {
                "store": store.check,
                "storage": observed_storage.check,
                f"provider:{default.name}": default.check,
            }
            if settings.limits.storage != "memory":
                checks["limiter"] = limiter.check
            app.state.readiness = Readiness(checks)
            task_events.start()
            await runner.start()
            stack.push_async_callback(runner.stop)
            await feeder.start()
            stack.push_async_callback(feeder.stop)
            await stack.enter_async_context(mcp.serve(app))
            if freeze_heap:
                # A full collection walked every object the gateway made at startup, hundreds
                # of thousands: 70-80 ms with everything else stopped, in the middle of bursts
                # of tasks. Left out of the collector, they no longer cost it anything. And
                # the youngest generation is collected after 20,000 new objects, not 700:
                # about 70 collections during a burst of 100 tasks became 2 or 3.
                gc.collect()
                gc.freeze()
                gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
            logger.info(
                "gateway ready: storage=%s providers=%s default=%s",
                storage.name,
                ",".join(providers.names()),
                providers.default,
            )
            yield

    app = FastAPI(
        title="Dify Video Gateway",
        version=__version__,
        description="Turn a short idea into a hosted video URL (Seedance, Jimeng, CogVideoX).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.server.max_body_bytes,
        upload_bytes=settings.server.max_upload_bytes,
        upload_paths=("/v1/videos", "/v1/batches"),
    )
    if not settings.server.public_base_url:
        resolver = BaseUrlResolver(settings.server.trusted_proxies)
        app.add_middleware(BaseUrlMiddleware, resolver=resolver)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    routers = (
        health, videos, tasks, events, prompts, providers, files, callbacks, dify, dify_workflows,
        console, admin, videos_openai, batches, admin_stats, me,
    )  # fmt: skip
    for module in routers:
        app.include_router(module.router)
    mcp.mount(app)
    return app
