"""Metrics around a provider: every call's outcome and duration, and the video bytes relayed.

A wrapper, so that the adapters stay translations of their vendor's protocol and the pipeline
stays the one place where a task moves forward. :func:`instrument` picks the wrapper that offers
exactly the optional capabilities (``LastFrameSource``) of the provider it wraps, since the
pipeline asks for those with ``isinstance``. ``outcome`` is ``ok`` or the ``AppError`` code
the adapter raised (``provider_error``, ``provider_auth``, ``content_rejected``, …); an
exception that is not an ``AppError`` counts as ``internal_error``. A poll that reports a failed
job is a successful call: failed jobs show in ``vgw_tasks_finished_total``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from app.errors import AppError
from app.metrics import Metrics
from app.providers.base import (
    GenerationRequest,
    JobStatus,
    LastFrameSource,
    VideoProvider,
    VideoStream,
)

T = TypeVar("T")


def outcome_of(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, AppError):
        return exc.code
    return "internal_error"


class _CountedStream:
    def __init__(self, inner: VideoStream, on_bytes: Any) -> None:
        self._inner = inner
        self._on_bytes = on_bytes
        self.size = inner.size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._on_bytes(len(chunk))
            yield chunk


class InstrumentedProvider:
    """A :class:`VideoProvider` that reports to :class:`Metrics` and delegates everything."""

    def __init__(self, inner: VideoProvider, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics
        self.name = inner.name
        self.capabilities = inner.capabilities

    def __getattr__(self, attr: str) -> Any:
        # Adapter-specific attributes (``deadline_s``, …) read through.
        return getattr(self._inner, attr)

    async def _observe(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await call
        except Exception as exc:
            error = exc
            raise
        finally:
            self._metrics.provider_calls.labels(self.name, operation, outcome_of(error)).inc()
            self._metrics.provider_seconds.labels(self.name, operation).observe(
                time.perf_counter() - started
            )

    def plan(self, request: GenerationRequest) -> dict[str, Any]:
        return self._inner.plan(request)

    async def submit(self, request: GenerationRequest) -> str:
        return await self._observe("submit", self._inner.submit(request))

    async def poll(self, provider_task_id: str) -> JobStatus:
        return await self._observe("poll", self._inner.poll(provider_task_id))

    def open_video(
        self, provider_task_id: str, status: JobStatus
    ) -> AbstractAsyncContextManager[VideoStream]:
        return self._open_video(provider_task_id, status)

    @contextlib.asynccontextmanager
    async def _open_video(
        self, provider_task_id: str, status: JobStatus
    ) -> AsyncIterator[VideoStream]:
        counter = self._metrics.relay_bytes.labels(self.name)
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            async with self._inner.open_video(provider_task_id, status) as stream:
                yield _CountedStream(stream, counter.inc)
        except Exception as exc:
            error = exc
            raise
        finally:
            # The whole download, opening to last byte (errors of the upload count too: the
            # relay is one operation, retried as one).
            self._metrics.provider_calls.labels(self.name, "download", outcome_of(error)).inc()
            self._metrics.provider_seconds.labels(self.name, "download").observe(
                time.perf_counter() - started
            )

    async def find_job(
        self,
        request: GenerationRequest,
        *,
        since: dt.datetime,
        is_known: Callable[[str], Awaitable[bool]],
    ) -> str | None:
        return await self._observe(
            "find_job", self._inner.find_job(request, since=since, is_known=is_known)
        )

    async def resume(self, provider_task_id: str, request: GenerationRequest) -> None:
        await self._observe("resume", self._inner.resume(provider_task_id, request))

    async def cancel(self, provider_task_id: str) -> None:
        await self._observe("cancel", self._inner.cancel(provider_task_id))

    async def check(self) -> None:
        await self._observe("check", self._inner.check())

    async def aclose(self) -> None:
        await self._inner.aclose()


class InstrumentedLastFrameProvider(InstrumentedProvider):
    """For providers that hand back a job's last frame: that download is counted too."""

    def open_last_frame(
        self, provider_task_id: str, status: JobStatus
    ) -> AbstractAsyncContextManager[VideoStream]:
        return self._open_last_frame(provider_task_id, status)

    @contextlib.asynccontextmanager
    async def _open_last_frame(
        self, provider_task_id: str, status: JobStatus
    ) -> AsyncIterator[VideoStream]:
        inner = self._inner
        assert isinstance(inner, LastFrameSource)
        error: BaseException | None = None
        try:
            async with inner.open_last_frame(provider_task_id, status) as stream:
                yield stream
        except Exception as exc:
            error = exc
            raise
        finally:
            self._metrics.provider_calls.labels(self.name, "last_frame", outcome_of(error)).inc()


def instrument(provider: VideoProvider, metrics: Metrics) -> VideoProvider:
    """``provider`` reporting to ``metrics``, with the same optional capabilities."""
    if isinstance(provider, LastFrameSource):
        return InstrumentedLastFrameProvider(provider, metrics)
    return InstrumentedProvider(provider, metrics)
