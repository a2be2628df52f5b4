"""Task quotas per tenant: ``max_active_tasks`` (queued + running) and ``tasks_per_day``
(tasks created since 00:00 UTC; a result reused from the cache is free).

Both are counted in the task store itself, so every replica sees the same numbers and nothing
can drift. Checks for one tenant take turns within a process, so a burst of creates on one
replica cannot overshoot; replicas racing each other can overshoot by at most one task each.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol
from weakref import WeakValueDictionary

from app.errors import QuotaExceededError
from app.tasks.models import utcnow
from app.tenants.principal import TokenLimits


class TaskCounts(Protocol):
    async def count_for(
        self, owner: str, *, active: bool = False, since: dt.datetime | None = None
    ) -> int: ...


def day_start(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class QuotaGuard:
    def __init__(self, counts: TaskCounts) -> None:
        self._counts = counts
        self._locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()

    @asynccontextmanager
    async def reserve(self, owner: str, limits: TokenLimits) -> AsyncIterator[None]:
        """Hold the tenant's turn while checking and storing a new task."""
        if limits.max_active_tasks is None and limits.tasks_per_day is None:
            yield
            return
        lock = self._locks.get(owner)
        if lock is None:
            lock = self._locks[owner] = asyncio.Lock()
        async with lock:
            await self.check(owner, limits)
            yield

    async def check(self, owner: str, limits: TokenLimits) -> None:
        now = utcnow()
        if limits.max_active_tasks is not None:
            active = await self._counts.count_for(owner, active=True)
            if active >= limits.max_active_tasks:
                raise QuotaExceededError(
                    f"quota exceeded: max_active_tasks ({limits.max_active_tasks}) tasks are "
                    "queued or running; it frees up as soon as one of them ends",
                    headers={"Retry-After": "5"},
                )
        if limits.tasks_per_day is not None:
            start = day_start(now)
            created = await self._counts.count_for(owner, since=start)
            if created >= limits.tasks_per_day:
                reset = start + dt.timedelta(days=1)
                retry_after = max(1, int((reset - now).total_seconds()))
                raise QuotaExceededError(
                    f"quota exceeded: tasks_per_day ({limits.tasks_per_day}) used up; it resets "
                    f"at {reset.isoformat().replace('+00:00', 'Z')}",
                    headers={"Retry-After": str(retry_after)},
                )
