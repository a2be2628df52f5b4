"""Metrics around the storage backend: every call's outcome (``ok`` or the error code).

Handed to the pipeline and the task service; ``app.state.storage`` keeps the backend itself
(the ``/files`` route needs the ``local`` backend's own methods).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable
from pathlib import Path
from typing import Any, TypeVar

from app.metrics import Metrics
from app.providers.instrumented import outcome_of
from app.storage.base import Storage, StoredObject

T = TypeVar("T")


class InstrumentedStorage:
    """A :class:`Storage` that reports to :class:`Metrics` and delegates everything."""

    def __init__(self, inner: Storage, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics
        self.name = inner.name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    async def _observe(self, operation: str, call: Awaitable[T]) -> T:
        error: BaseException | None = None
        try:
            return await call
        except Exception as exc:
            error = exc
            raise
        finally:
            self._metrics.storage_operations.labels(self.name, operation, outcome_of(error)).inc()

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = "video/mp4",
        size: int | None = None,
    ) -> StoredObject:
        return await self._observe(
            "put", self._inner.put(key, chunks, content_type=content_type, size=size)
        )

    def local_path(self, key: str) -> Path | None:
        return self._inner.local_path(key)

    async def url(self, key: str, *, expires_s: int) -> str:
        return await self._observe("url", self._inner.url(key, expires_s=expires_s))

    async def exists(self, key: str) -> bool:
        return await self._observe("exists", self._inner.exists(key))

    async def delete(self, key: str) -> None:
        await self._observe("delete", self._inner.delete(key))

    async def check(self) -> None:
        await self._observe("check", self._inner.check())

    async def aclose(self) -> None:
        await self._inner.aclose()
