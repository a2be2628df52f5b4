"""The request rate per token, on the ``limits`` library (memory, or Redis shared by replicas).

``requests_per_s`` with ``burst`` is a token bucket: ``burst`` requests at once, then
``requests_per_s`` on average. ``limits`` offers windows rather than buckets; a window of
``burst`` requests per ``burst / requests_per_s`` seconds (rounded to whole seconds, at least
one: the library's granularity) admits the same burst and the same long-run rate. The strategy
is the sliding window counter: two counters per tenant (the moving window keeps a timestamp
per request, and its memory storage sweeps them through a thread per tenant, which took a
quarter of the gateway's throughput with 50 busy tokens in ``bench/rate_limits.py``). Buckets are
keyed by tenant id, so a rotated token keeps its bucket and one tenant never touches
another's. When Redis cannot be reached the limiter lets requests through and says so in the
log (at most once a minute): an outage of the limiter must not become an outage of the gateway.
The Redis client is imported only when ``[limits] storage`` names a Redis server.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from app.config import LimitsSettings
from app.errors import RateLimitedError
from app.tenants.principal import Principal, TokenLimits

logger = logging.getLogger(__name__)
_WARN_EVERY_S = 60.0


def default_limits(settings: LimitsSettings) -> TokenLimits:
    return TokenLimits(
        requests_per_s=settings.requests_per_s,
        burst=settings.burst,
        max_active_tasks=settings.max_active_tasks,
        tasks_per_day=settings.tasks_per_day,
    )


def rate_item(limits: TokenLimits) -> RateLimitItem | None:
    """The ``limits`` item for a token's rate, or None when the rate is off."""
    rate = limits.requests_per_s
    if rate is None:
        return None
    burst = limits.burst or max(1, math.ceil(rate))
    window_s = max(1, round(burst / rate))
    return RateLimitItemPerSecond(burst, window_s)


def make_storage(settings: LimitsSettings) -> tuple[Storage, Callable[[], Awaitable[None]]]:
    """The ``limits`` storage and how to close it (our own Redis pool, so it can be closed)."""
    if settings.storage == "memory":
        return MemoryStorage(), _nothing
    import redis.asyncio

    pool = redis.asyncio.ConnectionPool.from_url(
        settings.storage, socket_connect_timeout=2, socket_timeout=2
    )
    storage = RedisStorage(
        f"async+{settings.storage}",
        implementation="redispy",
        key_prefix=settings.key_prefix,
        connection_pool=pool,  # type: ignore[arg-type]
    )
    return storage, pool.aclose


async def _nothing() -> None:
    return None


class RequestLimiter:
    def __init__(
        self, storage: Storage, *, close: Callable[[], Awaitable[None]] = _nothing
    ) -> None:
        self._storage = storage
        self._close = close
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._items: dict[TokenLimits, RateLimitItem | None] = {}
        self._warned_at = -_WARN_EVERY_S

    @classmethod
    def from_settings(cls, settings: LimitsSettings) -> RequestLimiter:
        storage, close = make_storage(settings)
        return cls(storage, close=close)

    async def aclose(self) -> None:
        await self._close()

    def _item(self, limits: TokenLimits) -> RateLimitItem | None:
        try:
            return self._items[limits]
        except KeyError:
            item = self._items[limits] = rate_item(limits)
            return item

    async def hit(self, principal: Principal) -> None:
        """Count one request; ``RateLimitedError`` (429, ``Retry-After``) when over the rate."""
        item = self._item(principal.limits)
        if item is None:
            return
        try:
            if await self._limiter.hit(item, "rate", principal.owner):
                return
            reset_at, _ = await self._limiter.get_window_stats(item, "rate", principal.owner)
        except Exception as exc:  # the limiter's store is down: let the request through
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY_S:
                self._warned_at = now
                logger.warning("rate limiter unavailable, not limiting: %s", type(exc).__name__)
            return
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimitedError(
            f"too many requests for this token (limit {principal.limits.requests_per_s:g}/s, "
            f"burst {item.amount}); retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )

    async def check(self) -> None:
        """Readiness: the limiter's store answers (a memory store always does)."""
        if not await self._storage.check():
            raise ConnectionError("the rate limiter's storage does not answer")
